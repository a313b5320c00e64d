"""Reaching the engine's Redis and broker from a command: one clear line when they are not there."""

from __future__ import annotations

import logging
import re

import redis

from engine_settings import CommonSettings
from projection import Keys
from projection.connect import SyncClient, WrongRedisMode, check_mode, sync_client

_PASSWORD = re.compile(r"^([a-z+]+://[^:@/]*:)[^@/]*@")
BROKER_TIMEOUT_S = 5.0
_librdkafka = logging.getLogger("avail.librdkafka")
_librdkafka.addHandler(logging.NullHandler())
_librdkafka.propagate = False  # librdkafka repeats every failed connection; the command says it once


class Unreachable(RuntimeError):
    """Redis or the broker does not answer, or holds no engine."""


def shown(url: str) -> str:
    """``url`` without its password, for messages (cluster URLs list several hosts)."""
    return _PASSWORD.sub(r"\1***@", url, count=1)


def kafka_client_config(bootstrap: str) -> dict[str, object]:
    """A confluent-kafka client's settings that log nothing by themselves (failures are reported once, by us)."""
    return {"bootstrap.servers": bootstrap, "logger": _librdkafka}


def engine_redis(settings: CommonSettings) -> tuple[SyncClient, Keys]:
    """A client of the engine's Redis; ``Unreachable`` when it does not answer or no engine ever wrote to it."""
    url = settings.redis_url.get_secret_value()
    keys = Keys(settings.redis_prefix)
    try:
        client = sync_client(url, socket_connect_timeout=3, socket_timeout=30)
    except (redis.RedisError, WrongRedisMode) as exc:
        raise Unreachable(f"Redis at {shown(url)}: {exc}") from exc
    try:
        client.ping()
        check_mode(client)
        found = client.exists(keys.generation, keys.rules_version)
    except WrongRedisMode as exc:
        client.close()
        raise Unreachable(str(exc)) from exc
    except redis.RedisError as exc:
        client.close()
        raise Unreachable(f"Redis at {shown(url)} does not answer ({exc}); set AVAIL_REDIS_URL or --redis, or "
                          "start the engine (avail up)") from exc
    if not found:
        client.close()
        raise Unreachable(f"no engine in Redis at {shown(url)} (key prefix {keys.prefix!r}): no flow has written "
                          "there; set AVAIL_REDIS_URL or --redis (and AVAIL_REDIS_PREFIX) to the engine's Redis")
    return client, keys
