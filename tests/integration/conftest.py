from collections.abc import Iterator

import pytest

from tests.support.engine import Engine


@pytest.fixture(scope="module")
def engine(kafka_bootstrap: str, redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    """A running flow with this module's own topics and key prefix."""
    running = Engine(kafka_bootstrap, redis_url, tmp_path_factory.mktemp("engine"))
    running.start_flow()
    running.start_api()
    yield running
    running.stop()


def flow_log(engine: Engine) -> str:
    flow = "".join(path.read_text(errors="replace")[-3000:] for path in sorted(engine.home.glob("flow-*.log")))
    api = engine.api.log()[-2000:] if engine.api is not None else ""
    return f"--- flow log ---\n{flow}\n--- api log ---\n{api}"
