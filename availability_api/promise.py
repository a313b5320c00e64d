"""Future-supply answers (contract section 7): one SKU's schedule, and promise dates for order lines.

Both are worked out at read time from the SKU hashes and the active rule set
(``projection.schedule``), with *today* the UTC date of the app's clock, so they move
on at midnight without any event. Errors are raised (``UnknownChannel``,
``RulesUnavailable``, Redis errors) and answered by ``availability_api.errors``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence

from atp.rules import RuleSet
from atp.supply import DAY, Schedule, utc_day
from availability_api.context import Context
from availability_api.errors import RulesUnavailable
from availability_api.read_cache import Memo
from availability_api.types import Document, SkuFields
from projection import AS_OF, format_as_of
from projection.schedule import sku_schedule

Line = tuple[str, int]
"""An order line: (sku, qty)."""
_SCHEDULE = "schedule"


async def schedule_answer(ctx: Context, sku: str, channel: str) -> Document:
    """``GET /v1/availability/{sku}/schedule?channel=``; a SKU never seen shows 0 every day."""
    rules = await _rules(ctx, channel)
    [(fields, memo)] = await ctx.skus.many_with_memos([sku])  # a SKU never seen: no fields, not UnknownSku
    schedule = _schedules([sku], [(fields, memo)], rules, channel, _now(ctx))[sku]
    return schedule_document(sku, channel, fields, schedule, rules.version)


async def promise_answer(ctx: Context, channel: str, lines: Sequence[Line]) -> Document:
    """``POST /v1/availability/promise``: every SKU read in one round trip (misses), each line dated."""
    rules = await _rules(ctx, channel)
    skus = list(dict.fromkeys(sku for sku, _ in lines))
    found = await ctx.skus.many_with_memos(skus)
    now = _now(ctx)
    return promise_document(channel, rules.version, utc_day(now), lines, _schedules(skus, found, rules, channel, now))


def _schedules(
    skus: list[str], found: list[tuple[SkuFields, Memo]], rules: RuleSet, channel: str, now: int,
) -> dict[str, Schedule]:
    """Each SKU's schedule, kept in the memo of its cached hash for the rest of the day."""
    key = (_SCHEDULE, channel, rules.version, now // DAY)  # everything it depends on besides the hash
    schedules = {}
    for sku, (fields, memo) in zip(skus, found, strict=True):
        schedule = memo.get(key)
        if schedule is None:
            schedule = memo[key] = sku_schedule(sku, fields, rules, channel, now)
        schedules[sku] = schedule
    return schedules


def schedule_document(
    sku: str, channel: str, fields: SkuFields, schedule: Schedule, rules_version: str,
) -> Document:
    return {
        "sku": sku, "channel": channel, "rules_version": rules_version, "as_of": format_as_of(fields.get(AS_OF)),
        "today": schedule.today, "horizon_days": schedule.horizon_days, "available": schedule.available,
        "schedule": [{"date": day, "available": available} for day, available in schedule.changes],
    }


def promise_document(
    channel: str, rules_version: str, today: dt.date, lines: Iterable[Line], schedules: Mapping[str, Schedule],
) -> Document:
    """One result per line, in order; ``schedules`` holds every line's SKU."""
    results = []
    for sku, qty in lines:
        schedule = schedules[sku]
        if not schedule.changes:  # flat, as most are: today or never, at today's number
            date = schedule.today if schedule.available >= qty else None
            results.append({"sku": sku, "qty": qty, "date": date, "available": schedule.available})
            continue
        promised = schedule.promise(qty)
        results.append({"sku": sku, "qty": qty, "date": promised.date, "available": promised.available})
    return {"channel": channel, "rules_version": rules_version, "today": today, "results": results}


async def _rules(ctx: Context, channel: str) -> RuleSet:
    view, _ = await ctx.rules.channel(channel)  # unknown_channel (naming `channel`) before anything else
    rules = await ctx.rule_sets.current(view.version)
    if channel not in rules.channels:  # the rules changed between the two reads
        raise RulesUnavailable
    return rules


def _now(ctx: Context) -> int:
    return int(ctx.clock() * 1_000_000)
