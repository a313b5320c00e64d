"""Inbound events (contract section 1) as typed, immutable values.

Timestamps are integer microseconds since the Unix epoch (UTC): exact, cheap to
compare and compact in snapshots.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Final

from mypy_extensions import mypyc_attr

from atp.values import ByFields

Micros = int

# Each event writes its __init__ out: compiled (mypyc), a written __init__ runs in C, where a
# dataclass's generated one stays Python (3.6 of the decoder's 8.2 µs an event went there).
# Frozen: fields are set the way the generated __init__ sets them.
_set = object.__setattr__


@mypyc_attr(acyclic=True)
@dataclass(frozen=True, slots=True, init=False)
class StockMovement(ByFields):
    """What the node-and-quantity events carry: ``qty`` units of a SKU moved at one node."""

    event_id: str
    sku: str
    node: str
    qty: int
    occurred_at: Micros

    def __init__(  # noqa: PLR0913
        self, event_id: str, sku: str, node: str, qty: int, occurred_at: Micros,
    ) -> None:
        _set(self, "event_id", event_id)
        _set(self, "sku", sku)
        _set(self, "node", node)
        _set(self, "qty", qty)
        _set(self, "occurred_at", occurred_at)


@mypyc_attr(acyclic=True)
@dataclass(frozen=True, slots=True, init=False)
class Sale(StockMovement):
    """Sold at a store: on_hand down."""


@mypyc_attr(acyclic=True)
@dataclass(frozen=True, slots=True, init=False)
class SaleVoid(StockMovement):
    """A sale taken back at the till: on_hand up again."""


@mypyc_attr(acyclic=True)
@dataclass(frozen=True, slots=True, init=False)
class Reserve(ByFields):
    event_id: str
    sku: str
    reservation_id: str
    channel: str
    qty: int
    occurred_at: Micros
    node: str | None = None
    expires_at: Micros | None = None

    def __init__(  # noqa: PLR0913
        self, event_id: str, sku: str, reservation_id: str, channel: str, qty: int, occurred_at: Micros,
        node: str | None = None, expires_at: Micros | None = None,
    ) -> None:
        _set(self, "event_id", event_id)
        _set(self, "sku", sku)
        _set(self, "reservation_id", reservation_id)
        _set(self, "channel", channel)
        _set(self, "qty", qty)
        _set(self, "occurred_at", occurred_at)
        _set(self, "node", node)
        _set(self, "expires_at", expires_at)


@mypyc_attr(acyclic=True)
@dataclass(frozen=True, slots=True, init=False)
class Release(ByFields):
    event_id: str
    sku: str
    reservation_id: str
    occurred_at: Micros

    def __init__(  # noqa: PLR0913
        self, event_id: str, sku: str, reservation_id: str, occurred_at: Micros,
    ) -> None:
        _set(self, "event_id", event_id)
        _set(self, "sku", sku)
        _set(self, "reservation_id", reservation_id)
        _set(self, "occurred_at", occurred_at)


@mypyc_attr(acyclic=True)
@dataclass(frozen=True, slots=True, init=False)
class Pick(StockMovement):
    """Picked for an order: on_hand down, and the named reservation used up by ``qty``."""

    reservation_id: str | None = None

    def __init__(  # noqa: PLR0913
        self, event_id: str, sku: str, node: str, qty: int, occurred_at: Micros,
        reservation_id: str | None = None,
    ) -> None:
        StockMovement.__init__(self, event_id, sku, node, qty, occurred_at)
        _set(self, "reservation_id", reservation_id)


@mypyc_attr(acyclic=True)
@dataclass(frozen=True, slots=True, init=False)
class TransferMovement(ByFields):
    """What every transfer event carries: a transfer's line of ``qty`` units from one node to another."""

    event_id: str
    sku: str
    transfer_id: str
    from_node: str
    to_node: str
    qty: int
    occurred_at: Micros

    def __init__(  # noqa: PLR0913
        self, event_id: str, sku: str, transfer_id: str, from_node: str, to_node: str, qty: int,
        occurred_at: Micros,
    ) -> None:
        _set(self, "event_id", event_id)
        _set(self, "sku", sku)
        _set(self, "transfer_id", transfer_id)
        _set(self, "from_node", from_node)
        _set(self, "to_node", to_node)
        _set(self, "qty", qty)
        _set(self, "occurred_at", occurred_at)


