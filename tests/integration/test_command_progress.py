"""Long commands show a progress bar on a terminal, and print nothing of it into a pipe."""

from __future__ import annotations

import os
import pty
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from projection import Keys
from projection.connect import sync_client

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def redis_url(any_redis_url: str) -> str:
    """This module runs on one Redis and again on a Redis Cluster."""
    return any_redis_url
REPO = Path(__file__).resolve().parents[2]
SKUS = 3000


@pytest.fixture
def engine_redis(redis_url: str) -> tuple[str, str]:
    """A Redis holding an engine's projection of ``SKUS`` SKUs under a prefix of its own."""
    prefix = f"progress-{uuid.uuid4().hex[:8]}"
    keys, store = Keys(prefix), sync_client(redis_url)
    pipe = store.pipeline(transaction=False)
    pipe.set(keys.generation, "g1")
    pipe.set(keys.rules_version, "v0")
    for i in range(SKUS):
        sku = f"TV-{i:05d}"
        pipe.zadd(keys.skus, {sku: 0})
        pipe.hset(keys.sku(sku), mapping={"n:dc-east": "5,0,0,0,0,5", "c:web": 5})
    pipe.execute()
    store.close()
    return redis_url, prefix


def preview(engine_redis: tuple[str, str], stderr: int) -> subprocess.Popen[bytes]:
    url, prefix = engine_redis
    env = {**os.environ, "AVAIL_REDIS_URL": url, "AVAIL_REDIS_PREFIX": prefix}
    return subprocess.Popen([sys.executable, "-m", "avail", "rules", "preview", str(REPO / "rules")],  # noqa: S603
                            cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=stderr)


def test_rules_preview_shows_a_bar_on_a_terminal_even_one_without_a_size(engine_redis: tuple[str, str]) -> None:
    leader, follower = pty.openpty()
    process = preview(engine_redis, follower)
    os.close(follower)
    shown = b""
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # the terminal closed with the process
            break
        if not chunk:
            break
        shown += chunk
    os.close(leader)
    stdout, _ = process.communicate(timeout=60)
    assert process.returncode == 0
    assert b"comparing" in shown and f"/{SKUS}".encode() in shown, shown[-500:]
    assert b"comparing" not in stdout and b"channel web" in stdout


def test_rules_preview_prints_no_bar_into_a_pipe(engine_redis: tuple[str, str]) -> None:
    process = preview(engine_redis, subprocess.PIPE)
    stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 0 and b"channel web" in stdout
    assert b"comparing" not in stderr
