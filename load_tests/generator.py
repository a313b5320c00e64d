"""A synthetic retail day at load-test speed: numpy draws, ready-to-send Kafka messages.

``LoadGenerator(Scenario()).batches(n)`` yields ``Batch``es of ``(topic role, key,
value)`` messages (role: an ``atp.events.Topic`` value; key: the SKU; value: contract
JSON), about ``Scenario.batch_size`` at a time. Each batch is drawn column-wise with
numpy and its values are filled into byte templates, one per event type: 0.4 µs per
sale value against 2.0 µs for ``orjson.dumps`` over a dict (measured here).

The world: ``stores`` stores and ``dcs`` DCs (the example rules' ids, ``store-001`` …
and ``dc-east``, ``dc-central``, ``dc-west``, then ``dc-04`` …); ``skus`` SKUs with
bounded Zipf–Mandelbrot popularity ``(rank + offset) ** -exponent``, drawn by
``searchsorted`` over its CDF. Bigger stores carry more of the range: a SKU of
popularity rank r is carried by the ``stores * exp(-7 r / skus)`` largest stores (at
least 2), and every DC carries everything. Sales go to stores by size, e-commerce
picks and supplier receipts mostly to DCs.

The day: each event type has an hourly shape (tills follow store hours, the web peaks
in the evening, warehouses work two shifts, ERP counts run at night), and the event
at position g of the stream sits at the g-th quantile of the day's total density
(``day_events`` events per simulated day), so arrivals follow the shape exactly.
Flash sales add demand (sales and reservations) for a few mid-ranked SKUs in a window,
``multiplier`` times their normal rate, on top of everything else.

Future supply (contract section 7) takes ``supply_share`` of the events (default 1 %),
on ``erp.supply``: ``supply_expected`` opens a purchase-order line (mostly at a DC,
expected 2 to 28 days later) or revises an open one (qty and date), and
``supply_cancelled`` closes one; the other event types keep their mix, scaled by
``1 - supply_share``. ``dated_transfer_share`` of the shipments (default 20 %) carry an
``expected_at``. ``supply_share=0, dated_transfer_share=0`` gives the stream of before.

Consistency, so that the engine does real work:

- ``release`` and reserved ``pick`` events name open reservations of earlier batches
  (expired ones are never named); ``transfer_received``/``_cancelled`` name shipments at
  least ``transit_events`` events old. Without one to name, the slot becomes a
  ``reserve``, a pick without reservation, or a ``transfer_shipped``.
- The generator keeps its own book of on_hand. A position's first event is preceded
  by an opening ERP ``snapshot`` at its par level (``opening_counts``); snapshots
  have ``as_of`` just before their batch and count the book as it was then, so the
  engine's on_hand equals the book. Shipments refill store positions that fell to a
  third of par, receipts refill DCs, and counts go first to positions the book has
  negative ("found" stock), so positions stay mostly plausible.
- Receipts name open lines at least ``transit_events`` events old in ``reference``
  (whole, or 1 in 7 half of what is left, the rest received later); cancels name lines
  of earlier batches, revisions such lines not yet due (a PO changes before delivery),
  never a cancelled one. The other receipts refill as above, with ``PO-<n>``
  references that name no line.
- Timestamps have microseconds and strictly increase along the stream.

Same ``Scenario`` (seed included), same bytes. ``start`` is midnight of the first
simulated day; reservations expire by the engine's wall clock, so pass a recent
``start`` for expiries to happen during a run.

Speed check: ``python -m load_tests.generator --events 1000000 [--scale small]``.
"""

from __future__ import annotations

import argparse
import itertools
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from enum import IntEnum
from typing import Final, Literal

import numpy as np
import numpy.typing as npt

from atp.decoding import parse_timestamp
from atp.encoding import OPTIONAL, event_template
from atp.events import TYPE_NAMES as EVENT_TYPE_NAMES
from atp.events import Micros, Topic
from demo_retailer.catalog import CATEGORIES

I8 = npt.NDArray[np.int8]
I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]
Bools = npt.NDArray[np.bool_]
Record = tuple[str, bytes, bytes]


class Kind(IntEnum):
    SALE = 0
    SALE_VOID = 1
    RESERVE = 2
    RELEASE = 3
    PICK = 4
    TRANSFER_SHIPPED = 5
    TRANSFER_RECEIVED = 6
    TRANSFER_CANCELLED = 7
    RETURN = 8
    RECEIPT = 9
    ADJUSTMENT = 10
    SNAPSHOT = 11
    SUPPLY_EXPECTED = 12  # after the stock kinds: without supply the kind draws are those of before
    SUPPLY_CANCELLED = 13


TYPE_NAMES: Final = tuple(kind.name.lower() for kind in Kind)
EVENT_CLASSES: Final = {name: cls for cls, name in EVENT_TYPE_NAMES.items()}
ROLES: Final = (Topic.POS_SALES, Topic.POS_SALES, Topic.ECOM_RESERVATIONS, Topic.ECOM_RESERVATIONS, Topic.WMS_PICKS,
                *[Topic.INVENTORY_TRANSFERS] * 3, Topic.RETURNS, *[Topic.ERP_INVENTORY] * 3, *[Topic.ERP_SUPPLY] * 2)
DEFAULT_MIX: Final = (
    ("sale", 0.60), ("sale_void", 0.01), ("reserve", 0.12), ("release", 0.035), ("pick", 0.065),
    ("transfer_shipped", 0.03), ("transfer_received", 0.027), ("transfer_cancelled", 0.003),
    ("return", 0.03), ("receipt", 0.03), ("adjustment", 0.02), ("snapshot", 0.03),
)
CHANNELS: Final = (("web", 0.5), ("store_pickup", 0.2), ("amazon", 0.2), ("walmart", 0.1))  # rules/channels.yaml
NAMED_DCS: Final = ("dc-east", "dc-central", "dc-west")
# Hourly activity, hour 0 to 23 (relative: only the shape matters).
_STORE_HOURS = (.02, .01, .01, .01, .01, .02, .05, .2, .6, 1, 1.3, 1.6, 1.8, 1.6, 1.4, 1.4, 1.6, 1.9, 2, 1.7, 1.1, .5,
                .15, .05)
_WEB_HOURS = (.4, .25, .15, .1, .1, .15, .3, .6, .9, 1.1, 1.2, 1.3, 1.4, 1.3, 1.2, 1.2, 1.3, 1.4, 1.6, 1.9, 2.1, 2, 1.5,
              .9)