@mypyc_attr(acyclic=True)
@dataclass(frozen=True, slots=True, init=False)
class TransferShipped(TransferMovement):
    """The units left ``from_node``: in transit to ``to_node``, expected there at ``expected_at`` if given."""

    expected_at: Micros | None = None

    def __init__(  # noqa: PLR0913
        self, event_id: str, sku: str, transfer_id: str, from_node: str, to_node: str, qty: int,
        occurred_at: Micros, expected_at: Micros | None = None,
    ) -> None:
        TransferMovement.__init__(self, event_id, sku, transfer_id, from_node, to_node, qty, occurred_at)
        _set(self, "expected_at", expected_at)


@mypyc_attr(acyclic=True)
@dataclass(frozen=True, slots=True, init=False)
class TransferReceived(TransferMovement):
    """The units arrived at ``to_node``: on hand there."""


@mypyc_attr(acyclic=True)
@dataclass(frozen=True, slots=True, init=False)
class TransferCancelled(TransferMovement):
    """The transfer will not ship, or shipped units went back to ``from_node``."""


class Disposition(StrEnum):
    RESTOCK = "restock"
    DAMAGED = "damaged"
    INSPECT = "inspect"


@mypyc_attr(acyclic=True)
@dataclass(frozen=True, slots=True, init=False)
class Return(ByFields):
    event_id: str
    sku: str
    node: str
    qty: int
    disposition: Disposition
    occurred_at: Micros

    def __init__(  # noqa: PLR0913
        self, event_id: str, sku: str, node: str, qty: int, disposition: Disposition,
        occurred_at: Micros,
    ) -> None:
        _set(self, "event_id", event_id)
        _set(self, "sku", sku)
        _set(self, "node", node)
        _set(self, "qty", qty)
        _set(self, "disposition", disposition)
        _set(self, "occurred_at", occurred_at)


@mypyc_attr(acyclic=True)
@dataclass(frozen=True, slots=True, init=False)
class Receipt(StockMovement):
    """A supplier delivery received: on_hand up."""

    reference: str | None = None

    def __init__(  # noqa: PLR0913
        self, event_id: str, sku: str, node: str, qty: int, occurred_at: Micros,
        reference: str | None = None,
    ) -> None:
        StockMovement.__init__(self, event_id, sku, node, qty, occurred_at)
        _set(self, "reference", reference)


@mypyc_attr(acyclic=True)
@dataclass(frozen=True, slots=True, init=False)
class Adjustment(ByFields):
    """A signed correction of on_hand; qty is never zero."""

    event_id: str
    sku: str
    node: str
    qty: int
    reason: str
    occurred_at: Micros

    def __init__(  # noqa: PLR0913
        self, event_id: str, sku: str, node: str, qty: int, reason: str, occurred_at: Micros,
    ) -> None:
        _set(self, "event_id", event_id)
        _set(self, "sku", sku)
        _set(self, "node", node)
        _set(self, "qty", qty)
        _set(self, "reason", reason)
        _set(self, "occurred_at", occurred_at)


@mypyc_attr(acyclic=True)
@dataclass(frozen=True, slots=True, init=False)
class InventorySnapshot(ByFields):
    """An authoritative count of on_hand as of ``as_of`` (type ``snapshot``)."""

    event_id: str
    sku: str
    node: str
    on_hand: int
    as_of: Micros

    def __init__(  # noqa: PLR0913
        self, event_id: str, sku: str, node: str, on_hand: int, as_of: Micros,
    ) -> None:
        _set(self, "event_id", event_id)
        _set(self, "sku", sku)
        _set(self, "node", node)
        _set(self, "on_hand", on_hand)
        _set(self, "as_of", as_of)


