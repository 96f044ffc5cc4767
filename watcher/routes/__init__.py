"""Router mode: point the Mesh prefixes at the active replica's LAN address.

Public API:
- `RoutesConfig` - the `routes:` config section (pydantic, extra=forbid).
- `RoutesActuator(config, *, netns=None, on_repair=None)` - the Actuator: `await start()`,
  `await apply(Target)` (raises RoutesError naming what failed; stale/None next hop = keep),
  `await reconcile(kind)`, `await close(withdraw=False)`, `.stats` (RoutesStats), `.state()`,
  `.nexthop_objects`. The prefixes are `config.prefixes` plus `Target.prefixes` (learned).
- `check_onlink(address, netns=None) -> str | None` - error text unless the address is on a
  connected subnet (usable as a replica next hop).
- `Repair`, `RepairKind`, `REPAIR_KINDS`, `RoutesStats`, `RoutesError`.
"""

from ._onlink import check_onlink
from ._stats import REPAIR_KINDS, Repair, RepairKind, RoutesStats
from .actuator import RoutesActuator, RoutesError
from .config import RoutesConfig

__all__ = [
    "REPAIR_KINDS",
    "Repair",
    "RepairKind",
    "RoutesActuator",
    "RoutesConfig",
    "RoutesError",
    "RoutesStats",
    "check_onlink",
]
