"""Which topic each typed ``atp`` event goes to, for producers in tests (``atp.encoding`` encodes them)."""

from __future__ import annotations

from atp.events import (
    Adjustment,
    InventorySnapshot,
    Pick,
    Receipt,
    Release,
    Reserve,
    Return,
    Sale,
    SaleVoid,
    SupplyCancelled,
    SupplyExpected,
    Topic,
    TransferCancelled,
    TransferReceived,
    TransferShipped,
)

TOPIC_OF: dict[type, Topic] = {
    Sale: Topic.POS_SALES, SaleVoid: Topic.POS_SALES,
    Reserve: Topic.ECOM_RESERVATIONS, Release: Topic.ECOM_RESERVATIONS,
    Pick: Topic.WMS_PICKS,
    TransferShipped: Topic.INVENTORY_TRANSFERS, TransferReceived: Topic.INVENTORY_TRANSFERS,
    TransferCancelled: Topic.INVENTORY_TRANSFERS,
    Return: Topic.RETURNS,
    Receipt: Topic.ERP_INVENTORY, Adjustment: Topic.ERP_INVENTORY, InventorySnapshot: Topic.ERP_INVENTORY,
    SupplyExpected: Topic.ERP_SUPPLY, SupplyCancelled: Topic.ERP_SUPPLY,
}

