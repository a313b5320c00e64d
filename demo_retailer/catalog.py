"""The demo retailer's world: nodes, SKUs, where each SKU is stocked, and its stock book.

Popularity is Zipf-like (a few SKUs sell most of the units), and so is distribution:
best sellers are stocked in every store, the long tail in a handful. Par levels (the
quantity a position is replenished up to) follow popularity too. ``StockBook`` is the
generator's own on_hand; ``poison_value`` makes the messages the engine must reject.
"""

from __future__ import annotations

import bisect
import functools
import math
import random
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

DEFAULT_DCS: Final = ("dc-east", "dc-central", "dc-west")
DEFAULT_STORES: Final = 48
STORE_TYPE: Final = "store"

# (prefix, share of the assortment, variants of one style); ids look like
# TV-0042-55, TSHIRT-0311-NVY-M, SHOE-0107-10.5, TOY-00042.
CATEGORIES: Final[tuple[tuple[str, float, tuple[str, ...]], ...]] = (
    ("TV", 0.02, ("43", "50", "55", "65", "75", "85")),
    ("PHN", 0.04, ("128G", "256G", "512G")),
    ("LAP", 0.03, ("8G", "16G", "32G")),
    ("HDPH", 0.04, ("BLK", "WHT", "BLU")),
    ("PERF", 0.04, ("30ML", "50ML", "100ML")),
    ("RAZOR", 0.02, ("4PK", "8PK", "12PK")),
    ("SHOE", 0.18, tuple(f"{size / 2:g}" for size in range(12, 28))),
    ("TSHIRT", 0.25, tuple(f"{color}-{size}" for color in ("BLK", "WHT", "NVY", "GRY", "RED")
                            for size in ("XS", "S", "M", "L", "XL", "XXL"))),
    ("JEANS", 0.12, tuple(f"W{waist}L{leg}" for waist in range(28, 40, 2) for leg in (30, 32, 34))),
    ("HOME", 0.14, ()),
    ("TOY", 0.12, ()),
)
ZIPF_EXPONENT: Final = 1.0
ZIPF_OFFSET: Final = 20  # Zipf-Mandelbrot: with 5,000 SKUs the best seller has ~1% of demand, the top 20% ~70%


def default_nodes() -> list[tuple[str, str]]:
    """The example rules' nodes (``rules/nodes.yaml``): 3 DCs and store-001 … store-048."""
    return [(dc, "dc") for dc in DEFAULT_DCS] + [(f"store-{i:03d}", STORE_TYPE) for i in range(1, DEFAULT_STORES + 1)]


def format_ms(ms: int) -> str:
    """RFC 3339 UTC with milliseconds, e.g. ``2026-11-23T10:15:00.123Z``."""
    second, millis = divmod(ms, 1000)
    return f"{_second_prefix(second)}.{millis:03d}Z"


@functools.lru_cache(maxsize=1024)
def _second_prefix(second: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))


@dataclass(frozen=True)
class Nodes:
    """Node ids and types, with the stores and the warehouses (every other type) by index."""

    ids: tuple[str, ...]
    stores: tuple[int, ...]
    dcs: tuple[int, ...]

    @classmethod
    def of(cls, nodes: Sequence[tuple[str, str]]) -> Nodes:
        if not nodes:
            raise ValueError("the demo retailer needs at least one node")
        ids = tuple(node_id for node_id, _ in nodes)
        if len(set(ids)) != len(ids):
            raise ValueError("node ids must be unique")
        stores = tuple(i for i, (_, node_type) in enumerate(nodes) if node_type == STORE_TYPE)
        dcs = tuple(i for i, (_, node_type) in enumerate(nodes) if node_type != STORE_TYPE)
        # A network of only stores (or only DCs) still works: each role falls back to every node.
        return cls(ids, stores or tuple(range(len(ids))), dcs or tuple(range(len(ids))))


@dataclass(frozen=True)
class Catalog:
    """SKUs by index with popularity, stocking stores and par levels."""

    skus: tuple[str, ...]
    cum_weights: tuple[float, ...]
    stores: tuple[tuple[int, ...], ...]
    store_par: tuple[int, ...]
    dc_par: tuple[int, ...]

    def pick(self, rng: random.Random) -> int:
        """A SKU index drawn by popularity."""
        return bisect.bisect_right(self.cum_weights, rng.random() * self.cum_weights[-1])

    def share(self, sku: int) -> float:
        """The SKU's share of all demand."""
        low = self.cum_weights[sku - 1] if sku else 0.0
        return (self.cum_weights[sku] - low) / self.cum_weights[-1]


def sku_ids(rng: random.Random, count: int) -> list[str]:
    """``count`` distinct SKU ids, spread over the categories by their share."""
    wanted = [max(1, round(share * count)) for _, share, _ in CATEGORIES]
    wanted[-1] += count - sum(wanted)
    while wanted[-1] < 0:  # tiny catalogs: take from the largest category
        wanted[wanted.index(max(wanted))] -= 1
        wanted[-1] += 1
    ids: list[str] = []
    for (prefix, _, variants), target in zip(CATEGORIES, wanted, strict=True):
        style = 0
        made = 0
        while made < target:
            style += 1
            if not variants:
                ids.append(f"{prefix}-{style:05d}")
                made += 1
                continue
            size = rng.randint(1, len(variants))
            start = rng.randrange(len(variants))
            for k in range(min(size, target - made)):
                ids.append(f"{prefix}-{style:04d}-{variants[(start + k) % len(variants)]}")
                made += 1
    return ids[:count]


