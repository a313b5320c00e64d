"""One SKU at one node: counts, and the journal that makes late snapshots exact."""

from __future__ import annotations

from array import array
from dataclasses import dataclass

from mypy_extensions import mypyc_attr

from atp.events import Micros
from atp.values import ByFields


@mypyc_attr(acyclic=True)
@dataclass(frozen=True, slots=True)
class NodePosition(ByFields):
    """What the engine reports for one position (contract section 2)."""

    node: str
    on_hand: int
    reserved: int
    in_transit: int
    unsellable: int
    safety_stock: int
    atp: int


EMPTY_JOURNAL: array[int] = array("q")
"""Every empty journal: never appended to (``Position.add_on_hand`` replaces it first)."""


def journaled(entries: bytes, head: array[int] | None = None) -> array[int]:
    """A journal of ``head`` (if any) then ``entries`` (raw bytes); ``EMPTY_JOURNAL`` when empty."""
    journal = array("q") if head is None else head
    journal.frombytes(entries)
    return journal if journal else EMPTY_JOURNAL


def node_atp(on_hand: int, reserved: int, safety_stock: int) -> int:
    return max(0, on_hand - reserved - safety_stock)


@mypyc_attr(acyclic=True)
class Position:
    """Mutable counts of one position, owned by its ``SkuState``.

    on_hand = base + Σ journal deltas, where ``base`` is the newest snapshot's count
    (or 0) plus deltas folded out of the journal once older than the SKU's horizon,
    and the journal holds (time, delta) pairs newer than both. The journal is an
    ``array('q')`` of interleaved pairs: 16 bytes an entry, pickled as raw bytes. An empty
    journal is the shared ``EMPTY_JOURNAL`` (64 B saved on every position at rest), which
    only ``add_on_hand`` appends to, and it makes its own first.
    """

    __slots__ = (
        "base", "base_as_of", "journal", "on_hand", "reserved", "in_transit",
        "unsellable", "safety_stock", "counted",
    )

    def __init__(self, safety_stock: int = 0) -> None:
        self.base = 0
        self.base_as_of: Micros | None = None
        self.journal = EMPTY_JOURNAL
        self.on_hand = 0
        self.reserved = 0
        self.in_transit = 0
        self.unsellable = 0
        self.safety_stock = safety_stock
        self.counted = 0  # the atp its SkuState last added to the channels' contributions

    @property
    def atp(self) -> int:
        return node_atp(self.on_hand, self.reserved, self.safety_stock)

    def view(self, node: str) -> NodePosition:
        return NodePosition(
            node, self.on_hand, self.reserved, self.in_transit, self.unsellable,
            self.safety_stock, self.atp,
        )

    def numbers_at(self, node: str) -> tuple[str, int, int, int, int, int, int]:
        """``view`` as a tuple, in ``NodePosition``'s field order: no object to build."""
        return (node, self.on_hand, self.reserved, self.in_transit, self.unsellable, self.safety_stock,
                node_atp(self.on_hand, self.reserved, self.safety_stock))

    def numbers(self) -> tuple[int, int, int, int, int]:
        """What ``view`` reports but the node and the derived atp, cheap to compare."""
        return self.on_hand, self.reserved, self.in_transit, self.unsellable, self.safety_stock

    def add_on_hand(self, delta: int, at: Micros) -> bool:
        """Apply an on_hand effect; False when a snapshot already counted it."""
        if self.base_as_of is not None and at <= self.base_as_of:
            return False
        journal = self.journal
        if journal is EMPTY_JOURNAL:
            journal = self.journal = array("q")
        journal.append(at)
        journal.append(delta)
        self.on_hand += delta
        return True

    def count(self, on_hand: int, as_of: Micros) -> bool:
        """Apply a snapshot; False when an equal-or-newer one already won.

        Equal ``as_of`` ties go to the larger count, so arrival order never matters.
        """
        if self.base_as_of is not None and (as_of, on_hand) <= (self.base_as_of, self.base):
            return False
        kept = array("q")
        journal = self.journal
        total = 0
        for i in range(0, len(journal), 2):
            if journal[i] > as_of:
                kept.append(journal[i])
                kept.append(journal[i + 1])
                total += journal[i + 1]
        self.base = on_hand
        self.base_as_of = as_of
        self.journal = kept if kept else EMPTY_JOURNAL
        self.on_hand = on_hand + total
        return True

    def fold_before(self, horizon: Micros) -> bool:
        """Fold journal entries older than ``horizon`` into ``base``; False if there were none.

        Safe because no snapshot older than the horizon is ever accepted, so a folded
        entry is always inside any snapshot that could later replace ``base``.
        """
        journal = self.journal
        if all(at >= horizon for at in journal[::2]):
            return False
        kept = array("q")
        for i in range(0, len(journal), 2):
            if journal[i] < horizon:
                self.base += journal[i + 1]
            else:
                kept.append(journal[i])
                kept.append(journal[i + 1])
        self.journal = kept if kept else EMPTY_JOURNAL
        return True

    def __getstate__(self) -> _PositionState:
        return (
            self.base, self.base_as_of, self.journal.tobytes(), self.reserved,
            self.in_transit, self.unsellable, self.safety_stock,
        )

    def __setstate__(self, state: _PositionState) -> None:
        self.base, self.base_as_of, journal, self.reserved, self.in_transit, self.unsellable, self.safety_stock = state
        self.journal = journaled(journal)
        self.on_hand = self.base + sum(self.journal[1::2])


_PositionState = tuple[int, Micros | None, bytes, int, int, int, int]
