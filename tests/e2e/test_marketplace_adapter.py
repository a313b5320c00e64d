"""The reference adapter keeps a fake, rate-limited marketplace equal to a channel, across its own restart."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from atp.events import Receipt, Sale
from local_servers import LOOPBACK, free_port, stop_process
from tests.e2e.test_feed import THROTTLED
from tests.integration.test_flow import HOUR, now_us
from tests.support.engine import AMAZON_KEY, Engine, flow_log, running_engine, wait_for

pytestmark = pytest.mark.e2e
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def engine(kafka_bootstrap: str, redis_url: str, tmp_path: Path) -> Iterator[Engine]:
    with running_engine(kafka_bootstrap, redis_url, tmp_path, THROTTLED) as engine:
        yield engine


@pytest.fixture
def marketplace(tmp_path: Path) -> Iterator[str]:
    port = free_port()
    env = {**os.environ, "FAKE_MARKETPLACE_RATE": "200", "FAKE_MARKETPLACE_FLAKY": "20"}
    with (tmp_path / "marketplace.log").open("wb") as log:
        process = subprocess.Popen(  # noqa: S603
            [sys.executable, "-m", "uvicorn", "examples.fake_marketplace:app", "--host", LOOPBACK, "--port", str(port),
             "--log-level", "warning"], cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://{LOOPBACK}:{port}"
    wait_for(lambda: _up(url), bool, timeout=20)
    yield url
    stop_process(process)


def _up(url: str) -> bool:
    try:
        return httpx.get(f"{url}/inventory", timeout=1).status_code == 200
    except httpx.TransportError:
        return False


def start_adapter(engine: Engine, marketplace: str, state: Path) -> subprocess.Popen[bytes]:
    assert engine.api is not None
    with (state.parent / "adapter.log").open("ab") as log:
        return subprocess.Popen(  # noqa: S603
            [sys.executable, "examples/marketplace_adapter.py", "--api", engine.api.base_url, "--key", AMAZON_KEY,
             "--channel", "amazon", "--marketplace", marketplace, "--state-file", str(state)],
            cwd=REPO, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


def test_the_marketplace_ends_with_the_channel_numbers_across_an_adapter_restart(
    engine: Engine, marketplace: str, tmp_path: Path,
) -> None:
    skus = [f"TV-adapter-{engine.name}-{i:03d}" for i in range(150)]
    t = now_us() - HOUR
    engine.produce([Receipt(f"{sku}-1", sku, "dc-east", 20 + i % 7, t) for i, sku in enumerate(skus)])

    def current() -> dict[str, int]:
        results = engine.post("/v1/availability/batch", {"skus": skus, "channel": "amazon"}, key=AMAZON_KEY)
        return {r["sku"]: r["channels"]["amazon"] for r in results.json()["results"]}

    def pushed() -> dict[str, int]:
        stored = httpx.get(f"{marketplace}/inventory", timeout=5).json()["inventory"]
        return {sku: stored.get(sku, 0) for sku in skus}

    wait_for(current, lambda numbers: all(n > 0 for n in numbers.values()))
    state = tmp_path / "amazon.seq"
    adapter = start_adapter(engine, marketplace, state)
    try:
        assert wait_for(pushed, lambda got: got == current(), timeout=60) == current(), flow_log(engine)
        os.kill(adapter.pid, signal.SIGKILL)  # the adapter dies; sales go on
        adapter.wait(10)
        engine.produce([Sale(f"{sku}-2", sku, "dc-east", 1 + i % 4, t + 1) for i, sku in enumerate(skus)])
        engine.produce([Sale(f"{sku}-3", sku, "dc-east", 9, t + 2) for sku in skus[:20]])
        applied = wait_for(lambda: engine.stats().get("applied", 0), lambda n: n >= 2 * len(skus) + 20)
        assert applied >= 2 * len(skus) + 20
        assert state.exists()
        adapter = start_adapter(engine, marketplace, state)  # resumes after the saved seq, no bootstrap
        final = wait_for(pushed, lambda got: got == current(), timeout=60)
        assert final == current(), (tmp_path / "adapter.log").read_text()[-3000:]
        log = (tmp_path / "adapter.log").read_text()
        assert log.count("bootstrapped") == 1, "the restart resumed from its saved position"
    finally:
        stop_process(adapter)
