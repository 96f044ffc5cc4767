"""VIP mode: VRRPv3 (RFC 5798/9568) so the host of the active replica holds the subnet's gateway IP."""

from ._fsm import Fsm, State, master_down_interval, skew_time
from ._packet import Advert, build_advert, build_packet, parse_advert
from .actuator import VipActuator
from .config import GarpConfig, VipConfig
from .instance import TransitionCallback, VrrpInstance, VrrpStats

__all__ = [
    "Advert",
    "Fsm",
    "GarpConfig",
    "State",
    "TransitionCallback",
    "VipActuator",
    "VipConfig",
    "VrrpInstance",
    "VrrpStats",
    "build_advert",
    "build_packet",
    "master_down_interval",
    "parse_advert",
    "skew_time",
]
