"""The whole active rule set, for ``GET /v1/availability/{sku}/explain`` (contract section 8) and promise dates (7).

The flow publishes the rules files it runs (``{prefix}:rules:source``); this reads them
with the same loader (so a safety-stock rule is named by its ``file:line``), once per
rules version; ``projection.explain`` renders the explanation of a SKU's hash.
"""

from __future__ import annotations

import asyncio
from typing import Any

import orjson

from atp.rules import RuleSet
from availability_api.errors import RulesUnavailable
from availability_api.types import RedisClient
from projection import Keys
from rulebook import published_rules


class RuleSets:
    """The active rule set as the flow runs it, parsed once per version."""

    def __init__(self, redis: RedisClient, keys: Keys) -> None:
        self._redis, self._keys = redis, keys
        self._parsed: tuple[str, RuleSet] | None = None
        self._parsing = asyncio.Lock()

    async def current(self, version: str | None = None) -> RuleSet:
        """The published rule set; ``RulesUnavailable`` when none loads.

        ``version``: the version the caller knows is active (``RulesCache``); when it is the
        one already parsed, Redis is not asked (the promise routes are on the hot path).
        """
        parsed = self._parsed
        if version is not None and parsed is not None and parsed[0] == version:
            return parsed[1]
        raw: Any = await self._redis.get(self._keys.rules_source)
        if raw is None:
            raise RulesUnavailable
        published = orjson.loads(raw)
        parsed = self._parsed
        if parsed is None or parsed[0] != published["version"]:
            async with self._parsing:  # a burst of requests after a change parses it once
                parsed = self._parsed
                if parsed is None or parsed[0] != published["version"]:
                    rules = await asyncio.to_thread(published_rules, published["sources"])  # YAML takes ms
                    if rules is None:
                        raise RulesUnavailable
                    parsed = self._parsed = (published["version"], rules)
        return parsed[1]
