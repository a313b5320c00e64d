import os
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, settings

from local_servers import LocalRedisCluster
from tests.support import servers
from tests.support.engine import Engine, running_engine

settings.register_profile("dev", max_examples=150, deadline=None)
settings.register_profile(
    "ci", max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=False,
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))


@pytest.fixture(scope="session")
def kafka_bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real Kafka-protocol broker for the whole session (see tests/support/servers.py)."""
    with servers.kafka_bootstrap(tmp_path_factory.mktemp("kafka-logs")) as bootstrap:
        yield bootstrap


@pytest.fixture(scope="session")
def single_redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real Redis for the whole session; tests keep apart by key prefix."""
    with servers.redis_url(tmp_path_factory.mktemp("redis-logs")) as url:
        yield url


@pytest.fixture(scope="session")
def redis_url(single_redis_url: str) -> str:
    """The Redis a test runs on; a module that runs in both modes overrides it with ``any_redis_url``."""
    return single_redis_url


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalRedisCluster | str]:
    """A real Redis Cluster (3 masters, 3 replicas) for the whole session, started when a test first asks."""
    with servers.redis_cluster(tmp_path_factory.mktemp("redis-cluster")) as cluster:
        yield cluster


@pytest.fixture(scope="session")
def redis_cluster_url(redis_cluster: LocalRedisCluster | str) -> str:
    return redis_cluster if isinstance(redis_cluster, str) else redis_cluster.url


@pytest.fixture(scope="module", params=["single", "cluster"], ids=["redis", "redis-cluster"])
def any_redis_url(request: pytest.FixtureRequest) -> str:
    """Runs a module's tests on one Redis and again on a Redis Cluster: every answer must be the same."""
    return str(request.getfixturevalue("single_redis_url" if request.param == "single" else "redis_cluster_url"))


@pytest.fixture(scope="module")
def engine(kafka_bootstrap: str, redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    """A running flow and API with this module's own topics and key prefix."""
    workers = int(os.environ.get("AVAIL_TEST_WORKERS", "1"))
    with running_engine(kafka_bootstrap, redis_url, tmp_path_factory.mktemp("engine"), workers=workers) as engine:
        yield engine
