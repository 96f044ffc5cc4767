"""HOST:PORT parsing, shared by every listener option (CLI flags and config files)."""

from __future__ import annotations

import ipaddress
from typing import Annotated

from pydantic import AfterValidator


def parse_listen(value: str) -> tuple[str, int]:
    """`HOST:PORT` or `[V6]:PORT` -> (host, port). HOST is an IP address or localhost; port 0
    picks a free port. ValueError names the value and what is wrong with it."""
    host, sep, port = value.rpartition(":")
    if not sep or not host:
        raise ValueError(f"{value!r}: expected HOST:PORT (IPv6 as [ADDR]:PORT), e.g. 127.0.0.1:8787")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if host != "localhost":
        try:
            ipaddress.ip_address(host)
        except ValueError:
            raise ValueError(f"{value!r}: HOST:PORT with HOST an IP address (or localhost)") from None
    if not port.isdigit():
        raise ValueError(f"{value!r}: HOST:PORT with PORT a number")
    if int(port) > 65535:
        raise ValueError(f"{value!r}: port {port} is out of range (0-65535)")
    return host, int(port)


def _checked(value: str) -> str:
    parse_listen(value)
    return value


# A config field holding HOST:PORT, validated where it is read.
ListenAddress = Annotated[str, AfterValidator(_checked)]
