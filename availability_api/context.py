"""What the routes and the fast path need, built once per app in its lifespan (``app.create_app``)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from availability_api.auth import KeyRing
from availability_api.counter_history import CounterSampler
from availability_api.explain import RuleSets
from availability_api.feed import FeedHub
from availability_api.freshness import FreshnessMonitor
from availability_api.metrics import ApiMetrics
from availability_api.rate_limit import SharedRateLimits
from availability_api.read_cache import SkuReader
from availability_api.rules_cache import RulesCache
from availability_api.types import RedisClient
from projection import Keys


@dataclass(frozen=True, slots=True)
class Context:
    """The app's clients and caches; the routes get it through ``routes.get_context``."""

    keys: Keys
    redis: RedisClient
    rules: RulesCache
    keyring: KeyRing | None
    """None when authentication is switched off (--insecure-no-auth)."""
    metrics: ApiMetrics
    hub: FeedHub
    sse_heartbeat_s: float
    limiter: SharedRateLimits
    freshness: FreshnessMonitor
    skus: SkuReader
    """SKU hashes, through the read cache when it is live."""
    rule_sets: RuleSets
    """The whole active rule set (explanations, promise dates), parsed from what the flow runs."""
    sampler: CounterSampler
    """The flow's counters every few seconds: the operations page's sparklines."""
    clock: Callable[[], float]
    """Seconds since the epoch (``time.time``): *today*, the UTC date of promise dates, comes from it."""
