"""The rule set behind ``GET /v1/availability/{sku}/explain`` (contract section 8).

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

    async def current(self) -> RuleSet:
        raw: Any = await self._redis.get(self._keys.rules_source)
        if raw is None:
            raise RulesUnavailable
        published = orjson.loads(raw)
        if self._parsed is None or self._parsed[0] != published["version"]:
            rules = await asyncio.to_thread(published_rules, published["sources"])  # YAML takes milliseconds
            if rules is None:
                raise RulesUnavailable
            self._parsed = (published["version"], rules)
        return self._parsed[1]
