"""Prometheus metrics: the API's own requests, and the flow's counters read from Redis.

Each app has its own registry, so several apps in one process (tests) never clash.
With several uvicorn workers each process counts its own requests; the flow counters
are the same in all of them since they come from Redis.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from dataclasses import asdict
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from availability_api.read_cache import ReadCache
from projection import CONSUMER_LAG_PREFIX, FEED_BACKLOG_PREFIX
from projection.codec import AGE_SECONDS_BUCKETS, WRITE_SECONDS_BUCKETS

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
_EVENT_STATUSES = ("applied", "duplicate")
_REJECTED_PREFIX = "rejected:"
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class FlowStatsCollector(Collector):
    """Exposes the flow's counters (hash ``Keys.stats``) and rules version as read at the latest scrape."""

    def __init__(self) -> None:
        self._stats: Mapping[str, str] | None = None
        self._rules_version: str | None = None

    def update(self, stats: Mapping[str, str] | None, rules_version: str | None = None) -> None:
        """Called by the /metrics route before rendering; None when Redis did not answer (or no rules yet)."""
        self._stats = stats
        self._rules_version = rules_version

    def collect(self) -> Iterable[Metric]:
        stats = self._stats
        up = GaugeMetricFamily("avail_flow_stats_up", "1 if the flow counters could be read from Redis")
        up.add_metric([], 0 if stats is None else 1)
        yield up
        if stats is None:
            return
        events = CounterMetricFamily(
            "avail_flow_events", "inbound events by outcome (applied, duplicate)", labels=["status"],
        )
        for status in _EVENT_STATUSES:
            events.add_metric([status], _number(stats.get(status)))
        yield events
        rejected = CounterMetricFamily(
            "avail_flow_events_rejected", "events sent to the dead-letter topic, by error code", labels=["code"],
        )
        for field, value in sorted(stats.items()):
            if field.startswith(_REJECTED_PREFIX):
                rejected.add_metric([field.removeprefix(_REJECTED_PREFIX)], _number(value))
        yield rejected
        backlog = GaugeMetricFamily(
            "avail_feed_backlog", "SKUs whose delta waits in the channel's throttle (the feed trails by these)",
            labels=["channel"],
        )
        for field, value in sorted(stats.items()):
            if field.startswith(FEED_BACKLOG_PREFIX):
                backlog.add_metric([field.removeprefix(FEED_BACKLOG_PREFIX)], _number(value))
        yield backlog
        yield _consumer_lags(stats)
        rules = GaugeMetricFamily("avail_rules_info", "the rules version the flow runs (always 1)", labels=["version"])
        if self._rules_version is not None:
            rules.add_metric([self._rules_version], 1)
        yield rules
        yield CounterMetricFamily(
            "avail_flow_undeclared_node_events", "events about nodes the rules do not declare",
            value=_number(stats.get("undeclared_node_events")),
        )
        yield CounterMetricFamily(
            "avail_flow_redis_writes", "projection writes made by the flow", value=_number(stats.get("writes")),
        )
        yield CounterMetricFamily(
            "avail_rules_reloads", "rules changes loaded without a restart", value=_number(stats.get("rules_reloaded")),
        )
        yield CounterMetricFamily(
            "avail_rules_reload_failures", "rules changes refused (the last valid set kept running)",
            value=_number(stats.get("rules_reload_failed")),
        )
        yield CounterMetricFamily(
            "avail_store_rebuilds", "times the flow rewrote Redis from its state (data lost or avail rebuild)",
            value=_number(stats.get("rebuilds")),
        )
        yield CounterMetricFamily(
            "avail_lost_sku_writes", "partial writes refused because the SKU hash was missing (then rewritten whole)",
            value=_number(stats.get("lost_sku_writes")),
        )
        yield _histogram(stats, "redis_write", WRITE_SECONDS_BUCKETS, "avail_flow_redis_write_seconds",
                         "time the flow took to write one batch to Redis (retries included)")
        yield _histogram(stats, "event_age", AGE_SECONDS_BUCKETS, "avail_flow_event_age_seconds",
                         "an event's age when the flow applied it (applied - occurred_at)")
        yield _histogram(stats, "queryable_age", AGE_SECONDS_BUCKETS, "avail_flow_event_to_queryable_seconds",
                         "a written SKU's newest event's age when its Redis write finished (event to queryable)")
        yield from _labelled(stats, "deltas_published:", "avail_feed_deltas_published",
                             "deltas the flow published to each channel's feed (after its throttle)", "channel")
        yield from _labelled(stats, "deltas_coalesced:", "avail_feed_deltas_coalesced",
                             "numbers a channel's throttle replaced while they waited, never published", "channel")
        yield from _labelled(stats, "deltas_throttled:", "avail_feed_deltas_throttled",
                             "deltas a channel's limits held back when they arrived (published later)", "channel")
        yield from _labelled(stats, "applied_by:", "avail_flow_events_applied_by_kind",
                             "events applied, by source topic and event type", "topic", "type")
        yield from _labelled(stats, "rejected_from:", "avail_flow_events_rejected_by_topic",
                             "events sent to the dead-letter topic, by source topic and error code", "topic", "code")
        yield from _labelled(stats, "oversells:", "avail_oversells",
                             "reserves for a channel beyond the number it showed just before (contract section 8)",
                             "channel")
        yield from _labelled(stats, "oversold_units:", "avail_oversold_units",
                             "units reserved beyond the number the channel showed", "channel")
        yield from _labelled(stats, "phantom_sales:", "avail_phantom_sales",
                             "sales and picks that left a node's on_hand below 0 and lower than before", "node_type")
        yield from _labelled(stats, "phantom_sale_units:", "avail_phantom_sale_units",
                             "units sold or picked that the node did not have", "node_type")


