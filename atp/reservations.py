"""Reservations and transfers: records that remember events arriving in any order."""

from __future__ import annotations

from typing import Any

from mypy_extensions import mypyc_attr

from atp.events import Micros


@mypyc_attr(acyclic=True)
class Reservation:
    """What is known of one reservation_id, whichever of its events came first.

    ``reserve_at`` is None until a ``reserve`` is seen; a release or picks seen
    earlier are remembered so the reserve, when it comes, counts only what is left.
    ``counted`` is the quantity this record currently adds to the totals.
    """

    __slots__ = (
        "reserve_at", "reserve_event", "qty", "channel", "node", "expires_at",
        "released", "picked", "last_at", "counted",
    )

    def __init__(self) -> None:
        self.reserve_at: Micros | None = None
        self.reserve_event = ""
        self.qty = 0
        self.channel = ""
        self.node: str | None = None
        self.expires_at: Micros | None = None
        self.released = False
        self.picked = 0
        self.last_at: Micros = 0
        self.counted = 0

    def restates(self, at: Micros, event_id: str) -> bool:
        """Whether a reserve at ``at`` replaces the one held (newest wins, then id)."""
        return self.reserve_at is None or (at, event_id) > (self.reserve_at, self.reserve_event)

    def quantity_due(self, now: Micros) -> int:
        if self.reserve_at is None or self.released:
            return 0
        if self.expires_at is not None and now >= self.expires_at:
            return 0
        return max(0, self.qty - self.picked)

    def is_settled(self, now: Micros) -> bool:
        """Can never count again, whatever arrives later within the window."""
        if self.released or self.reserve_at is None:
            return True
        return self.quantity_due(now) == 0

    def __getstate__(self) -> tuple[object, ...]:
        # spelled out: a hot SKU keeps thousands of reservations and each snapshot walks them all
        return (self.reserve_at, self.reserve_event, self.qty, self.channel, self.node, self.expires_at,
                self.released, self.picked, self.last_at, self.counted)

    def __setstate__(self, state: tuple[Any, ...]) -> None:
        (self.reserve_at, self.reserve_event, self.qty, self.channel, self.node, self.expires_at,
         self.released, self.picked, self.last_at, self.counted) = state


@mypyc_attr(acyclic=True)
class Transfer:
    """One transfer (transfer_id, from, to): in transit = shipped − received − cancelled."""

    __slots__ = ("shipped", "received", "cancelled", "last_at", "counted")

    def __init__(self) -> None:
        self.shipped = 0
        self.received = 0
        self.cancelled = 0
        self.last_at: Micros = 0
        self.counted = 0

    @property
    def balance(self) -> int:
        return self.shipped - self.received - self.cancelled

    def __getstate__(self) -> tuple[int, ...]:
        return (self.shipped, self.received, self.cancelled, self.last_at, self.counted)

    def __setstate__(self, state: tuple[int, ...]) -> None:
        self.shipped, self.received, self.cancelled, self.last_at, self.counted = state
