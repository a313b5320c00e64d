"""The broker goes away mid-stream: the flow waits in the same process and resumes.

The test broker is memory-only, so its process must not stop. "Down" is played two
ways: the proxy every client connects through is stopped (connections cut, new ones
refused, as during a broker restart) or the broker process is frozen with SIGSTOP (a
hung broker: connections open, nothing answers).
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from local_servers import LOOPBACK, LocalServer, free_port, start_tansu
from tests.reliability.test_store_faults import OUTAGE_S, Stream
from tests.support.engine import Engine, flow_log, wait_for
from tests.support.tcp_proxy import TcpProxy

pytestmark = [pytest.mark.integration, pytest.mark.reliability]


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[tuple[LocalServer, TcpProxy]]:
    proxy_port = free_port()
    server = start_tansu(log_dir=tmp_path, advertised_port=proxy_port)
    proxy = TcpProxy(proxy_port, server.port)
    proxy.start()
    yield server, proxy
    proxy.stop()
    os.kill(server.pid, signal.SIGCONT)
    server.stop()


@pytest.mark.parametrize("how", ["restarted", "hung"])
def test_flow_waits_for_the_broker_and_resumes(
    broker: tuple[LocalServer, TcpProxy], redis_url: str, tmp_path: Path, how: str,
) -> None:
    server, proxy = broker
    engine = Engine(f"{LOOPBACK}:{proxy.listen_port}", redis_url, tmp_path / "engine")
    try:
        engine.start_api()
        engine.start_flow()
        stream = Stream(engine, 10_000)
        stream.start()
        progress = wait_for(lambda: engine.stats().get("applied", 0), lambda n: n >= stream.unique // 3, 60)
        assert progress >= stream.unique // 3, flow_log(engine)
        flow_pids = [flow.pid for flow in engine.flows]
        assert progress < 0.8 * stream.unique, "the outage must interrupt the stream, not follow it"
        if how == "restarted":
            proxy.stop()
        else:
            os.kill(server.pid, signal.SIGSTOP)
        time.sleep(OUTAGE_S)
        if how == "restarted":
            proxy.start()
        else:
            os.kill(server.pid, signal.SIGCONT)
        back = time.monotonic()
        settle_s = stream.settle(timeout=120)
        print(f"seed {stream.seed}: broker {how} after {OUTAGE_S:.0f} s: numbers correct "
              f"{time.monotonic() - back:.1f} s after it answered (settle {settle_s:.1f} s)")
        assert [flow.pid for flow in engine.flows] == flow_pids and all(f.poll() is None for f in engine.flows), \
            "the flow must wait for the broker in the same process\n" + flow_log(engine)
        assert engine.stats().get("applied", 0) <= stream.unique, "nothing applied twice"
    finally:
        engine.stop()
