"""The active rule set as the API needs it, cached in-process.

The dataflow publishes the rules document (``projection.rules_document``) to
Redis whenever the rules change. Reading it on every request would double the
round trips of the hot path, so each process keeps a copy and reloads it at most
once per ``ttl_s``, and early (at most every ``miss_refresh_s``) when a request
names a channel the copy does not know, so a channel just added is seen at once.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

import orjson

from availability_api.errors import RulesUnavailable, UnknownChannel

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class RulesView:
    """Version and channel → eligible nodes of the active rule set."""

    version: str
    channels: Mapping[str, frozenset[str]]

    @property
    def channel_names(self) -> list[str]:
        return sorted(self.channels)

    @classmethod
    def parse(cls, text: str) -> RulesView:
        """Parses the JSON document; raises ``ValueError`` when it is not one."""
        doc = orjson.loads(text)
        if not isinstance(doc, dict) or not isinstance(doc.get("version"), str):
            raise ValueError("rules document without a string 'version'")
        raw_channels = doc.get("channels")
        if not isinstance(raw_channels, dict):
            raise ValueError("rules document without a 'channels' object")
        channels: dict[str, frozenset[str]] = {}
        for name, spec in raw_channels.items():
            nodes = spec.get("nodes") if isinstance(spec, dict) else None
            if not isinstance(nodes, list) or not all(isinstance(n, str) for n in nodes):
                raise ValueError(f"rules document: channel {name!r} without a list of node ids")
            channels[name] = frozenset(nodes)
        return cls(doc["version"], channels)


Loader = Callable[[], Awaitable[str | None]]
Clock = Callable[[], float]


class RulesCache:
    """Serves the rules document from memory, reloading it through ``load`` when old."""

    def __init__(
        self, load: Loader, *, ttl_s: float = 1.0, miss_refresh_s: float = 0.1, clock: Clock = time.monotonic,
    ) -> None:
        self._load = load
        self._ttl_s = ttl_s
        self._miss_refresh_s = miss_refresh_s
        self._clock = clock
        self._view: RulesView | None = None
        self._text: str | None = None
        self._loaded_at: float | None = None
        self._lock = asyncio.Lock()

    async def current(self) -> RulesView | None:
        """The rules, reloaded first when the copy is older than the TTL; None if none published.

        While one request reloads them, the others go on with the copy (if it is younger than twice
        the TTL) instead of queueing behind that Redis round trip: every request in flight would
        otherwise wait for it once a TTL (the slowest answers of the batch route).
        """
        if self._is_older_than(self._ttl_s):
            if not (self._lock.locked() and self._view is not None and not self._is_older_than(2 * self._ttl_s)):
                await self._reload(self._ttl_s)
        return self._view

    async def require(self) -> RulesView:
        view = await self.current()
        if view is None:
            raise RulesUnavailable()
        return view

    async def channel(self, name: str) -> tuple[RulesView, frozenset[str]]:
        """The rules and the nodes feeding ``name``; ``UnknownChannel`` if the rules lack it."""
        view = await self.require()
        nodes = view.channels.get(name)
        if nodes is None and self._is_older_than(self._miss_refresh_s):
            await self._reload(self._miss_refresh_s)
            view = await self.require()
            nodes = view.channels.get(name)
        if nodes is None:
            raise UnknownChannel(name, view.channel_names)
        return view, nodes

    def _is_older_than(self, age_s: float) -> bool:
        return self._loaded_at is None or self._clock() - self._loaded_at >= age_s

    async def _reload(self, age_s: float) -> None:
        async with self._lock:
            if not self._is_older_than(age_s):  # another request reloaded while we waited
                return
            text = await self._load()
            if text is None:
                self._view = None
            # An unchanged document keeps its objects: answers memoised per channel view find them by identity.
            elif text != self._text or self._view is None:
                try:
                    self._view = RulesView.parse(text)
                except ValueError as exc:
                    log.error("ignoring a malformed rules document in Redis: %s", exc)
                    self._view = None
            self._text = text
            self._loaded_at = self._clock()
