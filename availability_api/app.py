"""Composition root of the query API: ``create_app(settings)`` builds everything.

Run it with ``uvicorn --factory availability_api.app:app_from_env`` (settings from
``AVAIL_*`` variables). The Redis client is created in the app's lifespan, never at
import, and closed when the server stops.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from types import FrameType

from fastapi import FastAPI
from fastapi.routing import APIRoute
from fastapi_offline import FastAPIOffline
from pydantic import ValidationError
from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import ConstantBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError

from availability_api import log_redaction, operations, ops_overview, queries
from availability_api.auth import AuthConfigError, KeyRing
from availability_api.body_limit import BodyLimitMiddleware
from availability_api.context import Context
from availability_api.counter_history import CounterSampler
from availability_api.errors import install_error_handlers
from availability_api.explain import RuleSets
from availability_api.fast_path import BATCH_PATH, FastReads
from availability_api.feed import READ_BLOCK_MS, SHUTDOWN, FeedHub
from availability_api.freshness import FreshnessMonitor, Limits, Progress
from availability_api.invalidation import InvalidationListener
from availability_api.metrics import ApiMetrics, MetricsMiddleware
from availability_api.rate_limit import SharedRateLimits
from availability_api.read_cache import ReadCache, SkuReader
from availability_api.routes import router
from availability_api.rules_cache import RulesCache
from availability_api.types import RedisClient
from engine_settings import ApiSettings
from projection import Keys
from projection.connect import async_client, check_mode_async, is_cluster_url

log = logging.getLogger("availability_api")

_DESCRIPTION = """\
Channel and node availability (ATP) of every SKU, as computed by the availability engine.

Every route but `/healthz`, `/readyz` and this documentation (`/docs`, `/redoc`,
`/openapi.json`: no data in them) needs an API key in the `X-API-Key` header (or as
`Authorization: Bearer <key>`, e.g. for a Prometheus scrape). A key
carries scopes: `read` (every channel), `read:<channel>` (that channel only: pass
`channel=<channel>`), `admin` (everything). A missing or unknown key answers 401, a key
without the scope 403. A key given a `rate_per_s` in AVAIL_API_KEYS may make that many
requests a second, counted across every API process (429 with `Retry-After` past that);
a key without one is not limited. A request body may hold
AVAIL_MAX_BODY_BYTES (413 past that).

Availability answers say whether the engine keeps their numbers current: `stale` (with
`stale_reason`) and the `X-Availability-Stale` header (`0`, or the reason).

