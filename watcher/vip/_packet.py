"""VRRPv3 adverts: build (scapy) and parse/validate (RFC 9568 §7.1) with both IPv4 checksum forms.

Raw sockets give us the VRRP message and the addresses separately (the kernel writes the IP
header), so everything here works on the VRRP message bytes plus (src, dst, ttl).
"""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass
from typing import Literal

IPPROTO_VRRP = 112
GROUP4 = ipaddress.IPv4Address("224.0.0.18")
GROUP6 = ipaddress.IPv6Address("ff02::12")
HEADER = struct.Struct("!BBBBHH")  # ver|type, vrid, priority, count, rsvd|max_adver_int, checksum

Addr = ipaddress.IPv4Address | ipaddress.IPv6Address
ChecksumMode = Literal["pseudo-header", "rfc9568"]
DropReason = Literal[
    "bad_ttl", "bad_version", "bad_type", "bad_vrid", "bad_checksum", "not_allowed", "malformed",
    "bad_interval", "own_packet",
]  # fmt: skip
DROP_REASONS: tuple[DropReason, ...] = DropReason.__args__  # type: ignore[attr-defined]


@dataclass(frozen=True, slots=True)
class Advert:
    """A received advert that passed every check."""

    src: Addr
    vrid: int
    priority: int
    max_adver_int: float  # seconds
    addresses: tuple[Addr, ...]


def inet_checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total: int = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def _pseudo(src: Addr, dst: Addr, length: int) -> bytes:
    if isinstance(src, ipaddress.IPv4Address):
        return src.packed + dst.packed + struct.pack("!BBH", 0, IPPROTO_VRRP, length)
    return src.packed + dst.packed + struct.pack("!I3xB", length, IPPROTO_VRRP)


def vrrp_checksum(message: bytes, src: Addr, dst: Addr, mode: ChecksumMode) -> int:
    """Checksum of `message` (its checksum field zeroed by the caller or not: we zero it)."""
    body = message[:6] + b"\0\0" + message[8:]
    if mode == "rfc9568" and src.version == 4:
        return inet_checksum(body)
    return inet_checksum(_pseudo(src, dst, len(body)) + body)


def build_advert(
    *,
    src: Addr,
    dst: Addr,
    vrid: int,
    priority: int,
    interval: float,
    addresses: list[Addr],
    mode: ChecksumMode = "pseudo-header",
    checksum_dst: Addr | None = None,
) -> bytes:
    """The VRRP message (no IP header). `checksum_dst` overrides the pseudo-header destination."""
    from scapy.layers.inet import IP
    from scapy.layers.inet6 import IPv6
    from scapy.layers.vrrp import VRRPv3

    under = IP(src=str(src), dst=str(dst), ttl=255) if src.version == 4 else IPv6(src=str(src), dst=str(dst))
    # scapy decides the address field type from the layer underneath: build under it, then cut.
    pkt = under / VRRPv3(
        vrid=vrid,
        priority=priority,
        adv=round(interval * 100),
        addrlist=[str(a) for a in addresses],
        chksum=0,
    )
    message = bytes(pkt[VRRPv3])
    ck = vrrp_checksum(message, src, checksum_dst or dst, mode)
    return message[:6] + struct.pack("!H", ck) + message[8:]


def build_packet(
    *,
    src: Addr,
    dst: Addr,
    vrid: int,
    priority: int,
    interval: float,
    addresses: list[Addr],
    ttl: int = 255,
    mode: ChecksumMode = "pseudo-header",
    corrupt_checksum: bool = False,
) -> bytes:
    """A full IP packet carrying an advert (for injecting test traffic through AF_PACKET / scapy)."""
    from scapy.layers.inet import IP
    from scapy.layers.inet6 import IPv6
    from scapy.packet import Raw

    message = build_advert(
        src=src, dst=dst, vrid=vrid, priority=priority, interval=interval, addresses=addresses, mode=mode
    )
    if corrupt_checksum:
        message = message[:6] + struct.pack("!H", struct.unpack("!H", message[6:8])[0] ^ 0x5A5A) + message[8:]
    if src.version == 4:
        return bytes(IP(src=str(src), dst=str(dst), ttl=ttl, proto=IPPROTO_VRRP) / Raw(message))
    return bytes(IPv6(src=str(src), dst=str(dst), hlim=ttl, nh=IPPROTO_VRRP) / Raw(message))


def parse_advert(
    message: bytes,
    *,
    src: Addr,
    dst: Addr,
    ttl: int,
    vrid: int,
    mode: ChecksumMode,
    allowed: set[Addr] | None = None,
    own: set[Addr] | frozenset[Addr] = frozenset(),
) -> Advert | DropReason:
    """Validate one received VRRP message. Returns the advert or why it must be dropped."""
    if src in own:
        return "own_packet"
    if ttl != 255:
        return "bad_ttl"
    if len(message) < HEADER.size:
        return "malformed"
    vt, rx_vrid, prio, count, rsvd_int, _ck = HEADER.unpack_from(message)
    if vt >> 4 != 3:
        return "bad_version"
    if vt & 0xF != 1:
        return "bad_type"
    alen = 4 if src.version == 4 else 16
    if count == 0 or len(message) < HEADER.size + count * alen:
        return "malformed"
    message = message[: HEADER.size + count * alen]
    if not _checksum_ok(message, src, dst, mode):
        return "bad_checksum"
    if rx_vrid != vrid:
        return "bad_vrid"
    if allowed is not None and src not in allowed:
        return "not_allowed"
    interval_cs = rsvd_int & 0x0FFF
    if interval_cs == 0:
        return "bad_interval"
    body = message[HEADER.size :]
    addrs = tuple(ipaddress.ip_address(body[i : i + alen]) for i in range(0, len(body), alen))
    return Advert(src=src, vrid=rx_vrid, priority=prio, max_adver_int=interval_cs / 100, addresses=addrs)


def _checksum_ok(message: bytes, src: Addr, dst: Addr, mode: ChecksumMode) -> bool:
    got = struct.unpack_from("!H", message, 6)[0]
    if vrrp_checksum(message, src, dst, mode) == got:
        return True
    # Unicast adverts from older keepalived checksum against the group address (see config).
    group = GROUP4 if src.version == 4 else GROUP6
    return dst != group and vrrp_checksum(message, src, group, mode) == got
