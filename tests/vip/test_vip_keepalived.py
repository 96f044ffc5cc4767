"""Interop with keepalived 2.2.7 (the Debian package): each side yields to the other's higher priority.

keepalived has no RFC 9568 (message-only) IPv4 checksum; what it offers is the pseudo-header form,
and for unicast the choice of destination in that pseudo-header (`old_unicast_checksum` puts the
group address there). We interoperate with each.
"""

from __future__ import annotations

import shutil
import signal

import pytest
from vip_lab import (
    VIP4,
    VIP6,
    VIP6_LL,
    VrrpLab,
    host_ip4,
    keepalived_conf,
    start_keepalived,
    vip_yaml,
    wait_until,
)

pytestmark = pytest.mark.skipif(not shutil.which("keepalived"), reason="keepalived not installed")
INTERVAL = 0.2


@pytest.mark.parametrize("case", ["multicast4", "unicast4", "unicast4-old-checksum", "multicast6"])
def test_keepalived_interop(vrrp_lab: VrrpLab, case: str) -> None:
    v = vrrp_lab
    ours: dict[str, object] = {"advert_interval": INTERVAL}
    ka: dict[str, object] = {"priority": 150, "interval": INTERVAL}
    if case == "multicast6":
        ours["addresses"] = [VIP6_LL, f"{VIP6}/64"]
        ka["vips"] = [f"{VIP6_LL}/64", f"{VIP6}/64"]
        probe = VIP6
    else:
        ours["addresses"] = [f"{VIP4}/24"]
        ka["vips"] = [f"{VIP4}/24"]
        probe = VIP4
    if case.startswith("unicast"):
        old = case.endswith("old-checksum")
        ka["unicast"] = (host_ip4(1), [host_ip4(2)])
        ka["old_unicast_checksum"] = old
        ours["unicast_peers"] = [host_ip4(1)]
        ours["unicast_checksum_dst"] = "group" if old else "peer"

    start_keepalived(v, 1, keepalived_conf(**ka))  # type: ignore[arg-type]
    wait_until(lambda: v.has_vip(1, probe), 10, what="keepalived becomes master alone")
    v.start(2, vip_yaml(**ours))
    wait_until(lambda: v.state(2, _fam(case)) == "backup", 5)
    # We stay backup behind keepalived's priority 150, accepting its adverts.
    wait_until(lambda: (v.status(2) or {})["instances"][_fam(case)]["adverts_received"] >= 3, 5)
    st = v.status(2)
    assert st is not None
    inst = st["instances"][_fam(case)]
    assert inst["state"] == "backup" and not v.has_vip(2, probe)
    assert inst["bad_packets"] == {}, inst

    # Our priority rises to 250: we take over and keepalived yields.
    v.kill(2, signal.SIGUSR1)
    wait_until(lambda: v.has_vip(2, probe) and not v.has_vip(1, probe), 5, what="keepalived yields to us")
    wait_until(lambda: "Entering BACKUP STATE" in _ka_log(v), 5, what="keepalived logs BACKUP")
    assert "Invalid VRRPv3 checksum" not in _ka_log(v)

    # Back to 100: keepalived (150, preempt) takes the VIP again and we yield.
    v.kill(2, signal.SIGUSR2)
    wait_until(lambda: v.has_vip(1, probe) and not v.has_vip(2, probe), 5, what="we yield to keepalived")
    wait_until(lambda: v.state(2, _fam(case)) == "backup", 2)
    st = v.status(2)
    assert st is not None and st["instances"][_fam(case)]["bad_packets"] == {}
    assert "Invalid" not in _ka_log(v), _ka_log(v)


def _fam(case: str) -> str:
    return "ipv6" if case.endswith("6") else "ipv4"


def _ka_log(v: VrrpLab) -> str:
    return (v.tmp / "ka1.log").read_text(errors="replace")


def test_keepalived_rejects_rfc9568_checksum_form(vrrp_lab: VrrpLab) -> None:
    """The control for the test above: with the message-only IPv4 checksum keepalived drops our adverts."""
    v = vrrp_lab
    start_keepalived(v, 1, keepalived_conf(priority=150, interval=INTERVAL, vips=[f"{VIP4}/24"]))
    wait_until(lambda: v.has_vip(1, VIP4), 10, what="keepalived master")
    v.start(
        2, vip_yaml(advert_interval=INTERVAL, addresses=[f"{VIP4}/24"], checksum_mode="rfc9568"), "--active"
    )
    wait_until(lambda: "Invalid VRRPv3 checksum" in _ka_log(v), 5, what="keepalived reports bad checksums")
    # keepalived never heard a valid higher-priority advert, so it did not yield; and its own adverts
    # fail our rfc9568 check, so we count them as bad.
    assert "Entering BACKUP STATE" not in _ka_log(v).split("Entering MASTER STATE", 1)[-1]
    st = wait_until(lambda: (v.status(2) or {}).get("instances", {}).get("ipv4", {}).get("bad_packets"), 5)
    assert st.get("bad_checksum", 0) > 0