def _consumer_lags(stats: Mapping[str, str]) -> Metric:
    """``consumer_lag:<topic>:<partition>`` fields; a topic name may hold ``:``."""
    lags = GaugeMetricFamily(
        "avail_flow_consumer_lag", "messages of the Kafka partition not yet read by the flow (at its last heartbeat)",
        labels=["topic", "partition"],
    )
    for field, value in sorted(stats.items()):
        if field.startswith(CONSUMER_LAG_PREFIX):
            topic, _, partition = field.removeprefix(CONSUMER_LAG_PREFIX).rpartition(":")
            if topic and partition.isdigit():
                lags.add_metric([topic, partition], _number(value))
    return lags


def _histogram(stats: Mapping[str, str], name: str, bounds: tuple[float, ...], metric: str,
               documentation: str) -> Metric:
    """A histogram from the flow's per-bucket counts in stats, cumulative here as Prometheus wants them.

    Stats hold ``<name>_le:<bound>`` (one count per observation, in its own bucket) and ``<name>_us_sum``.
    """
    buckets, cumulative = [], 0.0
    for bound in bounds:
        cumulative += _number(stats.get(f"{name}_le:{bound}"))
        buckets.append((str(bound), cumulative))
    buckets.append(("+Inf", cumulative + _number(stats.get(f"{name}_le:+Inf"))))
    return HistogramMetricFamily(metric, documentation, buckets=buckets,
                                 sum_value=_number(stats.get(f"{name}_us_sum")) / 1_000_000)


def _labelled(stats: Mapping[str, str], prefix: str, name: str, documentation: str, *labels: str) -> Iterable[Metric]:
    """One counter labelled by the ``<prefix><value>[:<value>…]`` fields of the flow's stats.

    Topic names may hold ``:``: with two labels, the last part is the second label.
    """
    family = CounterMetricFamily(name, documentation, labels=list(labels))
    for field, value in sorted(stats.items()):
        if field.startswith(prefix):
            rest = field.removeprefix(prefix)
            values = rest.rsplit(":", len(labels) - 1) if len(labels) > 1 else [rest]
            if len(values) == len(labels):
                family.add_metric(values, _number(value))
    yield family