_SHIFT_HOURS = (.1, .1, .1, .1, .1, .3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, .4, .1)
_ERP_HOURS = (.5, 2, 3, 3, 2, .5, .6, .6, .6, .6, .6, .6, .6, .6, .6, .6, .6, .6, .6, .6, .6, .6, .3, .3)
HOURLY: Final = (_STORE_HOURS, _STORE_HOURS, _WEB_HOURS, _WEB_HOURS, _SHIFT_HOURS, _SHIFT_HOURS, _SHIFT_HOURS,
                 _SHIFT_HOURS, _STORE_HOURS, _SHIFT_HOURS, _ERP_HOURS, _ERP_HOURS,
                 _SHIFT_HOURS, _SHIFT_HOURS)  # by Kind
# Tags by store number within each run of 12, as in the first region of rules/nodes.yaml.
_PICKUP = frozenset({1, 2, 3, 5, 6, 7, 9, 10, 12})
_SHIP_FROM_STORE = frozenset({1, 2, 5, 9})
_REASONS = ((b"shrink", -2, -1), (b"damaged", -1, -1), (b"found", 1, 2), (b"recount", -3, 3), (b"theft", -3, -1))
_DISPOSITIONS = (b"restock", b"damaged", b"inspect")
_US = 1_000_000
_DAY_US = 86_400 * _US


@dataclass(frozen=True)
class FlashSale:
    """``skus`` hot SKUs sell ``multiplier`` times their normal rate for a window of the day."""

    start_s: int  # seconds after midnight
    duration_s: int
    skus: int = 5
    multiplier: float = 10.0


@dataclass(frozen=True)
class Scenario:
    """Everything that decides the stream; the same Scenario gives the same bytes."""

    stores: int = 300
    dcs: int = 3
    skus: int = 50_000
    zipf_exponent: float = 1.1
    zipf_offset: float = 5.0  # 0 is pure Zipf: with 1.1 the best seller alone takes 14 % of sales
    seed: int = 2026
    day_events: int = 5_000_000  # events per simulated day: the time compression
    start: str = "2026-11-23T00:00:00Z"
    run_id: str = ""  # id prefix; default "lg<seed>"
    batch_size: int = 10_000
    mix: tuple[tuple[str, float], ...] = DEFAULT_MIX
    channels: tuple[tuple[str, float], ...] = CHANNELS
    unsourced_share: float = 0.6  # of web, amazon and walmart reservations (store_pickup always names a store)
    expiring_share: float = 0.7
    hold_minutes: tuple[int, int] = (15, 120)
    reserved_pick_share: float = 0.85  # picks that name a reservation
    flash_sales: tuple[FlashSale, ...] = (FlashSale(12 * 3600, 1800), FlashSale(19 * 3600 + 1800, 1200, skus=3))
    transit_events: int = 20_000
    cover_days: float = 3.0  # par level: this many days of expected demand
    opening_counts: bool = True
    supply_share: float = 0.01  # supply_expected + supply_cancelled, of all events
    supply_cancel_share: float = 0.1  # of the supply events
    supply_revision_share: float = 0.3  # of supply_expected: revise an open line rather than open one
    dated_transfer_share: float = 0.2  # shipments with expected_at

    def __post_init__(self) -> None:
        unknown = {name for name, _ in self.mix} - set(TYPE_NAMES[: Kind.SNAPSHOT + 1])
        if unknown or self.stores < 1 or self.dcs < 1 or self.skus < 1 or self.batch_size < 1:
            raise ValueError(f"bad scenario: unknown types {sorted(unknown)} (supply types come from supply_share)"
                             " or an empty dimension")
        shares = (self.supply_cancel_share, self.supply_revision_share, self.dated_transfer_share)
        if not 0 <= self.supply_share < 1 or not all(0 <= share <= 1 for share in shares):
            raise ValueError("supply_share must be in [0, 1), the other supply shares in [0, 1]")
        if not all(c.isascii() and (c.isalnum() or c in "._:/-") for c in self.run_id) or len(self.run_id) > 100:
            # ids are pasted into JSON templates unescaped
            raise ValueError(f"run_id must be up to 100 characters of A-Z a-z 0-9 . _ - : /, got {self.run_id!r}")
        windows = sorted((f.start_s, f.start_s + f.duration_s) for f in self.flash_sales)
        if any(end > start for (_, end), (start, _) in itertools.pairwise(windows)):
            raise ValueError("flash sale windows must not overlap")
        if parse_timestamp(self.start) is None:
            raise ValueError(f"start must be an RFC 3339 timestamp, got {self.start!r}")

    @classmethod
    def at_scale(cls, scale: Literal["small", "full"] = "full", **overrides: object) -> Scenario:
        """``full``: 300 stores, 3 DCs, 50,000 SKUs; ``small``: the example rules' 48 stores, 5,000 SKUs."""
        base = cls() if scale == "full" else cls(stores=48, skus=5_000, day_events=500_000, transit_events=10_000)
        return replace(base, **overrides)  # type: ignore[arg-type]


@dataclass(frozen=True)
class Batch:
    """Messages in stream order; the first ``openings`` are opening counts."""

    roles: list[str]
    keys: list[bytes]
    values: list[bytes]
    kinds: I8
    skus: I64
    times: I64  # occurred_at, or as_of for snapshots, in µs since the epoch
    openings: int = 0

    def __len__(self) -> int:
        return len(self.values)

    def __iter__(self) -> Iterator[Record]:
        return zip(self.roles, self.keys, self.values, strict=True)


@dataclass
class _Pool:
    """Open reservations or shipments in transit, one array per attribute (a FIFO)."""

    cols: dict[str, I64] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(next(iter(self.cols.values()))) if self.cols else 0

    def add(self, **cols: I64) -> None:
        self.cols = {k: np.concatenate((self.cols[k], v)) if self.cols else v for k, v in cols.items()}

    def keep(self, mask: Bools) -> None:
        self.cols = {k: v[mask] for k, v in self.cols.items()}


def _cdf(weights: F64) -> F64:
    cumulative = np.cumsum(weights)
    return np.asarray(cumulative / cumulative[-1], dtype=np.float64)


def _pick(cdf: F64, u: F64) -> I64:
    """Indexes drawn by a CDF from uniforms (never past the last index)."""
    return np.asarray(np.minimum(np.searchsorted(cdf, u * cdf[-1], side="right"), len(cdf) - 1), dtype=np.int64)


