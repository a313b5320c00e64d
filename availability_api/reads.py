"""Single-SKU and batch availability answers: the one implementation behind the routes and the fast path.

``routes.py`` (every request FastAPI validates) and ``fast_path.py`` (the common case,
before the framework) both resolve the channel with ``channel_view`` and render with
``single_answer``/``batch_answer``, so their answers are the same bytes. Errors are
raised (``UnknownSku``, ``ApiError``, Redis errors); each caller maps them to answers
in its own way, with the bodies of ``availability_api.errors``.
"""

from __future__ import annotations

import asyncio

import orjson

from availability_api.context import Context
from availability_api.documents import batch_item, sku_document
from availability_api.freshness import Freshness
from availability_api.rules_cache import RulesView

_TAILS: dict[str | None, bytes] = {}
RENDER_SLICE = 100
"""SKUs a batch renders between two yields to the event loop (about a millisecond of work)."""

Feeding = frozenset[str] | None
"""The nodes that feed the asked channel; None when no channel was asked."""


async def channel_view(ctx: Context, channel: str | None) -> tuple[RulesView | None, Feeding]:
    """The active rules and the asked channel's nodes; ``UnknownChannel`` or ``RulesUnavailable`` when absent."""
    if channel is None:
        return await ctx.rules.current(), None
    return await ctx.rules.channel(channel)


async def single_answer(ctx: Context, sku: str, channel: str | None, feeding: Feeding) -> tuple[bytes, Freshness]:
    """``GET /v1/availability/{sku}``: the JSON body and the freshness it carries."""
    fields, memo = await ctx.skus.one_with_memo(sku)
    # The answer minus its closing brace, rendered once per cached hash and channel view.
    view = (channel, feeding)
    rendered = memo.get(view)
    if rendered is None:
        rendered = memo[view] = orjson.dumps(sku_document(sku, fields, channel, feeding))[:-1]
    freshness = ctx.freshness.current()
    return rendered + _freshness_tail(freshness), freshness


async def batch_answer(
    ctx: Context, skus: list[str], channel: str | None, view: RulesView | None, feeding: Feeding,
) -> tuple[bytes, Freshness]:
    """``POST /v1/availability/batch``: the JSON body (one result per SKU, in order) and its freshness."""
    reader = ctx.skus
    # Each known item rendered once per cached hash and channel view; joined, they are exactly what
    # orjson makes of {"results": [...], "stale": ...} (compact, no spaces). Most are in the memos of
    # cached hashes: one pass finds them, and only the others are read (from the cache or Redis).
    item_view = _view_key(channel, feeding)
    items, missing = reader.memoised(skus, item_view)
    if missing:
        found = await reader.read_keys(reader.keys_of([skus[i] for i in missing]))
        names = view.channel_names if view is not None else []
        version = view.version if view is not None else None
        rendered_here = 0
        for at, (fields, memo) in zip(missing, found, strict=True):
            rendered = memo.get(item_view) if fields else None
            if rendered is None:
                rendered = orjson.dumps(batch_item(skus[at], fields, channel, feeding, names, version))
                if fields:
                    memo[item_view] = rendered
                rendered_here += 1
                if rendered_here % RENDER_SLICE == 0:
                    # A big batch of SKUs not rendered yet takes milliseconds: let other requests in between.
                    await asyncio.sleep(0)
            items[at] = rendered
    freshness = ctx.freshness.current()
    tail = b"]" + _freshness_tail(freshness)
    if not items:
        return b'{"results":[' + tail, freshness
    # One copy of the (large) body: the head and the tail go onto the first and last items.
    items[0] = b'{"results":[' + items[0]
    items[-1] += tail
    return b",".join(items), freshness


class _ViewKey:
    """A batch item's memo key for one channel view: one object per view, found by identity (cheap to hash)."""

    __slots__ = ("channel", "feeding")

    def __init__(self, channel: str | None, feeding: Feeding) -> None:
        self.channel = channel
        self.feeding = feeding


_VIEW_KEYS: dict[tuple[str | None, Feeding], _ViewKey] = {}
_MAX_VIEW_KEYS = 1000


def _view_key(channel: str | None, feeding: Feeding) -> _ViewKey:
    """The one key of this view (``feeding`` is the rules view's own set, kept while the rules are unchanged)."""
    key = _VIEW_KEYS.get((channel, feeding))
    if key is None:
        if len(_VIEW_KEYS) >= _MAX_VIEW_KEYS:  # rules changed many times: forget old views (their memos stay right)
            _VIEW_KEYS.clear()
        key = _VIEW_KEYS[channel, feeding] = _ViewKey(channel, feeding)
    return key


def _freshness_tail(freshness: Freshness) -> bytes:
    """``,"stale":false}`` or the like: the freshness fields that close every availability document."""
    tail = _TAILS.get(freshness.reason)  # the fields depend on the reason only
    if tail is None:
        tail = _TAILS[freshness.reason] = b"," + orjson.dumps(dict(freshness.fields))[1:]
    return tail
