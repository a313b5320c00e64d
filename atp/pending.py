"""What a SKU's state changed since its last snapshot: enough to write only the change."""

from __future__ import annotations

from mypy_extensions import mypyc_attr

TransferKey = tuple[str, str, str]


@mypyc_attr(acyclic=True)
class PendingChange:
    """Marks set by ``SkuState`` as it changes; read and reset by ``atp.changes.take_change``.

    ``whole``: the change is not worth describing (a new state, a rules rebase); the next
    record restates the SKU whole. ``journal_marks``: per touched node, the journal length
    at the first touch, so only the entries after it are new (0 when the journal was
    rewritten by a count or folded by a prune). ``pruned``: history older than the horizon
    was forgotten, the ``dropped_*`` records with it. ``supply_lines``/``supply_etas``: the
    touched lines and transfer ETAs of ``atp.supply.ExpectedSupply``. Dicts, not sets, keep
    first-touch order, which restores every dict of the state in the same order as the live one.
    """

    __slots__ = (
        "whole", "journal_marks", "reservations", "transfers", "event_ids", "pruned",
        "dropped_reservations", "dropped_transfers", "supply_lines", "supply_etas",
        "dropped_lines", "dropped_etas",
    )

    def __init__(self, *, whole: bool) -> None:
        self.whole = whole
        self.journal_marks: dict[str, int] = {}
        self.reservations: dict[str, None] = {}
        self.transfers: dict[TransferKey, None] = {}
        self.event_ids: dict[str, int] = {}  # the new ids and their event times, as ``SkuState.seen`` holds them
        self.pruned = False
        self.dropped_reservations: dict[str, None] = {}
        self.dropped_transfers: dict[TransferKey, None] = {}
        self.supply_lines: dict[str, None] = {}
        self.supply_etas: dict[TransferKey, None] = {}
        self.dropped_lines: dict[str, None] = {}
        self.dropped_etas: dict[TransferKey, None] = {}

    def reset(self) -> None:
        """Nothing changed since: new containers for the used ones (a record may hold them), the rest kept."""
        self.whole = self.pruned = False
        if self.journal_marks:
            self.journal_marks = {}
        if self.reservations:
            self.reservations = {}
        if self.transfers:
            self.transfers = {}
        if self.event_ids:
            self.event_ids = {}
        if self.dropped_reservations:
            self.dropped_reservations = {}
        if self.dropped_transfers:
            self.dropped_transfers = {}
        if self.supply_lines:
            self.supply_lines = {}
        if self.supply_etas:
            self.supply_etas = {}
        if self.dropped_lines:
            self.dropped_lines = {}
        if self.dropped_etas:
            self.dropped_etas = {}
