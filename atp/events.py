"""Inbound events (contract section 1) as typed, immutable values.

Timestamps are integer microseconds since the Unix epoch (UTC): exact, cheap to
compare and compact in snapshots.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Final

from atp.values import ByFields

Micros = int


@dataclass(frozen=True, slots=True)
class StockMovement(ByFields):
    """What the node-and-quantity events carry: ``qty`` units of a SKU moved at one node."""

    event_id: str
    sku: str
    node: str
    qty: int
    occurred_at: Micros


@dataclass(frozen=True, slots=True)
class Sale(StockMovement):
    """Sold at a store: on_hand down."""


@dataclass(frozen=True, slots=True)
class SaleVoid(StockMovement):
    """A sale taken back at the till: on_hand up again."""


@dataclass(frozen=True, slots=True)
class Reserve(ByFields):
    event_id: str
    sku: str
    reservation_id: str
    channel: str
    qty: int
    occurred_at: Micros
    node: str | None = None
    expires_at: Micros | None = None


@dataclass(frozen=True, slots=True)
class Release(ByFields):
    event_id: str
    sku: str
    reservation_id: str
    occurred_at: Micros


@dataclass(frozen=True, slots=True)
class Pick(StockMovement):
    """Picked for an order: on_hand down, and the named reservation used up by ``qty``."""

    reservation_id: str | None = None


@dataclass(frozen=True, slots=True)
class TransferMovement(ByFields):
    """What every transfer event carries: a transfer's line of ``qty`` units from one node to another."""

    event_id: str
    sku: str
    transfer_id: str
    from_node: str
    to_node: str
    qty: int
    occurred_at: Micros


@dataclass(frozen=True, slots=True)
class TransferShipped(TransferMovement):
    """The units left ``from_node``: in transit to ``to_node``, expected there at ``expected_at`` if given."""

    expected_at: Micros | None = None


@dataclass(frozen=True, slots=True)
class TransferReceived(TransferMovement):
    """The units arrived at ``to_node``: on hand there."""


@dataclass(frozen=True, slots=True)
class TransferCancelled(TransferMovement):
    """The transfer will not ship, or shipped units went back to ``from_node``."""


class Disposition(StrEnum):
    RESTOCK = "restock"
    DAMAGED = "damaged"
    INSPECT = "inspect"


@dataclass(frozen=True, slots=True)
class Return(ByFields):
    event_id: str
    sku: str
    node: str
    qty: int
    disposition: Disposition
    occurred_at: Micros


@dataclass(frozen=True, slots=True)
class Receipt(StockMovement):
    """A supplier delivery received: on_hand up."""

    reference: str | None = None


@dataclass(frozen=True, slots=True)
class Adjustment(ByFields):
    """A signed correction of on_hand; qty is never zero."""

    event_id: str
    sku: str
    node: str
    qty: int
    reason: str
    occurred_at: Micros


@dataclass(frozen=True, slots=True)
class InventorySnapshot(ByFields):
    """An authoritative count of on_hand as of ``as_of`` (type ``snapshot``)."""

    event_id: str
    sku: str
    node: str
    on_hand: int
    as_of: Micros


@dataclass(frozen=True, slots=True)
class SupplyExpected(ByFields):
    """Opens or revises the expected-supply line ``supply_id`` (a purchase-order line or an ASN)."""

    event_id: str
    sku: str
    supply_id: str
    node: str
    qty: int
    expected_at: Micros
    occurred_at: Micros


@dataclass(frozen=True, slots=True)
class SupplyCancelled(ByFields):
    """Closes the expected-supply line ``supply_id`` for good."""

    event_id: str
    sku: str
    supply_id: str
    occurred_at: Micros


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
