"""What applying something to a SKU's state changed: the dataflow decides where it goes."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from mypy_extensions import mypyc_attr

from atp.events import Micros
from atp.positions import NodePosition
from atp.rejections import Rejection
from atp.values import ByFields


class Status(StrEnum):
    APPLIED = "applied"
    DUPLICATE = "duplicate"
    REJECTED = "rejected"
    REFRESHED = "refreshed"
    """No event: the clock (reservation expiry) or a new rule set moved the numbers."""


@mypyc_attr(acyclic=True)
@dataclass(frozen=True, slots=True)
class ChannelChange(ByFields):
    channel: str
    available: int
    previous: int


class IncidentKind(StrEnum):
    OVERSELL = "oversell"
    PHANTOM_SALE = "phantom_sale"


@mypyc_attr(acyclic=True)
@dataclass(slots=True, init=False)
class Incident(ByFields):
    """An oversell or a phantom sale (contract section 8), found as its event was applied.

    Oversell: a ``reserve`` for ``channel`` that took effect with ``qty`` above ``before``,
    the channel's number just before it; ``units`` = qty − before. Phantom sale: a sale or
    pick that left ``node``'s on_hand below 0 and lower than ``before``; ``units`` =
    min(qty, −on_hand after).
    """

    kind: IncidentKind
    sku: str
    event_id: str
    qty: int
    before: int
    units: int
    occurred_at: Micros
    channel: str | None = None
    node: str | None = None
    node_type: str | None = None

    def __init__(  # noqa: PLR0913 - the dataclass's fields, spelled out (a phantom sale is common)
        self, kind: IncidentKind, sku: str, event_id: str, qty: int, before: int, units: int, occurred_at: Micros,
        channel: str | None = None, node: str | None = None, node_type: str | None = None,
    ) -> None:
        # Not frozen: a frozen class's fields are set through object.__setattr__, ten calls of 0.1 µs
        # each, and a backlog whose sales come before its opening counts makes an incident per sale.
        self.kind = kind
        self.sku = sku
        self.event_id = event_id
        self.qty = qty
        self.before = before
        self.units = units
        self.occurred_at = occurred_at
        self.channel = channel
        self.node = node
        self.node_type = node_type


@mypyc_attr(acyclic=True)
@dataclass(frozen=True, slots=True)
class Outcome(ByFields):
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
    incidents: tuple[Incident, ...] = ()

    @property
    def changed(self) -> bool:
        return bool(self.positions or self.channels)
