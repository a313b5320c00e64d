"""A SKU's state as a series of change records, so a snapshot costs what changed.

A record is a plain tuple, for the caller to pickle with others. It is either whole
(the state, as ``SkuState.flat``) or a change on top of the one before: the scalars and
channel numbers, each touched position with only the journal entries appended since,
each touched reservation and transfer, each touched expected-supply line and transfer
ETA, and the new event ids. ``restore`` of the records taken so far equals the live
state, dict order included (property-tested in ``tests/unit/atp/test_changes.py``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from atp.pending import PendingChange
from atp.positions import Position, journaled
from atp.reservations import Reservation, Transfer
from atp.state import SkuState, shared_node_id
from atp.supply import ExpectedSupply

WHOLE = "W"
CHANGE = "C"

Change = tuple[str, tuple[Any, ...]]
"""(WHOLE, state) or (CHANGE, what changed): plain tuples, dicts, ints and bytes."""


def take_change(state: SkuState, *, whole: bool = False) -> Change:
    """The record of what changed since the last call (or since the state was made).

    It shares the live state's dicts: pickle it before the state changes again.
    """
    pending = state.pending
    if whole or pending.whole:
        pending.reset()
        return WHOLE, state.flat()
    positions = {}
    for node, mark in pending.journal_marks.items():
        p = state.positions[node]
        positions[node] = (
            p.base, p.base_as_of, p.on_hand, p.reserved, p.in_transit, p.unsellable, p.safety_stock,
            p.counted, mark, p.journal[mark:].tobytes(),
        )
    event_ids = pending.event_ids  # handed over: ``reset`` gives the pending change a new dict
    if pending.pruned:  # some new ids may be forgotten already: those older than the new horizon
        horizon = state.horizon
        event_ids = {event_id: at for event_id, at in event_ids.items() if at >= horizon}
    record = CHANGE, (
        positions,
        {rid: state.reservations[rid].__getstate__() for rid in pending.reservations},
        {key: state.transfers[key].__getstate__() for key in pending.transfers},
        event_ids, pending.pruned, list(pending.dropped_reservations), list(pending.dropped_transfers),
        state.horizon, state.watermark, state.as_of, state.unsourced, state.contrib, state.shown,
        state.rules_version, state.expiry_due, _supply_change(state, pending),
    )
    pending.reset()
    return record


def _supply_change(state: SkuState, pending: PendingChange) -> tuple[Any, ...] | None:
    """The touched lines and ETAs, and those pruned; None when supply was not touched."""
    supply = state.supply
    if supply is None or not (pending.supply_lines or pending.supply_etas or pending.dropped_lines
                              or pending.dropped_etas):
        return None
    return (
        {supply_id: supply.lines[supply_id] for supply_id in pending.supply_lines},
        {key: supply.etas[key] for key in pending.supply_etas},
        list(pending.dropped_lines), list(pending.dropped_etas),
    )


def restore(records: Sequence[Change]) -> SkuState:
    """The state the records describe: the last whole one, then each change after it."""
    start = max((i for i, (kind, _) in enumerate(records) if kind == WHOLE), default=None)
    if start is None:
        raise ValueError("no whole record to start from")
    state = SkuState.from_flat(records[start][1])
    for kind, change in records[start + 1:]:
        if kind != CHANGE:
            raise ValueError(f"not a change record: {kind!r}")
        _apply(state, change)
    return state


_BEFORE_SUPPLY = 15
"""Fields of a change record written before expected supply; still read."""


def _apply(state: SkuState, change: tuple[Any, ...]) -> None:
    if len(change) == _BEFORE_SUPPLY:
        change = (*change, None)
    (positions, reservations, transfers, event_ids, pruned, dropped_reservations, dropped_transfers,
     state.horizon, state.watermark, state.as_of, state.unsourced, state.contrib, state.shown,
     state.rules_version, state.expiry_due, supply) = change
    for node, values in positions.items():
        position = state.positions.get(node)
        if position is None:
            position = state.positions[shared_node_id(node)] = Position()
        (position.base, position.base_as_of, position.on_hand, position.reserved, position.in_transit,
         position.unsellable, position.safety_stock, position.counted, mark, tail) = values
        position.journal = journaled(tail, position.journal[:mark] if mark else None)
    # A reservation or transfer made and pruned between two records is in neither of them.
    for rid in dropped_reservations:
        state.reservations.pop(rid, None)
    for key in dropped_transfers:
        state.transfers.pop(key, None)
    for rid, values in reservations.items():
        reservation = state.reservations.get(rid)
        if reservation is None:
            reservation = state.reservations[rid] = Reservation()
        reservation.__setstate__(values)
    for key, values in transfers.items():
        transfer = state.transfers.get(key)
        if transfer is None:
            transfer = state.transfers[key] = Transfer()
        transfer.__setstate__(values)
    if supply is not None:
        _apply_supply(state, supply)
    state.seen.update(event_ids)
    if pruned:
        horizon = state.horizon
        state.seen = {event_id: at for event_id, at in state.seen.items() if at >= horizon}


def _apply_supply(state: SkuState, change: tuple[Any, ...]) -> None:
    lines, etas, dropped_lines, dropped_etas = change
    supply = state.supply
    if supply is None:
        supply = state.supply = ExpectedSupply()
    # as for reservations: what was dropped goes first, so a line made again after a prune comes last
    for supply_id in dropped_lines:
        supply.lines.pop(supply_id, None)
    for key in dropped_etas:
        supply.etas.pop(key, None)
    supply.lines.update(lines)
    supply.etas.update(etas)
