"""Pure availability domain: events, positions, rules and channel allocation."""

from atp.native import use_sources_unless_wanted

use_sources_unless_wanted()  # before any compiled module is imported (AVAIL_NATIVE=0)

# ruff: noqa: E402
from atp.decoding import decode_event
from atp.events import Event, Topic
from atp.exceptions import AtpError, InvalidRule, UnknownSku
from atp.outcomes import ChannelChange, Outcome, Status
from atp.positions import NodePosition
from atp.rejections import RejectCode, Rejection
from atp.rules import RuleSet
from atp.state import Retention, SkuState

__all__ = [
    "AtpError",
    "ChannelChange",
    "Event",
    "InvalidRule",
    "NodePosition",
    "Outcome",
    "RejectCode",
    "Rejection",
    "Retention",
    "RuleSet",
    "SkuState",
    "Status",
    "Topic",
    "UnknownSku",
    "decode_event",
]
