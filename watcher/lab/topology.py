"""The standard mesh lab: a client subnet, a router, N replica hosts, and a host on the mesh side.

    client ──(clan)── router ──(lan)── replica1..N ──(mesh)── meshhost
    198.51.100.10     .1 | 192.0.2.1     192.0.2.1x  203.0.113.1x    203.0.113.100
                                                                     + 100.96.0.100 (a Mesh IP)

Each replica masquerades what it forwards to the mesh side (as traffic leaving a tunnel would), so
replies come back through the replica that forwarded them. Replica forwarding starts off: the
replica agent turns it on only while its replica is active, which makes the data plane honest.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

from ._netns import Host, Lab

CLIENT_NET4, CLIENT_NET6 = "198.51.100.0/24", "2001:db8:c::/64"
LAN_NET4, LAN_NET6 = "192.0.2.0/24", "2001:db8:1::/64"
MESH_SIDE_NET4, MESH_SIDE_NET6 = "203.0.113.0/24", "2001:db8:f::/64"
MESH_RANGE4, MESH_RANGE6 = "100.96.0.0/12", "2001:db8:96::/48"
MESH_HOST4, MESH_HOST6 = "100.96.0.100", "2001:db8:96::100"
ROUTER_LAN4, ROUTER_LAN6 = "192.0.2.1", "2001:db8:1::1"

_NFT_RULES = """
table inet mwlab {
  chain forwarded { type filter hook forward priority 0; policy accept; counter; }
  chain post { type nat hook postrouting priority 100; oifname "eth1" masquerade; }
}
"""


def replica_lan4(i: int) -> str:
    return f"192.0.2.{10 + i}"


def replica_lan6(i: int) -> str:
    return f"2001:db8:1::{10 + i:x}"


@dataclass
class MeshLab:
    lab: Lab
    client: Host
    router: Host
    meshhost: Host
    replicas: list[Host] = field(default_factory=list)

    def replica(self, i: int) -> Host:
        """Replica hosts are numbered from 1, like their addresses."""
        return self.replicas[i - 1]

    def forwarded_packets(self, i: int) -> int:
        """Packets replica `i` has forwarded (the nft forward-chain counter)."""
        out = self.replica(i).run(["nft", "list", "chain", "inet", "mwlab", "forwarded"]).stdout
        for line in out.splitlines():
            if "counter packets" in line:
                return int(line.split("packets")[1].split()[0])
        return 0

    def set_replica_forwarding(self, i: int, on: bool) -> None:
        host = self.replica(i)
        host.sysctl("net.ipv4.ip_forward", int(on))
        host.sysctl("net.ipv6.conf.all.forwarding", int(on))


def build_mesh_lab(lab: Lab, replicas: int = 3, *, ipv6: bool = True) -> MeshLab:
    lab.add_switch("clan")
    lab.add_switch("lan")
    lab.add_switch("mesh")
    client = lab.add_host("client")
    router = lab.add_host("router", forwarding=True)
    meshhost = lab.add_host("meshhost")

    def v6(addr: str) -> list[str]:
        return [addr] if ipv6 else []

    lab.connect(client, "clan", ["198.51.100.10/24", *v6("2001:db8:c::10/64")])
    lab.connect(router, "clan", ["198.51.100.1/24", *v6("2001:db8:c::1/64")], ifname="eth0")
    lab.connect(router, "lan", [f"{ROUTER_LAN4}/24", *v6(f"{ROUTER_LAN6}/64")], ifname="eth1")
    lab.connect(meshhost, "mesh", ["203.0.113.100/24", *v6("2001:db8:f::100/64")])
    meshhost.ip("addr", "add", f"{MESH_HOST4}/32", "dev", "lo")
    client.ip("route", "add", "default", "via", "198.51.100.1")
    if ipv6:
        meshhost.ip("addr", "add", f"{MESH_HOST6}/128", "dev", "lo")
        client.ip("-6", "route", "add", "default", "via", "2001:db8:c::1")
    # The router never redirects: clients and replicas are on different segments anyway.
    router.sysctl("net.ipv4.conf.all.send_redirects", 0)

    mesh = MeshLab(lab, client, router, meshhost)
    for i in range(1, replicas + 1):
        host = lab.add_host(f"replica{i}")
        lab.connect(host, "lan", [f"{replica_lan4(i)}/24", *v6(f"{replica_lan6(i)}/64")], ifname="eth0")
        lab.connect(
            host, "mesh", [f"203.0.113.{10 + i}/24", *v6(f"2001:db8:f::{10 + i:x}/64")], ifname="eth1"
        )
        host.ip("route", "add", MESH_RANGE4, "via", "203.0.113.100")
        host.ip("route", "add", CLIENT_NET4, "via", ROUTER_LAN4)
        if ipv6:
            host.ip("-6", "route", "add", MESH_RANGE6, "via", "2001:db8:f::100")
            host.ip("-6", "route", "add", CLIENT_NET6, "via", ROUTER_LAN6)
        host.run(["nft", "-f", "-"], input_=_NFT_RULES)
        mesh.replicas.append(host)
    return mesh


def mesh_prefixes(ipv6: bool = True) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    nets: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = [ipaddress.ip_network(MESH_RANGE4)]
    if ipv6:
        nets.append(ipaddress.ip_network(MESH_RANGE6))
    return nets
