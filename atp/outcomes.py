"""What applying something to a SKU's state changed: the dataflow decides where it goes."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from atp.events import Micros
from atp.positions import NodePosition
from atp.rejections import Rejection


class Status(StrEnum):
    APPLIED = "applied"
    DUPLICATE = "duplicate"
    REJECTED = "rejected"
    REFRESHED = "refreshed"
    """No event: the clock (reservation expiry) or a new rule set moved the numbers."""


@dataclass(frozen=True, slots=True)
class ChannelChange:
    channel: str
    available: int
    previous: int


@dataclass(frozen=True, slots=True)
class Outcome:
    """Only what changed: positions whose reported numbers moved, channels likewise.

    ``status`` describes the event; changes can come with any status, because every
    call first brings the state up to the clock (expiries) and the rule set, so a
    duplicate or a rejected event may still carry an expiry's changes. Publish the
    changes of every outcome.
    """

    sku: str
    status: Status
    positions: tuple[NodePosition, ...]
    channels: tuple[ChannelChange, ...]
    as_of: Micros | None
    rules_version: str
    rejection: Rejection | None = None
    undeclared_nodes: tuple[str, ...] = ()

    @property
    def changed(self) -> bool:
        return bool(self.positions or self.channels)
