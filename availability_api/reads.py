"""Single-SKU and batch availability answers: the one implementation behind the routes and the fast path.

``routes.py`` (every request FastAPI validates) and ``fast_path.py`` (the common case,
before the framework) both resolve the channel with ``channel_view`` and render with
``single_answer``/``batch_answer``, so their answers are the same bytes. Errors are
raised (``UnknownSku``, ``ApiError``, Redis errors); each caller maps them to answers
in its own way, with the bodies of ``availability_api.errors``.
"""

from __future__ import annotations

import orjson

from availability_api.context import Context
from availability_api.documents import batch_item, sku_document
from availability_api.freshness import Freshness
from availability_api.rules_cache import RulesView

_BATCH_ITEM = "batch"
_TAILS: dict[str | None, bytes] = {}

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
    found = await ctx.skus.many_with_memos(skus)
    names = view.channel_names if view is not None else []
    version = view.version if view is not None else None
    # Each known item rendered once per cached hash and channel view; joined, they are exactly what
    # orjson makes of {"results": [...], "stale": ...} (compact, no spaces).
    items = []
    item_view = (_BATCH_ITEM, channel, feeding)
    for sku, (fields, memo) in zip(skus, found, strict=True):
        rendered = memo.get(item_view) if fields else None
        if rendered is None:
            rendered = orjson.dumps(batch_item(sku, fields, channel, feeding, names, version))
            if fields:
                memo[item_view] = rendered
        items.append(rendered)
    freshness = ctx.freshness.current()
    return b'{"results":[' + b",".join(items) + b"]" + _freshness_tail(freshness), freshness


def _freshness_tail(freshness: Freshness) -> bytes:
    """``,"stale":false}`` or the like: the freshness fields that close every availability document."""
    tail = _TAILS.get(freshness.reason)  # the fields depend on the reason only
    if tail is None:
        tail = _TAILS[freshness.reason] = b"," + orjson.dumps(dict(freshness.fields))[1:]
    return tail
