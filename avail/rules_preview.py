"""``avail rules preview``: what proposed rules would show, against the live positions.

Reads every SKU's positions and unsourced reservations from the Redis projection,
computes each channel's number under the proposed rules (``atp.allocation``) and
compares it with the number shown now; for SKUs with open supply, also the days to come
(``avail.schedule_preview``). Nothing is written.
"""

from __future__ import annotations

import heapq
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, cast

import orjson

from atp.allocation import channel_numbers
from atp.events import Micros
from atp.rules import RuleSet
from avail.schedule_preview import SchedulePreview
from projection import CHANNEL_PREFIX, NODE_PREFIX, UNSOURCED_PREFIX, Keys, decode_position
from projection.connect import SyncClient
from rulebook import published_rules


@dataclass(frozen=True, slots=True)
class Change:
    sku: str
    channel: str
    before: int
    after: int


@dataclass
class ChannelPreview:
    name: str
    skus: int = 0
    changed: int = 0
    before_total: int = 0
    after_total: int = 0
    top: list[tuple[int, str, int, int]] = field(default_factory=list)  # heap of (|delta|, sku, before, after)

    def largest(self) -> list[dict[str, Any]]:
        return [{"sku": s, "before": b, "after": a} for _, s, b, a in sorted(self.top, reverse=True)]

    def add(self, sku: str, before: int, after: int, keep: int) -> None:
        self.skus += 1
        self.before_total += before
        self.after_total += after
        if before != after:
            self.changed += 1
            entry = (abs(after - before), sku, before, after)
            if len(self.top) < keep:
                heapq.heappush(self.top, entry)
            else:
                heapq.heappushpop(self.top, entry)


@dataclass
class Preview:
    current_version: str | None
    proposed_version: str
    channels: dict[str, ChannelPreview]
    changes: list[Change]
    schedules: SchedulePreview | None = None
    """None when no rule set is published to compare the days to come with."""
    proposes_future_supply: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "current_version": self.current_version, "proposed_version": self.proposed_version,
            "channels": {name: {"skus": c.skus, "changed": c.changed, "before_total": c.before_total,
                                "after_total": c.after_total, "top": c.largest()}
                         for name, c in sorted(self.channels.items())},
            "changes": [{"sku": c.sku, "channel": c.channel, "before": c.before, "after": c.after}
                        for c in self.changes],
            "schedules": None if self.schedules is None else self.schedules.to_json(),
        }

    def lines(self) -> Iterator[str]:
        yield f"rules {self.current_version or '(none published)'} -> {self.proposed_version}"
        for name, c in sorted(self.channels.items()):
            yield (f"channel {name}: {c.changed} of {c.skus} SKUs change; units shown {c.before_total:,} -> "
                   f"{c.after_total:,} ({c.after_total - c.before_total:+,})")
            for _, sku, before, after in sorted(c.top, reverse=True):
                yield f"    {sku}: {before} -> {after} ({after - before:+})"
        if self.schedules is not None:
            yield from self.schedules.lines()
        elif self.proposes_future_supply:
            yield "schedules: not compared (no rule set published: is the flow running?)"


def preview(client: SyncClient, keys: Keys, proposed: RuleSet, top: int = 10, chunk: int = 1000,
            progress: Callable[[int], object] | None = None, now: Micros | None = None) -> Preview:
    """Compares the shown numbers in Redis with what ``proposed`` would show, SKU by SKU.

    ``progress`` is called with the number of SKUs done after each chunk; ``now`` (default: the
    wall clock) sets *today* for the schedules.
    """
    current = client.get(keys.rules_version)
    current_version = current.decode() if isinstance(current, bytes) else None
    channels: dict[str, ChannelPreview] = {}
    changes: list[Change] = []
    live = _live_rules(client, keys)
    schedules = None if live is None else SchedulePreview(
        live, proposed, time.time_ns() // 1000 if now is None else now, keep=top)
    start = 0
    while True:
        skus = [s.decode() for s in cast(list[bytes], client.zrange(keys.skus, start, start + chunk - 1))]
        if not skus:
            break
        start += chunk
        pipe = client.pipeline(transaction=False)
        for sku in skus:
            pipe.hgetall(keys.sku(sku))
        if progress is not None:
            progress(len(skus))
        for sku, raw in zip(skus, pipe.execute(), strict=True):
            fields = {k.decode(): v.decode() for k, v in raw.items()}
            holdings = []
            unsourced: dict[str, int] = {}
            shown: dict[str, int] = {}
            for name, value in fields.items():
                if name.startswith(NODE_PREFIX):
                    position = decode_position(name[2:], value)
                    holdings.append((position.node, position.on_hand, position.reserved))
                elif name.startswith(UNSOURCED_PREFIX):
                    unsourced[name[2:]] = int(value)
                elif name.startswith(CHANNEL_PREFIX):
                    shown[name[2:]] = int(value)
            after = channel_numbers(sku, holdings, unsourced, proposed)
            for channel in sorted(shown.keys() | after.keys()):
                before_n, after_n = shown.get(channel, 0), after.get(channel, 0)
                channels.setdefault(channel, ChannelPreview(channel)).add(sku, before_n, after_n, top)
                if before_n != after_n or (channel in after) != (channel in shown):
                    changes.append(Change(sku, channel, before_n, after_n))
            if schedules is not None:
                schedules.add(sku, fields, after)
    return Preview(current_version, proposed.version, channels, changes, schedules,
                   any(c.future_supply for c in proposed.channels.values()))


def _live_rules(client: SyncClient, keys: Keys) -> RuleSet | None:
    """The rule set the flow publishes and the API answers schedules with; None if none is, or it does not load."""
    raw: Any = client.get(keys.rules_source)
    return None if raw is None else published_rules(orjson.loads(raw)["sources"])
