"""A Bytewax cluster of flow processes fails as a unit: when one dies, the others exit at once, non-zero."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.engine import Engine, flow_log, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.reliability]
PROCESSES = 3


@pytest.fixture
def cluster(kafka_bootstrap: str, redis_url: str, tmp_path: Path) -> Iterator[Engine]:
    engine = Engine(kafka_bootstrap, redis_url, tmp_path)
    try:
        engine.start_flow(processes=PROCESSES)
        yield engine
    finally:
        engine.stop()


def beating_processes(engine: Engine) -> int:
    return len({worker.rsplit(":", 1)[0] for worker in engine.redis.hgetall(engine.keys.heartbeat)})


def test_when_one_process_of_three_dies_the_others_exit_promptly_and_say_why(cluster: Engine) -> None:
    assert wait_for(lambda: beating_processes(cluster), lambda n: n == PROCESSES, timeout=60), flow_log(cluster)
    victim, survivors = cluster.flows[1], [cluster.flows[0], cluster.flows[2]]
    os.kill(victim.pid, signal.SIGKILL)
    killed_at = time.monotonic()
    codes = wait_for(lambda: [p.poll() for p in survivors], lambda c: None not in c, timeout=30)
    took = time.monotonic() - killed_at
    assert None not in codes, f"survivors still running after {took:.0f} s (an orchestrator would wait forever)"
    assert all(code != 0 for code in codes), codes
    assert took < 10, took
    assert "the cluster lost a peer" in flow_log(cluster)
