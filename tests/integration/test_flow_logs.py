"""The real flow's DEBUG JSON logs follow one event: decoded, written to Redis, and the delta it caused."""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

import orjson
import pytest

from atp.events import Receipt
from tests.support.engine import Engine, flow_log, wait_for
from tests.support.events import TOPIC_OF

pytestmark = pytest.mark.integration

STEPS = ("event decoded", "event written", "delta published")


def records(engine: Engine) -> list[dict[str, Any]]:
    """Every record the flow process logged, parsed (librdkafka writes its own lines to stderr, not JSON)."""
    lines = (engine.home / "flow-0.log").read_text().splitlines()
    return [orjson.loads(line) for line in lines if line.startswith("{")]


def test_one_event_id_is_followed_from_decode_to_the_redis_write_and_the_delta_it_caused(
    kafka_bootstrap: str, redis_url: str, tmp_path: Path,
) -> None:
    engine = Engine(kafka_bootstrap, redis_url, tmp_path, use_recovery=False,
                    extra_env={"AVAIL_LOG_FORMAT": "json", "AVAIL_LOG_LEVEL": "DEBUG"})
    event_id, sku = f"trace-{uuid.uuid4().hex[:8]}", f"TV-{uuid.uuid4().hex[:8]}"
    try:
        engine.start_flow()
        engine.produce([Receipt(event_id, sku, "dc-east", 7, time.time_ns() // 1000)])

        def traced() -> dict[str, list[dict[str, Any]]]:
            found: dict[str, list[dict[str, Any]]] = {}
            for record in records(engine):
                if record.get("event_id") == event_id:
                    found.setdefault(record["message"], []).append(record)
            return found

        found = wait_for(traced, lambda steps: all(step in steps for step in STEPS), timeout=30)
        assert all(step in found for step in STEPS), flow_log(engine)
        (decoded,) = found["event decoded"]
        assert decoded["logger"] == "dataflows.kafka_io" and decoded["level"] == "debug"
        assert (decoded["topic"], decoded["sku"], decoded["offset"]) == (engine.topics[TOPIC_OF[Receipt]], sku, 0)
        (written,) = found["event written"]
        assert (written["sku"], written["key"]) == (sku, engine.keys.sku(sku))
        assert {(d["channel"], d["available"]) for d in found["delta published"]} == {("web", 7), ("amazon", 3)}
        assert all(d["sku"] == sku and d["seq"] > 0 for d in found["delta published"])
        assert all(record["timestamp"].endswith("Z") for record in records(engine))
    finally:
        engine.stop()
