"""Network-namespace lab used by the tests, the demo and the benchmarks."""

from ._netns import Host, Iface, Lab, LabError, lab, list_netns, sweep_stale
from ._wait import WaitTimeout, wait_until
from .topology import (
    MESH_HOST4,
    MESH_HOST6,
    MESH_RANGE4,
    MESH_RANGE6,
    MeshLab,
    build_mesh_lab,
    mesh_prefixes,
    replica_lan4,
    replica_lan6,
)

__all__ = [
    "MESH_HOST4",
    "MESH_HOST6",
    "MESH_RANGE4",
    "MESH_RANGE6",
    "Host",
    "Iface",
    "Lab",
    "LabError",
    "MeshLab",
    "WaitTimeout",
    "build_mesh_lab",
    "lab",
    "list_netns",
    "mesh_prefixes",
    "replica_lan4",
    "replica_lan6",
    "sweep_stale",
    "wait_until",
]