@dataclass
class _Slots:
    """One batch's events as columns; ``node`` is from_node for transfers, ``node2`` to_node."""

    t: I64
    kind: I8
    sku: I64
    node: I64
    node2: I64
    qty: I64
    ref: I64  # reservation, transfer or purchase order number; -1 for none
    aux: I64  # channel, disposition or reason index
    exp: I64  # expires_at (µs), -1 for none

    @classmethod
    def empty(cls, t: I64, kind: I8) -> _Slots:
        n = len(t)
        return cls(t, kind, *(np.full(n, -1, np.int64) for _ in range(7)))

    def of(self, kind: Kind) -> I64:
        return np.flatnonzero(self.kind == kind)


class LoadGenerator:
    """The stream of one ``Scenario``; state (stock book, open reservations, shipments) lives here."""

    def __init__(self, scenario: Scenario) -> None:
        sc = self.scenario = scenario
        rng = self._rng = np.random.default_rng(sc.seed)
        self.run_id = sc.run_id or f"lg{sc.seed}"
        self._dcs, self.width = sc.dcs, sc.dcs + sc.stores
        digits = max(3, len(str(sc.stores)))
        self.node_ids = (*NAMED_DCS[: sc.dcs], *(f"dc-{i:02d}" for i in range(4, sc.dcs + 1)),
                         *(f"store-{i:0{digits}d}" for i in range(1, sc.stores + 1)))
        self.sku_ids = _sku_ids(sc.skus)
        self._node_bytes = np.array([n.encode() for n in self.node_ids], dtype=object)
        self._sku_bytes = np.array([s.encode() for s in self.sku_ids], dtype=object)
        self._node_part = np.array([b',"node":"%s"' % n for n in self._node_bytes] + [b""], dtype=object)
        self._channel_bytes = np.array([c.encode() for c, _ in sc.channels], dtype=object)
        self._channel_cdf = _cdf(np.array([share for _, share in sc.channels], dtype=np.float64))

        # popularity: a shuffled rank per SKU, so that popularity is not tied to id order
        rank_of = rng.permutation(sc.skus)
        self._sku_of_rank = np.argsort(rank_of).astype(np.int64)
        weights = np.asarray((np.arange(1, sc.skus + 1) + sc.zipf_offset) ** -sc.zipf_exponent, dtype=np.float64)
        self._rank_cdf = _cdf(weights)
        self.popularity: F64 = weights[rank_of] / weights.sum()

        # stores by size, biggest first; a SKU is carried by the biggest `carried` stores
        size = rng.lognormal(0.0, 0.5, sc.stores)
        order = np.argsort(-size, kind="stable")
        self._size_order = order.astype(np.int64) + sc.dcs
        slot = order % 12 + 1
        self._store_cdf = np.cumsum(size[order])
        self._pickup_cdf = np.cumsum(size[order] * np.isin(slot, list(_PICKUP)))
        self._sfs_cdf = np.cumsum(size[order] * np.isin(slot, list(_SHIP_FROM_STORE)))
        self._carried = np.clip(np.rint(sc.stores * np.exp(-7.0 * rank_of / sc.skus)), min(2, sc.stores), sc.stores)
        self._carried = self._carried.astype(np.int64)
        dc_weights = 1.0 / np.sqrt(np.arange(1, sc.dcs + 1))
        self._dc_cdf = _cdf(dc_weights)
        if sc.dcs >= 3:  # walmart excludes dc-west (rules/channels.yaml)
            dc_weights = dc_weights.copy()
            dc_weights[2] = 0.0
        self._walmart_dc_cdf = _cdf(dc_weights)

        # the day: kind probabilities by hour, event density by minute
        mix = dict(sc.mix)
        share = np.array([mix.get(name, 0.0) for name in TYPE_NAMES])
        share /= share.sum()
        if sc.supply_share:
            share *= 1 - sc.supply_share
            share[Kind.SUPPLY_EXPECTED] = sc.supply_share * (1 - sc.supply_cancel_share)
            share[Kind.SUPPLY_CANCELLED] = sc.supply_share * sc.supply_cancel_share
        self.shares = share
        # a draw at or past the last cumulative share (rounding) is the last kind that occurs
        self._last_kind = int(np.flatnonzero(share)[-1])
        shapes = np.array(HOURLY, dtype=np.float64)
        density = share[:, None] * shapes / shapes.mean(axis=1, keepdims=True)  # (kind, hour)
        self._kind_cdf = (np.cumsum(density, axis=0) / density.sum(axis=0)).T.copy()  # (hour, kind)
        base = np.repeat(density.sum(axis=0), 60)
        demand = np.repeat(density[Kind.SALE] + density[Kind.RESERVE], 60)
        self._flash_sale_share = np.repeat(density[Kind.SALE] / (density[Kind.SALE] + density[Kind.RESERVE]), 60)
        extra = np.zeros(1440)
        self._flash_of = np.full(1440, -1, np.int64)
        self.flash_skus: list[I64] = []
        self._flash_cdfs: list[F64] = []
        for i, flash in enumerate(sc.flash_sales):
            low, high = min(20, sc.skus - 1), min(2_000, sc.skus)  # promoted items, not the best sellers
            ranks = rng.choice(np.arange(low, high), size=min(flash.skus, high - low), replace=False)
            hot = self._sku_of_rank[ranks]
            window = slice(flash.start_s // 60, min(1440, math.ceil((flash.start_s + flash.duration_s) / 60)))
            extra[window] += (flash.multiplier - 1) * self.popularity[hot].sum() * demand[window]
            self._flash_of[window] = i
            self.flash_skus.append(hot)
            self._flash_cdfs.append(_cdf(self.popularity[hot]))
        self._flash_q = extra / (base + extra)
        self._minute_cdf = np.concatenate(([0.0], np.cumsum(base + extra) / (base + extra).sum()))
        self._start = parse_timestamp(sc.start) or 0

        # stock: par levels cover `cover_days` of expected demand
        units = sc.day_events * share[Kind.SALE] * 1.18 * self.popularity
        ecom = sc.day_events * share[Kind.PICK] * 1.25 * self.popularity
        self._store_par = np.clip(np.ceil(sc.cover_days * units / self._carried), 3, 100_000).astype(np.int64)
        self._dc_par = np.clip(np.ceil(sc.cover_days * (units + ecom) / sc.dcs), 12, 1_000_000).astype(np.int64)
        book = np.zeros((sc.skus, self.width), np.int32)  # 60 MB at full scale
        if sc.opening_counts:
            book[:, : sc.dcs] = self._dc_par[:, None]
            book[:, sc.dcs :] = self._store_par[:, None]
        self._book: npt.NDArray[np.int32] = book.reshape(-1)
        self._seen = np.zeros(len(self._book), np.bool_)
        self._on_order = np.zeros(len(self._book), np.bool_)

        self._reservations, self._shipments, self._lines = _Pool(), _Pool(), _Pool()
        self._store_low = self._dc_low = self._negative = np.zeros(0, np.int64)
        self._g = 0  # slots drawn so far (openings excluded): the position on the day's curve
        self._seq = 0  # messages so far: event ids
        self._counters = {"R": 0, "T": 0, "PO": 0, "POL": 0}
        self._last_t = self._start - 1
        self._stamp_cache: dict[int, bytes] = {}
        self._index: dict[str, int] = {}  # SKU or node id → index, built on first use
        self._templates = _templates(self.run_id.encode())

    def batches(self, total: int | None = None) -> Iterator[Batch]:
        """Batches of about ``batch_size`` messages; exactly ``total`` messages in all (endless with None)."""
        made = 0
        while total is None or made < total:
            batch = self._batch(self.scenario.batch_size)
            if total is not None and made + len(batch) > total:
                keep = total - made
                batch = Batch(batch.roles[:keep], batch.keys[:keep], batch.values[:keep], batch.kinds[:keep],
                              batch.skus[:keep], batch.times[:keep], min(batch.openings, keep))
            made += len(batch)
            yield batch

    def records(self, total: int) -> Iterator[Record]:
        for batch in self.batches(total):
            yield from batch

    def negative_share(self) -> float:
        """The share of positions seen so far that the book has below zero."""
        seen = self._seen.sum()
        return float((self._book[self._seen] < 0).sum() / seen) if seen else 0.0

    def on_hand(self, sku: str, node: str) -> int:
        """The generator's book for one position: what the engine should report after the stream."""
        if not self._index:
            self._index = {name: i for names in (self.sku_ids, self.node_ids) for i, name in enumerate(names)}
        return int(self._book[self._index[sku] * self.width + self._index[node]])

    def open_lines(self) -> list[tuple[str, str, str, int, Micros]]:
        """(SKU, supply_id, node, qty not yet received, expected_at) of each line the stream left open."""
        c = self._lines.cols
        if not c:
            return []
        return [(self.sku_ids[sku], f"POL-{self.run_id}-{line}", self.node_ids[node], qty - received, exp)
                for line, sku, node, qty, received, exp in zip(
                    *(c[k].tolist() for k in ("id", "sku", "node", "qty", "received", "exp")), strict=True)]

    def par(self, positions: I64) -> I64:
        skus, nodes = np.divmod(positions, self.width)
        return np.asarray(np.where(nodes < self._dcs, self._dc_par[skus], self._store_par[skus]), dtype=np.int64)

    # -- drawing ---------------------------------------------------------------------------

    def _batch(self, n: int) -> Batch:
        rng = self._rng
        g = self._g + np.arange(n, dtype=np.int64)
        self._g += n
        t, minute = self._times(g)
        hour = minute // 60
        flash = (self._flash_of[minute] >= 0) & (rng.random(n) < self._flash_q[minute])
        kind = (rng.random(n)[:, None] >= self._kind_cdf[hour]).sum(axis=1).astype(np.int8)
        kind[flash] = np.where(rng.random(flash.sum()) < self._flash_sale_share[minute[flash]], Kind.SALE, Kind.RESERVE)
        s = _Slots.empty(t, np.minimum(kind, self._last_kind).astype(np.int8))
        zipf = self._sku_of_rank[_pick(self._rank_cdf, rng.random(n))]
        for i, cdf in enumerate(self._flash_cdfs):
            hot = np.flatnonzero(flash & (self._flash_of[minute] == i))
            zipf[hot] = self.flash_skus[i][_pick(cdf, rng.random(len(hot)))]
        voided = self._void_sources(s)
        self._reserve(s, s.of(Kind.RESERVE), zipf)  # first, so that this batch's holds can be closed in it
        self._close_reservations(s)
        self._receive(s)
        self._fresh(s, zipf)
        s.sku[voided[0]], s.node[voided[0]], s.qty[voided[0]] = s.sku[voided[1]], s.node[voided[1]], s.qty[voided[1]]
        self._ship(s, zipf)
        self._supply(s, zipf)
        self._receipts(s, zipf)
        self._counts(s, zipf)
        openings = self._openings(s)
        self._apply(s)
        return self._encode(s, openings, as_of=int(t[0]) - 1)  # counts: after every earlier batch, before this one

    def _times(self, g: I64) -> tuple[I64, I64]:
        day, r = np.divmod(g, self.scenario.day_events)
        u = (r + 0.5) / self.scenario.day_events
        cdf = self._minute_cdf
        minute = np.minimum(np.searchsorted(cdf, u, side="right") - 1, 1439)
        offset = (minute + (u - cdf[minute]) / (cdf[minute + 1] - cdf[minute])) * 60 * _US
        t = self._start + day * 86_400 * _US + np.rint(offset).astype(np.int64)
        steps = np.arange(len(g), dtype=np.int64)
        floor = t - steps
        floor[0] = max(int(floor[0]), self._last_t + 1)
        t = np.maximum.accumulate(floor) + steps  # strictly increasing, also across batches
        self._last_t = int(t[-1])
        return t, minute.astype(np.int64)

    def _stores(self, skus: I64, cdf: F64 | None = None) -> I64:
        """A store carrying each SKU, by store size (among those with the tag behind ``cdf``)."""
        cdf = self._store_cdf if cdf is None else cdf
        top = cdf[self._carried[skus] - 1]
        top = np.where(top > 0, top, cdf[-1])  # none of its stores has the tag: the biggest that has
        j = np.searchsorted(cdf, self._rng.random(len(skus)) * top, side="right")
        return np.asarray(self._size_order[np.minimum(j, len(cdf) - 1)], dtype=np.int64)

    def _dc(self, n: int, cdf: F64 | None = None) -> I64:
        return _pick(self._dc_cdf if cdf is None else cdf, self._rng.random(n))

    def _next(self, counter: str, n: int) -> I64:
        first = self._counters[counter]
        self._counters[counter] = first + n
        return np.arange(first, first + n, dtype=np.int64)

    def _void_sources(self, s: _Slots) -> tuple[I64, I64]:
        """Voids take back a sale made earlier in the batch; without one, the slot is a sale."""
        voids, sales = s.of(Kind.SALE_VOID), s.of(Kind.SALE)
        before = np.searchsorted(sales, voids)
        s.kind[voids[before == 0]] = Kind.SALE
        voids, before = voids[before > 0], before[before > 0]
        return voids, sales[(self._rng.random(len(voids)) * before).astype(np.int64)]

    def _close_reservations(self, s: _Slots) -> None:
        """Releases and reserved picks close earlier open reservations; short of them, reserve or pick unreserved."""
        rng, pool = self._rng, self._reservations
        if len(pool):
            exp = pool.cols["exp"]
            pool.keep((exp < 0) | (exp > s.t[0]))
        releases = s.of(Kind.RELEASE)
        picks = s.of(Kind.PICK)
        picks = picks[rng.random(len(picks)) < self.scenario.reserved_pick_share]
        slots = np.sort(np.concatenate((releases, picks)))
        taken = min(len(slots), len(pool))
        alive = np.zeros(len(slots), np.bool_)
        cols: dict[str, I64] = {}
        if taken:
            chosen = rng.choice(len(pool), size=taken, replace=False)
            cols = {k: v[chosen] for k, v in pool.cols.items()}
            at = s.t[slots[:taken]]
            expired = (cols["exp"] >= 0) & (cols["exp"] <= at)
            alive[:taken] = ~expired & (cols["t"] < at)
            keep = np.ones(len(pool), np.bool_)
            keep[chosen[alive[:taken] | expired]] = False  # one reserved later in this batch stays open
            pool.keep(keep)
        s.kind[slots[~alive & (s.kind[slots] == Kind.RELEASE)]] = Kind.RESERVE  # unmatched picks go unreserved
        if not alive.any():
            return
        cols = {k: v[alive[:taken]] for k, v in cols.items()}
        slots = slots[alive]
        s.sku[slots], s.ref[slots], s.qty[slots], s.node[slots] = cols["sku"], cols["id"], cols["qty"], cols["node"]
        # an unsourced order is picked where the OMS routes it now: a DC its channel may use
        unsourced = np.flatnonzero((s.kind[slots] == Kind.PICK) & (s.node[slots] < 0))
        walmart = cols["channel"][unsourced] == self._channel_index("walmart")
        dcs = np.where(walmart, self._dc(len(unsourced), self._walmart_dc_cdf), self._dc(len(unsourced)))
        s.node[slots[unsourced]] = dcs

    def _channel_index(self, name: str) -> int:
        names = [c for c, _ in self.scenario.channels]
        return names.index(name) if name in names else -2

    def _receive(self, s: _Slots) -> None:
        """Receipts and cancellations close shipments old enough; short of them, ship instead."""
        slots = np.flatnonzero((s.kind == Kind.TRANSFER_RECEIVED) | (s.kind == Kind.TRANSFER_CANCELLED))
        pool = self._shipments
        taken = min(len(slots), self._due(pool, s))
        s.kind[slots[taken:]] = Kind.TRANSFER_SHIPPED
        slots = slots[:taken]
        if not taken:
            return
        c = pool.cols
        s.sku[slots], s.ref[slots], s.qty[slots] = c["sku"][:taken], c["id"][:taken], c["qty"][:taken]
        s.node[slots], s.node2[slots] = c["from"][:taken], c["to"][:taken]
        self._on_order[c["sku"][:taken] * self.width + c["to"][:taken]] = False
        keep = np.ones(len(pool), np.bool_)
        keep[:taken] = False
        pool.keep(keep)

    def _due(self, pool: _Pool, s: _Slots) -> int:
        """How many of the oldest in ``pool`` (a FIFO by ``g``) are at least ``transit_events`` old."""
        if not len(pool):
            return 0
        return int(np.searchsorted(pool.cols["g"], self._g - len(s.t) - self.scenario.transit_events, "right"))

    def _fresh(self, s: _Slots, zipf: I64) -> None:
        """SKU, node and quantity of the events that start something: sales, reservations, returns, ..."""
        rng = self._rng
        sales = s.of(Kind.SALE)
        s.sku[sales], s.node[sales] = zipf[sales], self._stores(zipf[sales])
        u = rng.random(len(sales))
        s.qty[sales] = 1 + (u > 0.85) + (u > 0.97)
        walk_in = np.flatnonzero((s.kind == Kind.PICK) & (s.ref < 0))
        s.sku[walk_in], s.qty[walk_in] = zipf[walk_in], 1
        at_dc = rng.random(len(walk_in)) < 0.7
        s.node[walk_in] = np.where(at_dc, self._dc(len(walk_in)), self._stores(zipf[walk_in], self._sfs_cdf))
        returns = s.of(Kind.RETURN)
        s.sku[returns], s.qty[returns] = zipf[returns], 1 + (rng.random(len(returns)) < 0.1)
        s.node[returns] = np.where(rng.random(len(returns)) < 0.8, self._stores(zipf[returns]), self._dc(len(returns)))
        s.aux[returns] = _pick(np.array([0.7, 0.85, 1.0]), rng.random(len(returns)))
        adjust = s.of(Kind.ADJUSTMENT)
        s.sku[adjust] = zipf[adjust]
        s.node[adjust] = np.where(rng.random(len(adjust)) < 0.75, self._stores(zipf[adjust]), self._dc(len(adjust)))
        reason = rng.integers(0, len(_REASONS), len(adjust))
        low, high = np.array([r[1] for r in _REASONS])[reason], np.array([r[2] for r in _REASONS])[reason]
        qty = low + (rng.random(len(adjust)) * (high - low + 1)).astype(np.int64)
        qty[qty == 0] = 1
        short = self._book[s.sku[adjust] * self.width + s.node[adjust]] + qty < 0
        reason[short], qty[short] = 2, 1  # nothing left to lose: the count finds one instead
        s.aux[adjust], s.qty[adjust] = reason, qty
        self._reserve(s, np.flatnonzero((s.kind == Kind.RESERVE) & (s.sku < 0)), zipf)

    def _reserve(self, s: _Slots, slots: I64, zipf: I64) -> None:
        rng, sc = self._rng, self.scenario
        n = len(slots)
        skus = zipf[slots]
        channel = _pick(self._channel_cdf, rng.random(n))
        node = np.full(n, -1, np.int64)
        sourced = rng.random(n) >= sc.unsourced_share
        pickup = np.flatnonzero(channel == self._channel_index("store_pickup"))  # always names its store
        node[pickup] = self._stores(skus[pickup], self._pickup_cdf)
        web = np.flatnonzero((channel == self._channel_index("web")) & sourced)  # a DC or a ship-from-store store
        node[web] = np.where(rng.random(len(web)) < 0.7, self._dc(len(web)), self._stores(skus[web], self._sfs_cdf))
        walmart = np.flatnonzero((channel == self._channel_index("walmart")) & sourced)
        node[walmart] = self._dc(len(walmart), self._walmart_dc_cdf)
        other = np.flatnonzero(sourced & (node < 0))
        node[other] = self._dc(len(other))
        u = rng.random(n)
        qty = 1 + (u > 0.8) + (u > 0.95)
        low, high = sc.hold_minutes
        hold = rng.integers(low * 60 * _US, high * 60 * _US + 1, n)
        exp = np.where(rng.random(n) < sc.expiring_share, s.t[slots] + hold, -1)
        ids = self._next("R", n)
        s.sku[slots], s.node[slots], s.qty[slots], s.aux[slots], s.exp[slots], s.ref[slots] = \
            skus, node, qty, channel, exp, ids
        self._reservations.add(id=ids, sku=skus, node=node, qty=qty, channel=channel, exp=exp, t=s.t[slots])

    def _ship(self, s: _Slots, zipf: I64) -> None:
        """DC → store shipments: store positions low after the last batch first, then top-ups."""
        slots = s.of(Kind.TRANSFER_SHIPPED)
        low = self._store_low[~self._on_order[self._store_low]][: len(slots)]
        rest = slots[len(low):]
        positions = np.concatenate((low, zipf[rest] * self.width + self._stores(zipf[rest])))
        skus, stores = np.divmod(positions, self.width)
        par, book = self.par(positions), self._book[positions]
        case = np.maximum(par // 4, 1)  # whole cases of a quarter of par: a little over par on arrival
        qty = np.clip(-(-(par - book) // case) * case, 1, 1_000_000)
        ids = self._next("T", len(slots))
        source = (stores - self._dcs) % self._dcs  # each store has a home DC
        s.sku[slots], s.node[slots], s.node2[slots], s.qty[slots], s.ref[slots] = skus, source, stores, qty, ids
        self._on_order[positions] = True
        self._shipments.add(id=ids, sku=skus, to=stores, qty=qty, g=self._g - len(s.t) + slots, **{"from": source})
        share = self.scenario.dated_transfer_share
        if share and len(slots):  # no draw without: the stream of before
            eta = s.t[slots] + self._rng.integers(1, 4, len(slots)) * _DAY_US
            s.exp[slots] = np.where(self._rng.random(len(slots)) < share, eta, -1)

    def _supply(self, s: _Slots, zipf: I64) -> None:
        """Purchase-order lines: cancels and revisions name lines of earlier batches, other slots open new ones."""
        expected, cancels = s.of(Kind.SUPPLY_EXPECTED), s.of(Kind.SUPPLY_CANCELLED)
        if not len(expected) and not len(cancels):
            return
        rng, pool = self._rng, self._lines
        revising = expected[rng.random(len(expected)) < self.scenario.supply_revision_share]
        none = np.zeros(0, np.int64)
        cancelled = rng.choice(len(pool), size=min(len(pool), len(cancels)), replace=False) if len(pool) else none
        # only lines not due yet are revised, so that no receipt of this batch comes before its line's revision
        free = np.setdiff1d(np.arange(self._due(pool, s), len(pool)), cancelled)
        revised = rng.choice(free, size=min(len(free), len(revising)), replace=False) if len(free) else none
        s.kind[cancels[len(cancelled):]] = Kind.SUPPLY_EXPECTED  # nothing to cancel: open a line instead
        cancels, revising = cancels[: len(cancelled)], revising[: len(revised)]
        c = pool.cols
        if len(pool):
            s.sku[cancels], s.ref[cancels] = c["sku"][cancelled], c["id"][cancelled]
            # qty never below what was received, so that a revised line stays open; the node stays
            factor = rng.uniform(0.5, 1.5, len(revised))
            qty = np.maximum(c["received"][revised] + 1, np.rint(c["qty"][revised] * factor).astype(np.int64))
            exp = np.maximum(c["exp"][revised] + rng.integers(-3, 8, len(revised)) * _DAY_US, s.t[revising])
            c["qty"][revised], c["exp"][revised] = qty, exp
            s.sku[revising], s.node[revising], s.ref[revising] = c["sku"][revised], c["node"][revised], c["id"][revised]
            s.qty[revising], s.exp[revising] = qty, exp
            keep = np.ones(len(pool), np.bool_)
            keep[cancelled] = False
            pool.keep(keep)
        new = np.flatnonzero(s.kind == Kind.SUPPLY_EXPECTED)
        new = new[~np.isin(new, revising)]
        n = len(new)
        skus = zipf[new]
        node = np.where(rng.random(n) < 0.9, self._dc(n), self._stores(skus))  # 1 in 10 delivered to a store
        qty = 12 * rng.integers(2, 21, n)
        day = s.t[new] - s.t[new] % _DAY_US
        exp = day + rng.integers(2, 29, n) * _DAY_US + rng.integers(6 * 3600, 18 * 3600, n) * _US
        ids = self._next("POL", n)
        s.sku[new], s.node[new], s.qty[new], s.exp[new], s.ref[new] = skus, node, qty, exp, ids
        pool.add(id=ids, sku=skus, node=node, qty=qty.copy(), received=np.zeros(n, np.int64), exp=exp.copy(),
                 g=self._g - len(s.t) + new)

    def _receive_lines(self, s: _Slots, slots: I64) -> I64:
        """The first receipt slots receive open lines old enough; returns the slots left."""
        pool = self._lines
        taken = min(len(slots), self._due(pool, s))
        if not taken:
            return slots
        c = pool.cols
        left = c["qty"][:taken] - c["received"][:taken]
        qty = np.where((self._rng.random(taken) < 1 / 7) & (left > 1), left // 2, left)  # short deliveries
        mine = slots[:taken]
        s.sku[mine], s.node[mine], s.qty[mine], s.ref[mine] = c["sku"][:taken], c["node"][:taken], qty, c["id"][:taken]
        s.aux[mine] = 1  # the reference names a line
        c["received"][:taken] += qty
        pool.keep(c["received"] < c["qty"])
        return slots[taken:]

    def _receipts(self, s: _Slots, zipf: I64) -> None:
        """Supplier receipts: lines due, then DC positions low after the last batch, DC top-ups, 1 in 10 to a store."""
        rng = self._rng
        slots = self._receive_lines(s, s.of(Kind.RECEIPT))
        at_store = rng.random(len(slots)) < 0.1
        dc_slots, store_slots = slots[~at_store], slots[at_store]
        low = self._dc_low[: len(dc_slots)]
        rest = dc_slots[len(low):]
        positions = np.concatenate((low, zipf[rest] * self.width + self._dc(len(rest)),
                                    zipf[store_slots] * self.width + self._stores(zipf[store_slots])))
        slots = np.concatenate((dc_slots, store_slots))
        par, book = self.par(positions), self._book[positions]
        case = np.where(positions % self.width < self._dcs, 12, 6)
        qty = np.clip(-(-np.maximum(par - book, case) // case) * case, 1, 1_000_000)
        s.sku[slots], s.node[slots] = np.divmod(positions, self.width)
        s.qty[slots] = qty
        s.ref[slots] = np.where(rng.random(len(slots)) < 0.8, self._next("PO", len(slots)), -1)

    def _counts(self, s: _Slots, zipf: I64) -> None:
        """ERP counts: positions the book has negative first (stock found), then random ones."""
        rng = self._rng
        slots = s.of(Kind.SNAPSHOT)
        low = self._negative[: len(slots)]
        rest = slots[len(low):]
        at_store = rng.random(len(rest)) < 0.8
        nodes = np.where(at_store, self._stores(zipf[rest]), self._dc(len(rest)))
        positions = np.concatenate((low, zipf[rest] * self.width + nodes))
        unique, inverse = np.unique(positions, return_inverse=True)
        book, par = self._book[unique], self.par(unique)
        found = par // 3 + (rng.random(len(unique)) * (par - par // 3 + 1)).astype(np.int64)
        shrink = (book > 0) & (rng.random(len(unique)) < 0.2)
        count = np.where(book < 0, found, book - shrink)
        fresh = ~self._seen[unique]  # gets an opening count too (the same), ahead of the batch
        count[fresh] = book[fresh]
        s.sku[slots], s.node[slots] = np.divmod(positions, self.width)
        s.qty[slots] = count[inverse]
        self._book[unique] = count  # as of just before this batch: this batch's events come on top

    def _openings(self, s: _Slots) -> tuple[I64, I64]:
        """Positions this batch touches for the first time, with their opening count (the book's par)."""
        stock = (s.node >= 0) & (s.kind < Kind.SUPPLY_EXPECTED)  # an expected line holds no stock yet
        positions = np.concatenate((s.sku[stock] * self.width + s.node[stock],
                                    s.sku[s.node2 >= 0] * self.width + s.node2[s.node2 >= 0]))
        new = np.unique(positions[~self._seen[positions]])
        self._seen[new] = True
        if not self.scenario.opening_counts:
            new = new[:0]
        return new, self._book[new]

    def _apply(self, s: _Slots) -> None:
        """Moves the book by this batch's events and notes the positions to refill or count next."""
        at_node = np.array([-1, 1, 0, 0, -1, -1, 0, 1, 1, 1, 1, 0, 0, 0], np.int64)[s.kind]
        at_node[(s.kind == Kind.RETURN) & (s.aux != 0)] = 0  # damaged or to inspect: not on_hand
        moved = np.flatnonzero(at_node)
        positions = s.sku[moved] * self.width + s.node[moved]
        np.add.at(self._book, positions, (at_node[moved] * s.qty[moved]).astype(np.int32))
        received = s.of(Kind.TRANSFER_RECEIVED)
        destinations = s.sku[received] * self.width + s.node2[received]
        np.add.at(self._book, destinations, s.qty[received].astype(np.int32))
        touched = np.unique(np.concatenate((positions, destinations)))
        book, par = self._book[touched], self.par(touched)
        # biggest refills first, those at a third of par or less before the rest below par
        order = np.lexsort((book - par, 3 * book > par))
        touched, book, par = touched[order], book[order], par[order]
        at_store = touched % self.width >= self._dcs
        self._store_low = touched[at_store & (book < par) & ~self._on_order[touched]]
        self._dc_low = touched[~at_store & (book < par)]
        self._negative = touched[book < 0]

    # -- encoding --------------------------------------------------------------------------

    def _encode(self, s: _Slots, openings: tuple[I64, I64], as_of: int) -> Batch:
        positions, on_hand = openings
        n_open = len(positions)
        none = np.full(n_open, -1, np.int64)
        kind = np.concatenate((np.full(n_open, Kind.SNAPSHOT, np.int8), s.kind))
        sku = np.concatenate((positions // self.width, s.sku))
        node = np.concatenate((positions % self.width, s.node))
        node2, ref, aux, exp = (np.concatenate((none, c)) for c in (s.node2, s.ref, s.aux, s.exp))
        qty = np.concatenate((on_hand, s.qty))
        t = np.concatenate((np.full(n_open, as_of, np.int64), np.where(s.kind == Kind.SNAPSHOT, as_of, s.t)))
        n = len(kind)
        seq = self._seq + np.arange(n, dtype=np.int64)
        self._seq += n
        stamps = self._stamps(t)
        values = np.empty(n, dtype=object)
        order = np.argsort(kind, kind="stable")
        bounds = np.searchsorted(kind[order], np.arange(len(Kind) + 1))
        for k in Kind:
            idx = order[bounds[k] : bounds[k + 1]]
            if len(idx) == 0:
                continue
            columns: list[list[object]] = [seq[idx].tolist(), self._sku_bytes[sku[idx]].tolist()]
            optional: list[list[object]] = []  # optional fields come after the time in the contract's order
            if k == Kind.RESERVE:
                columns += [ref[idx].tolist(), self._channel_bytes[aux[idx]].tolist(), qty[idx].tolist()]
                optional += [self._node_part[node[idx]].tolist(),
                             self._optional(exp[idx], b',"expires_at":"%s"', stamps=True)]
            elif k == Kind.RELEASE:
                columns.append(ref[idx].tolist())
            elif k in (Kind.TRANSFER_SHIPPED, Kind.TRANSFER_RECEIVED, Kind.TRANSFER_CANCELLED):
                columns += [ref[idx].tolist(), self._node_bytes[node[idx]].tolist(),
                            self._node_bytes[node2[idx]].tolist(), qty[idx].tolist()]
                if k == Kind.TRANSFER_SHIPPED:
                    optional.append(self._optional(exp[idx], b',"expected_at":"%s"', stamps=True))
            elif k == Kind.SUPPLY_EXPECTED:
                columns += [ref[idx].tolist(), self._node_bytes[node[idx]].tolist(), qty[idx].tolist(),
                            self._stamps(exp[idx]).tolist()]
            elif k == Kind.SUPPLY_CANCELLED:
                columns.append(ref[idx].tolist())
            else:
                columns += [self._node_bytes[node[idx]].tolist(), qty[idx].tolist()]
                if k == Kind.PICK:
                    optional.append(self._optional(ref[idx], b',"reservation_id":"R-%s-%%d"' % self.run_id.encode()))
                elif k == Kind.RECEIPT:
                    optional.append(self._references(ref[idx], aux[idx]))
                elif k == Kind.RETURN:
                    columns.append([_DISPOSITIONS[a] for a in aux[idx].tolist()])
                elif k == Kind.ADJUSTMENT:
                    columns.append([_REASONS[a][0] for a in aux[idx].tolist()])
            columns.append(stamps[idx].tolist())
            columns += optional
            template = self._templates[k]
            values[idx] = [template % row for row in zip(*columns, strict=True)]
        roles = np.array([r.value for r in ROLES], dtype=object)[kind]
        return Batch(roles.tolist(), self._sku_bytes[sku].tolist(), values.tolist(), kind, sku, t, n_open)

    def _optional(self, column: I64, template: bytes, *, stamps: bool = False) -> list[object]:
        """``template % value`` where the value is set (>= 0), else nothing; ``stamps``: µs as timestamps."""
        parts = np.full(len(column), b"", dtype=object)
        has = column >= 0
        if has.any():
            values = self._stamps(column[has]).tolist() if stamps else column[has].tolist()
            parts[has] = [template % v for v in values]
        result: list[object] = parts.tolist()
        return result

    def _references(self, ref: I64, aux: I64) -> list[object]:
        """Receipts' ``reference``: the line received (``aux`` 1), else a purchase order that names no line."""
        lines = aux == 1
        parts = self._optional(np.where(lines, -1, ref), b',"reference":"PO-%d"')
        template = b',"reference":"POL-%s-%%d"' % self.run_id.encode()
        for i, line in zip(np.flatnonzero(lines).tolist(), ref[lines].tolist(), strict=True):
            parts[i] = template % line
        return parts

    def _stamps(self, micros: I64) -> npt.NDArray[np.object_]:
        """RFC 3339 UTC with microseconds, e.g. ``2026-11-23T10:15:00.123456Z``."""
        seconds, fraction = np.divmod(micros, _US)
        unique, inverse = np.unique(seconds, return_inverse=True)
        cache = self._stamp_cache
        if len(cache) > 100_000:
            cache.clear()
        for second in unique.tolist():
            if second not in cache:
                cache[second] = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second)).encode()
        prefixes = np.array([cache[second] for second in unique.tolist()], dtype=object)[inverse]
        return np.array([b"%s.%06dZ" % pair for pair in zip(prefixes.tolist(), fraction.tolist(), strict=True)],
                        dtype=object)


def _templates(run: bytes) -> dict[Kind, bytes]:
    """Each kind's contract JSON as a ``%``-template (``atp.encoding``), filled in ``_encode``'s column order."""
    text, number = b'"%s"', b"%d"
    common = {"event_id": b'"' + run + b'-%d"', "sku": text}
    reservation = {"reservation_id": b'"R-' + run + b'-%d"'}
    line = {"supply_id": b'"POL-' + run + b'-%d"'}
    movement = {**common, "node": text, "qty": number, "occurred_at": text}
    slots: dict[Kind, dict[str, bytes]] = {
        Kind.SALE: movement, Kind.SALE_VOID: movement,
        Kind.RESERVE: {**common, **reservation, "channel": text, "qty": number, "occurred_at": text,
                       "node": OPTIONAL, "expires_at": OPTIONAL},
        Kind.RELEASE: {**common, **reservation, "occurred_at": text},
        Kind.PICK: {**movement, "reservation_id": OPTIONAL},
        Kind.RETURN: {**movement, "disposition": text},
        Kind.RECEIPT: {**movement, "reference": OPTIONAL},
        Kind.ADJUSTMENT: {**movement, "reason": text},
        Kind.SNAPSHOT: {**common, "node": text, "on_hand": number, "as_of": text},
        Kind.SUPPLY_EXPECTED: {**common, **line, "node": text, "qty": number, "expected_at": text, "occurred_at": text},
        Kind.SUPPLY_CANCELLED: {**common, **line, "occurred_at": text},
    }
    for k in (Kind.TRANSFER_SHIPPED, Kind.TRANSFER_RECEIVED, Kind.TRANSFER_CANCELLED):
        slots[k] = {**common, "transfer_id": b'"T-' + run + b'-%d"', "from_node": text, "to_node": text,
                    "qty": number, "occurred_at": text}
    slots[Kind.TRANSFER_SHIPPED]["expected_at"] = OPTIONAL
    return {k: event_template(EVENT_CLASSES[TYPE_NAMES[k]], fields) for k, fields in slots.items()}


def _sku_ids(count: int) -> tuple[str, ...]:
    """``count`` ids over the demo's categories by their share, e.g. ``TV-000042`` (safety-stock rules match)."""
    shares = np.array([share for _, share, _ in CATEGORIES])
    counts = np.floor(shares / shares.sum() * count).astype(np.int64)
    counts[np.argmax(counts)] += count - counts.sum()
    return tuple(f"{prefix}-{i:06d}" for (prefix, _, _), n in zip(CATEGORIES, counts.tolist(), strict=True)
                 for i in range(1, n + 1))


def main() -> None:
    parser = argparse.ArgumentParser(description="Generation speed, one core, no Kafka.")
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--scale", choices=("small", "full"), default="full")
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--supply-share", type=float, default=Scenario.supply_share,
                        help="share of supply_expected and supply_cancelled events")
    args = parser.parse_args()
    started = time.process_time()  # CPU time: one core, whatever else the machine runs
    generator = LoadGenerator(Scenario.at_scale(args.scale, seed=args.seed, day_events=args.events,
                                                supply_share=args.supply_share))
    setup = time.process_time() - started
    started = time.process_time()
    made = opening = size = 0
    for batch in generator.batches(args.events):
        made += len(batch)
        opening += batch.openings
        size += sum(map(len, batch.values))
    elapsed = time.process_time() - started
    print(f"{args.scale}: {made:,} events ({opening:,} opening counts, {size / made:.0f} B mean value) in "
          f"{elapsed:.2f} s CPU = {made / elapsed:,.0f} events/s (setup {setup:.2f} s); "
          f"{generator.negative_share():.2%} of positions negative in the book")

if __name__ == "__main__":
    main()
