"""Rescale a flow cluster on the same recovery store: 2 processes, then 3, then 1 with 2 workers; numbers exact."""

from __future__ import annotations

import os
import random
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from atp.events import Event
from rulebook import load_rules
from tests.integration.test_flow import now_us, observed_many
from tests.support.engine import Engine, flow_log, wait_for
from tests.support.reference import Expected, expected
from tests.support.streams import random_stream

pytestmark = [pytest.mark.integration, pytest.mark.reliability]
TOPOLOGIES = [(2, 1), (3, 1), (1, 2)]  # (processes, workers per process), in turn, on one recovery store


@pytest.fixture
def engine(kafka_bootstrap: str, redis_url: str, tmp_path: Path) -> Iterator[Engine]:
    running = Engine(kafka_bootstrap, redis_url, tmp_path)
    try:
        running.start_api()
        yield running
    finally:
        running.stop()


def test_stop_and_restart_with_other_process_and_worker_counts_keeps_every_number(engine: Engine) -> None:
    seed = int(os.environ.get("AVAIL_TEST_SEED", random.randrange(1_000_000)))
    skus = [f"TV-{seed}-{i:03d}" for i in range(90)]
    events = random_stream(seed, skus, 6_000)
    unique = len({e.event_id for e in events})
    part = len(events) // len(TOPOLOGIES)
    for phase, (processes, workers) in enumerate(TOPOLOGIES):
        engine.start_flow(processes=processes, workers=workers)
        chunk = events[phase * part:] if phase == len(TOPOLOGIES) - 1 else events[phase * part:(phase + 1) * part]
        engine.produce(chunk)
        seen_so_far = len({e.event_id for e in events[:phase * part + len(chunk)]})
        applied = wait_for(lambda: engine.stats().get("applied", 0), lambda n, s=seen_so_far: n >= s, timeout=90)
        assert applied >= seen_so_far, f"seed {seed}, {processes}x{workers}: applied {applied}\n" + flow_log(engine)
        time.sleep(2.5)  # a few epochs: the state is in the recovery store
        if phase < len(TOPOLOGIES) - 1:
            engine.kill_flow()

    rules = load_rules(engine.rules_dir)
    by_sku: dict[str, list[Event]] = {sku: [] for sku in skus}
    for event in events:
        by_sku[event.sku].append(event)
    want = {sku: expected(sku, by_sku[sku], now=now_us(), rules=rules) for sku in skus}

    def snapshot() -> dict[str, Expected]:
        return observed_many(engine, skus)

    got = wait_for(snapshot, lambda seen: seen == want, timeout=60, every=0.5)
    wrong = [sku for sku in skus if got[sku] != want[sku]]
    assert not wrong, (f"seed {seed}: {len(wrong)} SKUs differ after 2 -> 3 -> 1x2, e.g. {wrong[0]}: "
                       f"got {got[wrong[0]]}, want {want[wrong[0]]}\n" + flow_log(engine))
    applied = engine.stats()["applied"]
    assert unique <= applied < 1.5 * unique, f"seed {seed}: applied {applied} for {unique}: resumed, not replayed"
