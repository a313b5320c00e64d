"""Several API processes on one engine (``avail api --workers 2``): delta streams, rules changes and
``avail rebuild`` behave as with one, on one Redis and on a Redis Cluster.

Connections land on either process: every delta stream gets every delta, every answer
moves to a new rule set within seconds of the flow publishing it, and a rebuild leaves
every answer as it was.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import pytest

from atp.events import Receipt
from rulebook import load_rules
from tests.integration.test_flow import HOUR, now_us, observed_many
from tests.integration.test_rules_reload import RULES_V2, replace_rules
from tests.support.engine import READ_KEY, Engine, flow_log, wait_for
from tests.support.reference import expected

pytestmark = pytest.mark.e2e

STREAMS = 4
STREAM_TIMEOUT = httpx.Timeout(5.0, read=60.0)  # heartbeats come every 15 s


@pytest.fixture(scope="module")
def redis_url(any_redis_url: str) -> str:
    """This module runs on one Redis and again on a Redis Cluster."""
    return any_redis_url


@pytest.fixture(scope="module")
def engine(kafka_bootstrap: str, redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    running = Engine(kafka_bootstrap, redis_url, tmp_path_factory.mktemp("replicas"))
    running.start_flow()
    running.start_api(workers=2)
    yield running
    running.stop()


def children_of(pid: int) -> list[int]:
    """PIDs whose parent is ``pid`` (from /proc)."""
    found = []
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            fields = dict(line.split(":\t", 1) for line in status.read_text().splitlines() if ":\t" in line)
        except OSError:
            continue
        if fields.get("PPid", "").strip() == str(pid):
            found.append(int(fields["Pid"]))
    return found


class Follower(threading.Thread):
    """One delta stream of ``web``: collects the deltas it is sent."""

    def __init__(self, base_url: str) -> None:
        super().__init__(daemon=True)
        self.base_url = base_url
        self.deltas: list[dict[str, object]] = []
        self.connected = threading.Event()
        self.stop = threading.Event()

    def run(self) -> None:
        with httpx.Client(base_url=self.base_url, headers={"X-API-Key": READ_KEY}, timeout=STREAM_TIMEOUT) as client, \
                client.stream("GET", "/v1/channels/web/deltas") as answer:
            for line in answer.iter_lines():
                if line.startswith(": connected"):
                    self.connected.set()
                elif line.startswith("data:"):
                    self.deltas.append(orjson.loads(line.removeprefix("data:")))
                if self.stop.is_set():
                    return


def test_two_processes_serve_the_api(engine: Engine) -> None:
    assert engine.api is not None
    assert len(children_of(engine.api.process.pid)) >= 2, "avail api --workers 2 runs two worker processes"


def test_every_stream_gets_every_delta_whichever_process_holds_it(engine: Engine) -> None:
    assert engine.api is not None
    followers = [Follower(engine.api.base_url) for _ in range(STREAMS)]
    for follower in followers:
        follower.start()
        assert follower.connected.wait(10)
    skus = [f"REPLICA-{engine.name}-{i}" for i in range(5)]
    engine.produce([Receipt(f"{sku}-r", sku, "dc-east", 10 + i, now_us() - HOUR) for i, sku in enumerate(skus)])
    for follower in followers:
        wait_for(lambda f=follower: {d["sku"] for d in f.deltas}, lambda seen: seen >= set(skus), timeout=30)  # type: ignore[misc]
        follower.stop.set()
    got = [{str(d["sku"]): d["available"] for d in f.deltas if d["sku"] in skus} for f in followers]
    assert all(g == got[0] for g in got), got
    assert set(got[0]) == set(skus)


def test_a_rules_change_reaches_every_process_and_a_rebuild_changes_no_answer(engine: Engine) -> None:
    skus = [f"RULES-{engine.name}-{i}" for i in range(20)]
    events = {sku: [Receipt(f"{sku}-r", sku, "dc-east", 30 + i, now_us() - HOUR)] for i, sku in enumerate(skus)}
    engine.produce([e for sku in skus for e in events[sku]])
    v1 = load_rules(engine.rules_dir)
    want = {sku: expected(sku, events[sku], now=now_us(), rules=v1) for sku in skus}
    assert wait_for(lambda: observed_many(engine, skus), lambda seen: seen == want) == want, flow_log(engine)

    replace_rules(engine, RULES_V2)
    v2 = load_rules(engine.rules_dir)
    deadline = time.monotonic() + 30
    while True:  # many requests: each process must answer with the new version
        versions = {engine.get(f"/v1/availability/{skus[0]}").json()["rules_version"] for _ in range(20)}
        if versions == {v2.version} or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert versions == {v2.version}, flow_log(engine)
    want = {sku: expected(sku, events[sku], now=now_us(), rules=v2) for sku in skus}
    assert wait_for(lambda: observed_many(engine, skus), lambda seen: seen == want) == want

    rebuilt = subprocess.run(  # noqa: S603
        [sys.executable, "-m", "avail", "rebuild", "--timeout", "60"], env=engine.env(), capture_output=True,
        text=True, timeout=90, check=False,
    )
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert {engine.get(f"/v1/availability/{skus[0]}").status_code for _ in range(20)} == {200}
    assert observed_many(engine, skus) == want
