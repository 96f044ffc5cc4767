"""On the wire: tshark dissects our adverts cleanly; spoofed adverts are dropped and counted."""

from __future__ import annotations

import ipaddress
import shutil
import signal
import subprocess
import time

import pytest
from vip_lab import CLIENT4, VIP4, VrrpLab, host_ip4, inject, vip_yaml, wait_until

from watcher.vip import build_packet
from watcher.vip._packet import GROUP4


@pytest.mark.skipif(not shutil.which("tshark"), reason="tshark not installed")
def test_tshark_dissects_our_adverts_without_errors(vrrp_lab: VrrpLab) -> None:
    v = vrrp_lab
    pcap = v.tmp / "vrrp.pcap"
    cap = v.client.popen(
        ["tshark", "-q", "-i", "eth0", "-w", str(pcap), "-f", "ip proto 112 or ip6 proto 112"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    time.sleep(1.5)  # tshark takes a while before it captures
    v.start(1, vip_yaml(advert_interval=0.1), "--active")
    wait_until(lambda: v.has_vip(1), 5)
    time.sleep(1.0)
    v.stop(1)  # includes the priority-0 adverts
    time.sleep(0.5)
    cap.send_signal(signal.SIGINT)
    cap.wait(timeout=10)
    out = v.client.run(
        ["tshark", "-r", str(pcap), "-Y", "vrrp", "-T", "fields", "-E", "separator=|",
         "-e", "ip.ttl", "-e", "ipv6.hlim", "-e", "vrrp.version", "-e", "vrrp.prio",
         "-e", "vrrp.checksum.status", "-e", "_ws.expert", "-e", "_ws.malformed", "-e", "vrrp.addr_count"],
    ).stdout  # fmt: skip
    rows = [line.split("|") for line in out.splitlines() if line.strip()]
    v4 = [r for r in rows if r[0]]
    v6 = [r for r in rows if r[1]]
    assert len(v4) >= 5 and len(v6) >= 5, out
    for ttl, hlim, ver, _prio, ck, expert, malformed, _count in rows:
        assert (ttl or hlim) == "255"
        assert ver == "3"
        assert ck == "1", f"checksum status {ck} (wireshark: 0 bad, 1 good, 2 unverified)"
        assert expert == "" and malformed == "", (expert, malformed)
    assert {r[7] for r in v4} == {"1"} and {r[7] for r in v6} == {"2"}
    assert "0" in {r[3] for r in v4} and "0" in {r[3] for r in v6}  # resigned on SIGTERM
    assert "250" in {r[3] for r in v4}


def test_spoofed_adverts_are_dropped_and_counted(vrrp_lab: VrrpLab) -> None:
    v = vrrp_lab
    # Only host 2 may speak for this VRID besides us.
    v.start(1, vip_yaml(allowed_sources=[host_ip4(2)], addresses=[VIP4]), "--priority", "200")
    wait_until(lambda: v.state(1) == "master", 5)
    ok_src, bad_src = ipaddress.ip_address(host_ip4(2)), ipaddress.ip_address(CLIENT4)

    def pkt(src: ipaddress.IPv4Address | ipaddress.IPv6Address, **kw: object) -> bytes:
        args: dict[str, object] = {"src": src, "dst": GROUP4, "vrid": 51, "priority": 254, "interval": 0.2}
        args["addresses"] = [ipaddress.ip_address(VIP4)]
        args.update(kw)
        return build_packet(**args)  # type: ignore[arg-type]

    # Each would make us step down (priority 254 > 200) if it were accepted.
    inject(
        v.client,
        [
            pkt(ok_src, ttl=64),
            pkt(ok_src, ttl=64),
            pkt(ok_src, vrid=52),
            pkt(ok_src, corrupt_checksum=True),
            pkt(ok_src, corrupt_checksum=True),
            pkt(ok_src, corrupt_checksum=True),
            pkt(bad_src),
            pkt(ok_src, mode="rfc9568"),  # wrong checksum form for this instance
        ],
    )

    def counted() -> dict[str, int] | None:
        st = v.status(1)
        bad = st["instances"]["ipv4"]["bad_packets"] if st else {}
        return bad if sum(bad.values()) >= 8 else None

    bad = wait_until(counted, 5, what="8 drops counted")
    assert bad == {"bad_ttl": 2, "bad_vrid": 1, "bad_checksum": 4, "not_allowed": 1}
    assert v.state(1) == "master" and v.has_vip(1)
    st = v.status(1)
    assert st is not None and st["instances"]["ipv4"]["adverts_received"] == 0

    # The control: the same advert, well-formed and from the allowed source, does take effect.
    inject(v.client, [pkt(ok_src)])
    wait_until(lambda: v.state(1) == "backup", 5, what="a valid higher-priority advert is obeyed")
