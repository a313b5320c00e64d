"""Starts the query API as a real uvicorn subprocess on a free loopback port.

Usage::

    api = start_api(redis_url, prefix, {"k" * 16: ["read"]})
    try:
        httpx.get(f"{api.base_url}/healthz")
    finally:
        api.stop()

The process is stopped by the PID we started, never by name.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from local_servers import LOOPBACK, free_port, stop_process
from projection import Keys
from projection.connect import SyncClient

REPO_ROOT = Path(__file__).resolve().parents[2]


class ApiStartError(RuntimeError):
    """The API process exited or did not answer /healthz in time; carries its log."""


@dataclass
class RunningApi:
    base_url: str
    process: subprocess.Popen[bytes]
    log_path: Path
    _stopped: bool = field(default=False, repr=False)

    @property
    def pid(self) -> int:
        return self.process.pid

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self, timeout: float = 5.0) -> None:
        if self._stopped:
            return
        self._stopped = True
        stop_process(self.process, timeout=timeout)


Grant = Sequence[str] | Mapping[str, object]
"""An AVAIL_API_KEYS value: scopes, or {"scopes": [...], "rate_per_s": N}."""


def api_env(
    redis_url: str, prefix: str, api_keys: Mapping[str, Grant] | None,
    extra_env: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The child's environment: ours without AVAIL_* (so the test alone decides), plus the API's."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AVAIL_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    env["AVAIL_REDIS_URL"] = redis_url
    env["AVAIL_REDIS_PREFIX"] = prefix
    if api_keys is not None:
        env["AVAIL_API_KEYS"] = json.dumps(
            {key: grant if isinstance(grant, Mapping) else list(grant) for key, grant in api_keys.items()})
    env.update(extra_env or {})
    return env


def api_command(port: int, workers: int = 1) -> list[str]:
    """One API process; with ``workers`` > 1, ``avail api --workers N`` (N processes on one port)."""
    if workers > 1:
        return [sys.executable, "-m", "avail", "api", "--host", LOOPBACK, "--port", str(port),
                "--workers", str(workers)]
    return [
        sys.executable, "-W", "error::DeprecationWarning", "-m", "uvicorn", "--factory",
        "availability_api.app:app_from_env", "--host", LOOPBACK, "--port", str(port),
        "--log-level", "warning", "--no-access-log", "--lifespan", "on",
    ]


def start_api(
    redis_url: str, prefix: str, api_keys: Mapping[str, Grant] | None,
    extra_env: Mapping[str, str] | None = None, log_dir: Path | None = None, timeout: float = 20.0,
    workers: int = 1,
) -> RunningApi:
    """Starts the API and waits until /healthz answers; raises ``ApiStartError`` with its log otherwise."""
    port = free_port()
    log_dir = log_dir or Path(tempfile.mkdtemp(prefix="avail-api-"))
    log_path = log_dir / f"api-{port}.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(  # noqa: S603 - our own interpreter and arguments
            api_command(port, workers), cwd=REPO_ROOT, env=api_env(redis_url, prefix, api_keys, extra_env),
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
        )
    api = RunningApi(f"http://{LOOPBACK}:{port}", process, log_path)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise ApiStartError(f"API exited with code {process.returncode}:\n{api.log()}")
        with contextlib.suppress(httpx.TransportError):
            if httpx.get(f"{api.base_url}/healthz", timeout=0.5).status_code == 200:
                return api
        time.sleep(0.05)
    api.stop()
    raise ApiStartError(f"API did not answer /healthz within {timeout:.0f} s:\n{api.log()}")


@contextlib.contextmanager
def serving_api(
    redis_url: str, prefix: str, api_keys: Mapping[str, Grant] | None, log_dir: Path,
    extra_env: Mapping[str, str] | None = None,
) -> Iterator[RunningApi]:
    """``start_api`` for a fixture: stopped afterwards, and its log must hold no traceback."""
    running = start_api(redis_url, prefix, api_keys, extra_env, log_dir)
    yield running
    running.stop()
    assert "Traceback" not in running.log(), running.log()


def write_heartbeat(store: SyncClient, keys: Keys, age_s: float = 0.0) -> None:
    """A flow worker's heartbeat, as the flow writes it, ``age_s`` seconds old."""
    store.hset(keys.heartbeat, "0", time.time_ns() // 1000 - int(age_s * 1e6))


def delete_prefix(store: SyncClient, prefix: str) -> None:
    for pattern in Keys(prefix).patterns:
        for key in store.scan_iter(match=pattern, count=1000):
            store.delete(key)
