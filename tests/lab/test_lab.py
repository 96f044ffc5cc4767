"""The netns lab: builds what it says, never touches the root namespace, always cleans up."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from watcher.lab import Lab, LabError, build_mesh_lab, list_netns, sweep_stale

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the netns lab needs root")


def _root_state() -> tuple[str, str, str, str]:
    def ip(*args: str) -> str:
        return subprocess.run(["ip", *args], capture_output=True, text=True, check=True).stdout

    return ip("-o", "link"), ip("-o", "addr"), ip("route", "show", "table", "all"), ip("rule")


def test_mesh_lab_forwards_only_through_a_forwarding_replica() -> None:
    before = _root_state()
    with Lab() as lab:
        mesh = build_mesh_lab(lab)
        mesh.router.ip("route", "add", "100.96.0.0/12", "via", "192.0.2.12")
        mesh.router.ip("-6", "route", "add", "2001:db8:96::/48", "via", "2001:db8:1::c")
        # Forwarding starts off on replicas: the data plane is closed until an agent opens it.
        assert not mesh.client.ping("100.96.0.100")
        mesh.set_replica_forwarding(2, True)
        assert mesh.client.ping("100.96.0.100", count=2)
        assert mesh.client.ping("2001:db8:96::100", count=2)
        assert mesh.forwarded_packets(2) >= 8  # 2 v4 + 2 v6 echoes, each way
        assert mesh.forwarded_packets(1) == 0
        names = [h.netns for h in lab.hosts.values()]
        assert all(n in list_netns() for n in names)
    assert not any(n in list_netns() for n in names)
    assert _root_state() == before


def test_teardown_on_exception_kills_processes_and_namespaces() -> None:
    with pytest.raises(RuntimeError, match="boom"), Lab() as lab:
        host = lab.add_host("h")
        proc = host.popen(["sleep", "300"])
        ns = host.netns
        raise RuntimeError("boom")
    assert proc.poll() is not None
    assert ns not in list_netns()


def test_sweep_removes_namespaces_of_a_killed_run() -> None:
    code = (
        "import time; from watcher.lab import Lab\n"
        "lab = Lab().__enter__(); lab.add_host('orphan'); print(lab.prefix, flush=True); time.sleep(60)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    prefix = proc.stdout.readline().strip()
    assert any(n.startswith(prefix) for n in list_netns())
    # A live owner's namespaces are left alone...
    sweep_stale()
    assert any(n.startswith(prefix) for n in list_netns())
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    # ...a dead owner's are removed.
    removed = sweep_stale()
    assert any(n.startswith(prefix) for n in removed)
    assert not any(n.startswith(prefix) for n in list_netns())


def test_errors_name_the_command() -> None:
    with Lab() as lab:
        host = lab.add_host("h")
        with pytest.raises(LabError, match="no switch 'nope'"):
            lab.connect(host, "nope", ["192.0.2.1/24"])
        with pytest.raises(LabError, match=r"\[h\] false"):
            host.run(["false"])
        start = time.monotonic()
        with pytest.raises(LabError, match=r"within 0\.2s"):
            lab.wait_for(lambda: False, timeout=0.2)
        assert time.monotonic() - start < 5


def test_call_runs_in_the_hosts_namespace() -> None:
    import socket

    with Lab() as lab:
        host = lab.add_host("h")
        lab.add_switch("s")
        lab.connect(host, "s", ["192.0.2.7/24"])

        def bind() -> str:
            with socket.socket() as sock:
                sock.bind(("192.0.2.7", 0))  # only exists inside the lab
                return str(sock.getsockname()[0])

        assert host.call(bind) == "192.0.2.7"
        with pytest.raises(OSError), socket.socket() as sock:
            sock.bind(("192.0.2.7", 0))
