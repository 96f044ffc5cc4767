"""The hand-built GARP/NA frames are byte-identical to what scapy builds for the same fields."""

from __future__ import annotations

import ipaddress

import pytest
from scapy.layers.inet6 import ICMPv6ND_NA, ICMPv6NDOptDstLLAddr, IPv6
from scapy.layers.l2 import ARP, Ether

from watcher.vip._garp import garp_frames

MAC = "02:11:22:33:44:55"


@pytest.mark.parametrize("vip", ["192.0.2.254", "203.0.113.7"])
def test_arp_request_and_reply_match_scapy(vip: str) -> None:
    bcast = Ether(src=MAC, dst="ff:ff:ff:ff:ff:ff")
    want = [
        bytes(bcast / ARP(op=1, hwsrc=MAC, psrc=vip, hwdst="00:00:00:00:00:00", pdst=vip)),
        bytes(bcast / ARP(op=2, hwsrc=MAC, psrc=vip, hwdst="ff:ff:ff:ff:ff:ff", pdst=vip)),
    ]
    assert garp_frames(MAC, [ipaddress.IPv4Address(vip)], None) == want


@pytest.mark.parametrize(("vip", "ll"), [("2001:db8:1::fe", "fe80::1"), ("2001:db8:96::1", None)])
def test_unsolicited_na_matches_scapy(vip: str, ll: str | None) -> None:
    want = bytes(
        Ether(src=MAC, dst="33:33:00:00:00:01")
        / IPv6(src=ll or vip, dst="ff02::1", hlim=255)
        / ICMPv6ND_NA(tgt=vip, R=0, S=0, O=1)
        / ICMPv6NDOptDstLLAddr(lladdr=MAC)
    )
    assert garp_frames(MAC, [ipaddress.IPv6Address(vip)], ll) == [want]


def test_bad_mac_is_refused() -> None:
    with pytest.raises(ValueError, match="not an Ethernet MAC"):
        garp_frames("02:11:22", [ipaddress.IPv4Address("192.0.2.254")], None)