def build_catalog(rng: random.Random, count: int, nodes: Nodes) -> Catalog:
    """A catalog of ``count`` SKUs over ``nodes``, drawn from ``rng``."""
    if count < 1:
        raise ValueError("the demo retailer needs at least one SKU")
    skus = sku_ids(rng, count)
    ranks = list(range(1, count + 1))
    rng.shuffle(ranks)  # popularity is not tied to category or id order
    weights = [(rank + ZIPF_OFFSET) ** -ZIPF_EXPONENT for rank in ranks]
    top = (1 + ZIPF_OFFSET) ** -ZIPF_EXPONENT
    cumulative: list[float] = []
    total = 0.0
    for weight in weights:
        total += weight
        cumulative.append(total)
    n_stores = len(nodes.stores)
    stores: list[tuple[int, ...]] = []
    store_par: list[int] = []
    dc_par: list[int] = []
    for rank, weight in zip(ranks, weights, strict=True):
        # Best sellers are in every store; the median SKU in about 1 store in 30.
        k = min(n_stores, max(2, round(n_stores * math.exp(-7 * (rank - 1) / count))))
        stores.append(tuple(sorted(rng.sample(nodes.stores, k))))
        par = 10 + round(190 * math.sqrt(weight / top))
        store_par.append(par)
        dc_par.append(24 + round(par * k * 0.75))
    return Catalog(tuple(skus), tuple(cumulative), tuple(stores), tuple(store_par), tuple(dc_par))


class StockBook:
    """The generator's own view of on_hand and in-transit per position, and what to replenish.

    A position is ``sku * len(node ids) + node``. A position that falls to a third of its
    par level (counting what is already on its way) joins the store or DC reorder queue.
    """

    def __init__(self, catalog: Catalog, nodes: Nodes) -> None:
        self.catalog = catalog
        self.width = len(nodes.ids)
        self._store_nodes = frozenset(nodes.stores)
        self.on_hand: dict[int, int] = {}
        self.in_transit: dict[int, int] = {}
        self.touched: dict[int, int] = {}  # time (ms) of the position's last on_hand change
        self.reorder: dict[bool, deque[int]] = {True: deque(), False: deque()}  # keyed by "is a store"
        self._queued: set[int] = set()

    def position(self, sku: int, node: int) -> int:
        return sku * self.width + node

    def sku_node(self, position: int) -> tuple[int, int]:
        return divmod(position, self.width)

    def par(self, position: int) -> int:
        sku, node = divmod(position, self.width)
        return self.catalog.store_par[sku] if node in self._store_nodes else self.catalog.dc_par[sku]

    def deficit(self, position: int) -> int:
        """Units needed to bring on_hand plus in-transit back to par."""
        return self.par(position) - self.on_hand[position] - self.in_transit.get(position, 0)

    def move(self, position: int, delta: int, at_ms: int) -> None:
        self.on_hand[position] += delta
        self.touched[position] = at_ms
        if delta < 0:
            self._check(position)

    def count(self, position: int, on_hand: int, at_ms: int) -> None:
        """Sets on_hand from a count taken at ``at_ms``."""
        self.on_hand[position] = on_hand
        self.touched[position] = at_ms
        self._check(position)

    def _check(self, position: int) -> None:
        if position in self._queued:
            return
        par = self.par(position)
        if 3 * (self.on_hand[position] + self.in_transit.get(position, 0)) <= par:
            self._queued.add(position)
            self.reorder[position % self.width in self._store_nodes].append(position)

    def next_reorder(self, stores: bool) -> int | None:
        """The longest-waiting position of that kind still short of stock, if any."""
        queue = self.reorder[stores]
        while queue:
            position = queue.popleft()
            self._queued.discard(position)
            if self.deficit(position) > 0:
                return position
        return None


_POISON_VALUES: Final = (
    b"this is not JSON {",
    b'{"event_id": "%s", "type": "sale", "sku": "%s", "node": "%s", "qty": "2", "occurred_at": "%s"}',
    b'{"event_id": "%s", "type": "sale", "sku": "%s", "node": "%s", "qty": 0, "occurred_at": "%s"}',
    b'{"event_id": "%s", "type": "sale_refund", "sku": "%s", "node": "%s", "qty": 1, "occurred_at": "%s"}',
    b'{"event_id": "%s", "type": "sale", "sku": "%s", "node": "%s", "qty": 1, "occurred_at": "%s 25:61"}',
)


def poison_value(rng: random.Random, event_id: str, sku: str, node: str, at: str) -> bytes:
    """A message the engine must dead-letter: not JSON, a bad qty, an unknown type or a bad time."""
    template = rng.choice(_POISON_VALUES)
    if b"%s" not in template:
        return template
    return template % (event_id.encode(), sku.encode(), node.encode(), at.encode())