@mypyc_attr(acyclic=True)
@dataclass(frozen=True, slots=True, init=False)
class SupplyExpected(ByFields):
    """Opens or revises the expected-supply line ``supply_id`` (a purchase-order line or an ASN)."""

    event_id: str
    sku: str
    supply_id: str
    node: str
    qty: int
    expected_at: Micros
    occurred_at: Micros

    def __init__(  # noqa: PLR0913
        self, event_id: str, sku: str, supply_id: str, node: str, qty: int, expected_at: Micros,
        occurred_at: Micros,
    ) -> None:
        _set(self, "event_id", event_id)
        _set(self, "sku", sku)
        _set(self, "supply_id", supply_id)
        _set(self, "node", node)
        _set(self, "qty", qty)
        _set(self, "expected_at", expected_at)
        _set(self, "occurred_at", occurred_at)


@mypyc_attr(acyclic=True)
@dataclass(frozen=True, slots=True, init=False)
class SupplyCancelled(ByFields):
    """Closes the expected-supply line ``supply_id`` for good."""

    event_id: str
    sku: str
    supply_id: str
    occurred_at: Micros

    def __init__(  # noqa: PLR0913
        self, event_id: str, sku: str, supply_id: str, occurred_at: Micros,
    ) -> None:
        _set(self, "event_id", event_id)
        _set(self, "sku", sku)
        _set(self, "supply_id", supply_id)
        _set(self, "occurred_at", occurred_at)


Event = (
    Sale
    | SaleVoid
    | Reserve
    | Release
    | Pick
    | TransferShipped
    | TransferReceived
    | TransferCancelled
    | Return
    | Receipt
    | Adjustment
    | InventorySnapshot
    | SupplyExpected
    | SupplyCancelled
)

TransferEvent = TransferShipped | TransferReceived | TransferCancelled

SupplyEvent = SupplyExpected | SupplyCancelled
"""Contract section 7's own events (on ``erp.supply``)."""


def event_time(event: Event) -> Micros:
    """The business time of an event: ``as_of`` for snapshots, else ``occurred_at``."""
    if isinstance(event, InventorySnapshot):
        return event.as_of
    return event.occurred_at


TYPE_NAMES: Final[dict[type, str]] = {
    Sale: "sale",
    SaleVoid: "sale_void",
    Reserve: "reserve",
    Release: "release",
    Pick: "pick",
    TransferShipped: "transfer_shipped",
    TransferReceived: "transfer_received",
    TransferCancelled: "transfer_cancelled",
    Return: "return",
    Receipt: "receipt",
    Adjustment: "adjustment",
    InventorySnapshot: "snapshot",
    SupplyExpected: "supply_expected",
    SupplyCancelled: "supply_cancelled",
}


class Topic(StrEnum):
    """The seven inbound streams by role; their Kafka names are configuration."""

    POS_SALES = "pos.sales"
    ECOM_RESERVATIONS = "ecom.reservations"
    WMS_PICKS = "wms.picks"
    INVENTORY_TRANSFERS = "inventory.transfers"
    RETURNS = "returns"
    ERP_INVENTORY = "erp.inventory"
    ERP_SUPPLY = "erp.supply"


TOPIC_TYPES: Final[dict[Topic, frozenset[str]]] = {
    Topic.POS_SALES: frozenset({"sale", "sale_void"}),
    Topic.ECOM_RESERVATIONS: frozenset({"reserve", "release"}),
    Topic.WMS_PICKS: frozenset({"pick"}),
    Topic.INVENTORY_TRANSFERS: frozenset(
        {"transfer_shipped", "transfer_received", "transfer_cancelled"}
    ),
    Topic.RETURNS: frozenset({"return"}),
    Topic.ERP_INVENTORY: frozenset({"snapshot", "adjustment", "receipt"}),
    Topic.ERP_SUPPLY: frozenset({"supply_expected", "supply_cancelled"}),
}