class ReadCacheCollector(Collector):
    """The read cache's counters, entries and state, read at each scrape (nothing on the hot path)."""

    def __init__(self, cache: ReadCache) -> None:
        self._cache = cache

    def collect(self) -> Iterable[Metric]:
        cache = self._cache
        lookups = CounterMetricFamily(
            "avail_api_read_cache",
            "SKU reads by outcome: hit, miss, bypass (cache off), invalidation (keys Redis reported changed), "
            "not_stored (changed while being read), grace (changed, served on while read again), "
            "flush (whole cache dropped), refreshed (used entries re-read "
            "before they expired)", labels=["outcome"],
        )
        for outcome, count in asdict(cache.stats).items():
            lookups.add_metric([outcome], count)
        yield lookups
        yield GaugeMetricFamily("avail_api_read_cache_entries", "SKU hashes in the read cache", value=len(cache))
        yield GaugeMetricFamily(
            "avail_api_read_cache_live", "1 while Redis invalidation tracking is established and the cache is used",
            value=1 if cache.live else 0,
        )


def _number(value: str | None) -> float:
    try:
        return float(value) if value is not None else 0.0
    except ValueError:
        return 0.0


class ApiMetrics:
    """The registry of one app and the metrics recorded into it."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "avail_api_requests", "HTTP requests answered, by route template, method and status",
            ["route", "method", "status"], registry=self.registry,
        )
        self.latency = Histogram(
            "avail_api_request_duration_seconds", "time to answer, by route template, method and status",
            ["route", "method", "status"], buckets=_LATENCY_BUCKETS, registry=self.registry,
        )
        self.sse_clients = Gauge(
            "avail_api_sse_clients", "delta streams (SSE) open in this process, by channel",
            ["channel"], registry=self.registry,
        )
        self.deltas_sent = Counter(
            "avail_api_sse_deltas_sent", "deltas written to SSE clients, by channel", ["channel"],
            registry=self.registry,
        )
        self.streams_ended = Counter(
            "avail_api_sse_streams_ended",
            "delta streams ended, by channel and reason (client_gone, slow_client, redis_unavailable, feed_gap, "
            "shutdown, internal_error)", ["channel", "reason"], registry=self.registry,
        )
        self.rate_limited = Counter(
            "avail_api_rate_limited", "requests refused with 429 by the per-key rate limit", registry=self.registry,
        )
        self.flow = FlowStatsCollector()
        self.registry.register(self.flow)
        self._children: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}

    def watch_read_cache(self, cache: ReadCache) -> None:
        self.registry.register(ReadCacheCollector(cache))

    def observe(self, route: str, method: str, status: int, seconds: float) -> None:
        children = self._children.get((route, method, status))
        if children is None:
            # labels() takes a lock and builds a tuple per call; the label sets are few, so keep the children.
            labels = (route, method, str(status))
            children = self._children[route, method, status] = (
                self.requests.labels(*labels), self.latency.labels(*labels),
            )
        children[0].inc()
        children[1].observe(seconds)

    def render(self, flow_stats: Mapping[str, str] | None, rules_version: str | None = None) -> bytes:
        self.flow.update(flow_stats, rules_version)
        return generate_latest(self.registry)


def _route_template(scope: Scope) -> str:
    # Templates, not raw paths, keep label cardinality bounded; unmatched paths share one label.
    route: Any = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else "unmatched"


class MetricsMiddleware:
    """Pure ASGI middleware recording count and latency of every HTTP request."""

    def __init__(self, app: ASGIApp, metrics: ApiMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_and_note_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_and_note_status)
        finally:
            method = scope["method"] if scope["method"] in _METHODS else "other"
            self.metrics.observe(_route_template(scope), method, status, time.perf_counter() - started)
