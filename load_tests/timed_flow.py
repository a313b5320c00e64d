"""``avail flow`` with its worker's wall time taken apart, for the freshness benchmark.

``python -m load_tests.timed_flow OUT.json`` runs the flow exactly as ``avail flow`` does
(same environment), with timers (wall time, and the calling thread's CPU) around its steps:
the state shards (``ShardLogic.on_batch`` and ``snapshot``), the delta throttle, the Redis
sink and the feed sink (``write_batch``: with background writes these run on the writers'
threads, so their time overlaps the worker's), the hand-over to the background writers and
the wait for them at a snapshot, and the Kafka source. It also records the
gaps between two polls of any input partition longer than ``GAP_MS``: while the one
worker thread applies, writes or publishes, no input is read. Every second it rewrites
``OUT.json`` with the totals so far (the flow is killed, not stopped, at the end of a
run). ``load_tests/bench_freshness.py --timing`` uses it and prints the shares.
"""

from __future__ import annotations

import functools
import logging
import os
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from dataflows.background_writes import BackgroundWriter
from dataflows.feed_sink import _FeedPartition
from dataflows.flow import run as run_flow
from dataflows.kafka_io import _BatchPartition
from dataflows.redis_sink import _RedisSinkPartition
from dataflows.shards import ShardLogic
from dataflows.throttle import ThrottleLogic
from engine_settings import FlowSettings

GAP_MS = 30.0
TIMED: dict[str, tuple[type, str]] = {
    "apply (state shards)": (ShardLogic, "on_batch"),
    "snapshot (state shards)": (ShardLogic, "snapshot"),
    "throttle": (ThrottleLogic, "on_batch"),
    "throttle snapshot": (ThrottleLogic, "snapshot"),
    "redis sink": (_RedisSinkPartition, "write_batch"),
    "feed sink": (_FeedPartition, "write_batch"),
    "kafka poll and decode": (_BatchPartition, "next_batch"),
    "  of snapshot: waiting for the background writes": (BackgroundWriter, "drain"),
    "  handing writes to the background writer": (BackgroundWriter, "submit"),
}


class Timings:
    def __init__(self) -> None:
        self.started = time.monotonic()
        self.seconds = dict.fromkeys(TIMED, 0.0)
        self.cpu_seconds = dict.fromkeys(TIMED, 0.0)  # the worker thread's CPU in each step: the rest is waiting
        self.gaps_ms: list[float] = []
        self.last_poll_end: float | None = None

    def timed(self, name: str, method: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(method)
        def run(*args: Any, **kwargs: Any) -> Any:
            began, began_cpu = time.perf_counter(), time.thread_time()
            if name == "kafka poll and decode" and self.last_poll_end is not None:
                gap_ms = (began - self.last_poll_end) * 1000
                if gap_ms > GAP_MS:
                    self.gaps_ms.append(gap_ms)
            try:
                return method(*args, **kwargs)
            finally:
                ended = time.perf_counter()
                self.seconds[name] += ended - began
                self.cpu_seconds[name] += time.thread_time() - began_cpu
                if name == "kafka poll and decode":
                    self.last_poll_end = ended

        return run

    def summary(self) -> dict[str, Any]:
        return {"wall_s": time.monotonic() - self.started, "seconds": dict(self.seconds),
                "cpu_seconds": dict(self.cpu_seconds),
                "gap_ms_threshold": GAP_MS, "gaps_ms": sorted(self.gaps_ms)}


def _keep_writing(timings: Timings, out: Path) -> None:
    while True:
        time.sleep(1.0)
        partial = out.with_suffix(".tmp")
        partial.write_bytes(orjson.dumps(timings.summary()))
        os.replace(partial, out)


def run(out: Path) -> int:
    timings = Timings()
    for name, (cls, attribute) in TIMED.items():
        setattr(cls, attribute, timings.timed(name, getattr(cls, attribute)))
    threading.Thread(target=_keep_writing, args=(timings, out), daemon=True).start()
    logging.basicConfig(level=os.environ.get("AVAIL_LOG_LEVEL", "INFO"))
    run_flow(FlowSettings())
    return 0


if __name__ == "__main__":
    raise SystemExit(run(Path(sys.argv[1])))
