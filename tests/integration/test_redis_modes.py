"""A Redis URL of the wrong form for what answers there: refused at start-up, naming the setting, nothing written.

``redis://`` at a cluster node would have every write to another master's slot refused
(MOVED); ``redis+cluster://`` at a lone Redis cannot learn a cluster. The flow, the API
and the commands all say so before they write anything.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from local_servers import LOOPBACK, LocalRedisCluster
from projection import Keys
from projection.connect import sync_client
from tests.support.api import ApiStartError, start_api

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
CLUSTER_NOT_ENABLED = "cluster mode is not enabled"
NOT_ONE_REDIS = "write it as redis+cluster://"


@pytest.fixture
def prefix() -> str:
    return f"modes-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def cluster_node_url(redis_cluster: LocalRedisCluster | str) -> str:
    if isinstance(redis_cluster, str):
        pytest.skip("needs the local cluster's node addresses")
    return f"redis://{LOOPBACK}:{redis_cluster.masters[0].port}/0"


def lone_redis_as_cluster(redis_url: str) -> str:
    return "redis+cluster://" + redis_url.removeprefix("redis://").rsplit("/", 1)[0]


def avail(redis_url: str, prefix: str, kafka: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "AVAIL_REDIS_URL": redis_url, "AVAIL_REDIS_PREFIX": prefix, "AVAIL_KAFKA_BOOTSTRAP": kafka,
           "AVAIL_RULES_DIR": str(REPO / "rules")}
    return subprocess.run(  # noqa: S603 - our own interpreter and arguments
        [sys.executable, "-m", "avail", *args], env=env, capture_output=True, text=True, timeout=60, check=False,
    )


def written(url: str, prefix: str) -> list[str]:
    with sync_client(url) as client:
        return [key.decode() for pattern in Keys(prefix).patterns for key in client.scan_iter(pattern)]


@pytest.fixture
def urls(redis_url: str, redis_cluster_url: str, cluster_node_url: str) -> Iterator[dict[str, tuple[str, str, str]]]:
    """Wrong URL, where to look for writes, what the refusal says."""
    yield {
        "cluster-url-at-one-redis": (lone_redis_as_cluster(redis_url), redis_url, CLUSTER_NOT_ENABLED),
        "one-redis-url-at-a-cluster-node": (cluster_node_url, redis_cluster_url, NOT_ONE_REDIS),
    }


@pytest.mark.parametrize("case", ["cluster-url-at-one-redis", "one-redis-url-at-a-cluster-node"])
def test_the_flow_refuses_to_start_and_writes_nothing(
    urls: dict[str, tuple[str, str, str]], case: str, prefix: str, kafka_bootstrap: str,
) -> None:
    wrong, real, says = urls[case]
    flow = avail(wrong, prefix, kafka_bootstrap, "flow")
    assert flow.returncode != 0
    assert "AVAIL_REDIS_URL" in flow.stderr and says in flow.stderr, flow.stderr
    assert written(real, prefix) == []


@pytest.mark.parametrize("case", ["cluster-url-at-one-redis", "one-redis-url-at-a-cluster-node"])
def test_a_command_refuses_in_one_line(
    urls: dict[str, tuple[str, str, str]], case: str, prefix: str, kafka_bootstrap: str,
) -> None:
    wrong, real, says = urls[case]
    rebuild = avail(wrong, prefix, kafka_bootstrap, "rebuild", "--no-wait")
    assert rebuild.returncode == 1
    assert rebuild.stderr.startswith("avail rebuild: ") and says in rebuild.stderr, rebuild.stderr
    assert "Traceback" not in rebuild.stderr
    assert written(real, prefix) == []


def test_the_api_refuses_to_start_on_a_cluster_node_named_as_one_redis(
    cluster_node_url: str, prefix: str, tmp_path: Path,
) -> None:
    with pytest.raises(ApiStartError) as refused:
        start_api(cluster_node_url, prefix, {"k" * 24: ["read"]}, log_dir=tmp_path)
    assert NOT_ONE_REDIS in str(refused.value)
