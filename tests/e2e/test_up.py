"""``avail up`` as a new user meets it: one engine per folder, and the other commands find it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from local_servers import LOOPBACK, free_port, stop_process

pytestmark = pytest.mark.e2e
REPO = Path(__file__).resolve().parents[2]
BANNER_TIMEOUT_S = 90


def user_env(**extra: str) -> dict[str, str]:
    """The environment of a user who set nothing: no broker, Redis or home configured."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("AVAIL_")}
    return {**env, "AVAIL_RULES_DIR": str(REPO / "rules"), **extra}


def avail(*args: str, cwd: Path, env: dict[str, str] | None = None,
          timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "avail", *args], cwd=cwd, env=env or user_env(),  # noqa: S603
                          capture_output=True, text=True, timeout=timeout, check=False)


@dataclass
class Up:
    process: subprocess.Popen[str]
    banner: str
    home: Path

    @property
    def api(self) -> str:
        return next(line.split("API ")[1].split()[0] for line in self.banner.splitlines() if "avail is up" in line)


def stop(process: subprocess.Popen[str]) -> None:
    """Ctrl-C, as a user stops it: it stops what it started."""
    stop_process(process, signal.SIGINT, timeout=20)  # type: ignore[arg-type]
    if process.stdout is not None:
        process.stdout.close()


def start_up(cwd: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "avail", "up", "--port", str(free_port()), *args],  # noqa: S603
                            cwd=cwd, env=user_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)


def read_banner(process: subprocess.Popen[str]) -> str:
    assert process.stdout is not None
    lines: list[str] = []
    deadline = time.monotonic() + BANNER_TIMEOUT_S
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        lines.append(line)
        if line.startswith("Ctrl-C stops everything"):
            return "".join(lines)
    raise AssertionError("avail up printed no banner:\n" + "".join(lines))


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Up]:
    cwd = tmp_path_factory.mktemp("user")
    process = start_up(cwd)
    try:
        yield Up(process, read_banner(process), cwd / ".avail")
    finally:
        stop(process)


class TestOneEnginePerFolder:
    def test_a_second_up_on_the_same_folder_refuses_and_leaves_the_first_running(self, running: Up) -> None:
        recovery = running.home / "recovery"
        assert recovery.is_dir()
        second = start_up(running.home.parent)
        try:
            output, _ = second.communicate(timeout=30)
        finally:
            stop(second)
        assert second.returncode == 1
        assert f"another avail up (pid {running.process.pid}, API {running.api})" in output
        assert "--home DIR" in output
        assert recovery.is_dir() and any(recovery.iterdir())
        assert running.process.poll() is None
        assert httpx.get(f"{running.api}/healthz", timeout=5).status_code == 200

    def test_another_home_is_another_engine(self, running: Up, tmp_path: Path) -> None:
        other = start_up(running.home.parent, "--home", str(tmp_path / "other"))
        try:
            banner = read_banner(other)
            assert "avail is up" in banner and running.api not in banner
        finally:
            stop(other)
        assert other.returncode == 0
        assert not (tmp_path / "other" / "env").exists()  # its addresses go with it


class TestOtherCommandsFindTheEngine:
    def test_the_banner_gives_the_addresses_and_the_folder_keeps_them(self, running: Up) -> None:
        written = (running.home / "env").read_text()
        for name in ("AVAIL_KAFKA_BOOTSTRAP", "AVAIL_REDIS_URL", "AVAIL_REDIS_PREFIX"):
            line = next(line for line in written.splitlines() if line.startswith(f"{name}="))
            assert f"  export {line}" in running.banner

    def test_commands_in_the_folder_use_the_running_engine(self, running: Up) -> None:
        preview = avail("rules", "preview", str(REPO / "rules"), "--json", cwd=running.home.parent)
        assert preview.returncode == 0, preview.stderr
        assert '"channels"' in preview.stdout
        listing = avail("dlq", "list", cwd=running.home.parent)
        assert listing.returncode == 0, listing.stderr
        assert "dead letter(s) read" in listing.stdout
        assert "Connection refused" not in listing.stderr

    def test_no_engine_where_the_settings_point_fails_in_one_line(self, running: Up, tmp_path: Path) -> None:
        nowhere = f"redis://{LOOPBACK}:{free_port()}/0"
        for args in (["rules", "preview", str(REPO / "rules")], ["rebuild", "--no-wait"]):
            done = avail(*args, "--redis", nowhere, cwd=tmp_path)
            assert done.returncode == 1
            assert len(done.stderr.strip().splitlines()) == 1 and "does not answer" in done.stderr, done.stderr
        redis_url = next(line.split("=", 1)[1] for line in (running.home / "env").read_text().splitlines()
                         if line.startswith("AVAIL_REDIS_URL="))
        empty = avail("rules", "preview", str(REPO / "rules"), "--redis", redis_url, cwd=tmp_path,
                      env=user_env(AVAIL_REDIS_PREFIX="nobody"))
        assert empty.returncode == 1 and "no engine in Redis" in empty.stderr, empty.stderr
        dlq = avail("dlq", "list", "--bootstrap", f"{LOOPBACK}:{free_port()}", cwd=tmp_path)
        assert dlq.returncode == 1
        assert dlq.stderr.strip().splitlines() == [dlq.stderr.strip()] and "does not answer" in dlq.stderr

    def test_version(self, tmp_path: Path) -> None:
        done = avail("--version", cwd=tmp_path)
        assert done.returncode == 0 and done.stdout.startswith("avail ")