Every error answers `{"error": {"code", "message", "field"}}`.
"""

_TAGS = [
    {"name": "availability", "description": "Per-SKU availability by channel and node."},
    {"name": "channels", "description": "Whole-channel views for channel adapters."},
    {"name": "operations", "description": "Liveness, readiness and metrics."},
]


def _keyring(settings: ApiSettings) -> KeyRing | None:
    if settings.api_keys:
        if settings.insecure_no_auth:
            log.warning("AVAIL_INSECURE_NO_AUTH is ignored: API keys are configured and will be required")
        return KeyRing.from_settings(settings.api_keys)
    if not settings.insecure_no_auth:
        KeyRing(())  # raises AuthConfigError with the message naming AVAIL_API_KEYS and --insecure-no-auth
    log.warning(
        "!!! WARNING: AUTHENTICATION IS OFF (--insecure-no-auth): every route answers anyone, without an API key. "
        "Development only: never expose this API beyond your machine. !!!",
    )
    return None


def connect(settings: ApiSettings, blocking_reads_ms: int = 0) -> RedisClient:
    """A Redis client over a bounded connection pool (hiredis parser when installed).

    ``blocking_reads_ms``: the longest a command may block in Redis (``XREAD BLOCK``),
    added to the socket timeout. On a Redis Cluster the bound is per node.
    """
    timeout = settings.redis_timeout_s
    url = settings.redis_url.get_secret_value()
    options = {"decode_responses": True, "socket_timeout": timeout + blocking_reads_ms / 1000,
               "socket_connect_timeout": timeout}
    if is_cluster_url(url):
        # redis-py's cluster client retries on its own: a dropped connection or a moved slot refreshes the
        # topology. The bound is per node, and a command waits for a free connection as on one Redis.
        return async_client(url, max_connections=settings.redis_max_connections, wait_s=timeout, **options)
    pool = BlockingConnectionPool.from_url(
        url, max_connections=settings.redis_max_connections, timeout=timeout,
        # One quick retry rides over a dropped connection. A timeout is not retried: Redis is
        # there but not answering, and a retry (with its reconnect handshake) only delays the 503.
        retry=Retry(ConstantBackoff(0.01), retries=1, supported_errors=(RedisConnectionError,)), **options,
    )
    return Redis.from_pool(pool)


def create_app(settings: ApiSettings, *, clock: Callable[[], float] = time.time) -> FastAPI:
    """Builds the API; raises ``AuthConfigError`` when no keys are set and auth is not switched off.

    ``clock``: seconds since the epoch; promise dates count days from its UTC date (tests move it).
    """
    keyring = _keyring(settings)
    metrics = ApiMetrics()
    keys = Keys(settings.redis_prefix)
    log_redaction.install()
    limits = Limits(settings.stale_after_s, settings.input_idle_after_s, settings.max_lag_s)
    cache = ReadCache(settings.read_cache_max_entries, settings.read_cache_ttl_s,
                      stale_grace_s=settings.read_cache_stale_grace_s)
    metrics.watch_read_cache(cache)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        redis = connect(settings)
        with contextlib.suppress(RedisError):  # Redis may be down at start; a wrong form of URL is refused
            await check_mode_async(redis)
        blocking_redis = connect(settings, blocking_reads_ms=READ_BLOCK_MS)
        hub = FeedHub(redis, blocking_redis, keys, client_buffer=settings.sse_client_buffer)

        async def load_rules() -> str | None:
            return await queries.read_rules(redis, keys)

        async def read_progress() -> Progress:
            return Progress.parse(*await queries.read_progress(redis, keys))

        freshness = FreshnessMonitor(read_progress, limits, max_age_s=settings.stale_after_s)
        with contextlib.suppress(Exception):  # Redis may be down at start: the loop keeps trying
            await freshness.refresh()  # so the first answers already know
        watching = asyncio.create_task(freshness.run(), name="freshness")

        async def read_stats() -> dict[str, str]:
            return await queries.read_flow_stats(redis, keys)

        sampler = CounterSampler(read_stats)
        sampling = asyncio.create_task(sampler.run(), name="counter-samples")
        tracking = None
        if cache.enabled:
            listener = InvalidationListener(
                settings.redis_url.get_secret_value(), settings.redis_prefix, cache,
                connect_timeout_s=settings.redis_timeout_s,
            )
            tracking = asyncio.create_task(listener.run(), name="read-cache-invalidations")
            with contextlib.suppress(TimeoutError):  # Redis may be down at start: the cache stays off till it is up
                await asyncio.wait_for(listener.tried.wait(), settings.redis_timeout_s)
        skus = SkuReader(redis, keys, cache)
        refreshing = asyncio.create_task(skus.keep_fresh(), name="read-cache-refresh") if cache.enabled else None
        app.state.context = Context(
            keys=keys, redis=redis, rules=RulesCache(load_rules), keyring=keyring, metrics=metrics,
            hub=hub, sse_heartbeat_s=settings.sse_heartbeat_s,
            limiter=SharedRateLimits.over(settings.redis_url.get_secret_value(), redis, settings.redis_prefix,
                                          settings.redis_timeout_s), freshness=freshness,
            skus=skus, rule_sets=RuleSets(redis, keys), sampler=sampler, clock=clock,
        )
        # Everything built so far lives as long as the process: keep it out of every future garbage
        # collection, whose full passes would otherwise walk it all and stall requests for milliseconds.
        gc.collect()
        gc.freeze()
        try:
            with _on_exit_signal(asyncio.get_running_loop(), lambda: hub.end_all(SHUTDOWN)):
                yield
        finally:
            for task in (watching, sampling, tracking, refreshing):
                if task is not None:
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task
            await hub.close()
            await blocking_redis.aclose()
            await redis.aclose()

    # /docs and /redoc load Swagger UI and ReDoc from this process (/static-offline-docs), never from a CDN.
    # validatorUrl off: Swagger UI would otherwise ask validator.swagger.io about the spec.
    app = FastAPIOffline(
        title="Availability API", version="1", description=_DESCRIPTION, openapi_tags=_TAGS, lifespan=lifespan,
        swagger_ui_parameters={"validatorUrl": None},
    )
    install_error_handlers(app)
    app.include_router(router)
    app.include_router(operations.router)
    app.include_router(ops_overview.router)
    # Innermost of ours: the body limit applies before it reads a batch, and metrics count its answers.
    app.add_middleware(FastReads, single_route=_route("/v1/availability/{sku:path}", "GET"),
                       batch_route=_route(BATCH_PATH, "POST"))
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes)
    app.add_middleware(MetricsMiddleware, metrics=metrics)  # outermost: it also counts 413s
    return app


def _route(path: str, method: str) -> APIRoute:
    """The route the fast path answers for: its template labels the request metrics."""
    return next(
        r for r in router.routes if isinstance(r, APIRoute) and r.path == path and method in (r.methods or ())
    )


_EXIT_SIGNALS = (signal.SIGINT, signal.SIGTERM)


@contextmanager
def _on_exit_signal(loop: asyncio.AbstractEventLoop, action: Callable[[], None]) -> Iterator[None]:
    """Runs ``action`` in the loop on SIGINT/SIGTERM, then the handler the server installed.

    A server shutting down gracefully waits for open responses to finish, and a delta
    stream never does by itself: ending the streams lets the server stop (clients
    resume elsewhere with Last-Event-ID). Only chains onto a handler a server set (a
    Python callable), and only in the main thread, where signal handlers live.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.getsignal(sig) for sig in _EXIT_SIGNALS}

    def handle(sig: int, frame: FrameType | None) -> None:
        loop.call_soon_threadsafe(action)
        chained = previous[signal.Signals(sig)]
        if callable(chained):
            chained(sig, frame)

    chained_onto = [sig for sig, handler in previous.items() if callable(handler)]
    for sig in chained_onto:
        signal.signal(sig, handle)
    try:
        yield
    finally:
        for sig in chained_onto:
            if signal.getsignal(sig) is handle:
                signal.signal(sig, previous[sig])


def _describe(error: ValidationError) -> str:
    # Never str(error): pydantic would print the input, and AVAIL_API_KEYS holds secrets.
    return "; ".join(
        f"AVAIL_{'_'.join(str(p) for p in e['loc'][:1]).upper()}: {e['msg']}" for e in error.errors()
    )


def app_from_env() -> FastAPI:
    """``create_app`` with settings from the environment; exits with a readable message on bad config."""
    try:
        return create_app(ApiSettings())
    except ValidationError as exc:
        message = f"invalid API configuration: {_describe(exc)}"
    except AuthConfigError as exc:
        message = str(exc)
    raise SystemExit(message)
