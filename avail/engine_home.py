"""The folder ``avail up`` works in (``.avail``, or ``--home``/``AVAIL_HOME``): lock, addresses, logs, recovery.

- ``lock``: held (``flock``) by the running ``avail up`` and its flow and API processes,
  so a second ``avail up`` on the same folder refuses instead of deleting the recovery
  store they use. It holds the holder's pid and API address, for the message.
- ``env``: the addresses that instance uses (``AVAIL_KAFKA_BOOTSTRAP``,
  ``AVAIL_REDIS_URL``, ...), in ``KEY=value`` lines. Every other command run in the
  folder reads it for any setting not given otherwise (``use_addresses``), so ``avail
  dlq list`` or ``avail rules preview`` find the running engine. Removed when it stops.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import orjson
from dotenv import dotenv_values

HOME_VARIABLE = "AVAIL_HOME"
DEFAULT_HOME = Path(".avail")
LOCK_FILE = "lock"
ENV_FILE = "env"


class HomeInUse(RuntimeError):
    """Another ``avail up`` runs on this folder."""

    def __init__(self, home: Path, holder: Mapping[str, object]) -> None:
        self.home, self.holder = home, holder
        pid, api = holder.get("pid", "?"), holder.get("api") or "starting"
        super().__init__(
            f"another avail up (pid {pid}, API {api}) is running with home {home}: stop it first (Ctrl-C in its "
            f"terminal), or start a separate engine with its own folder: avail up --home DIR")


def home_folder() -> Path:
    return Path(os.environ.get(HOME_VARIABLE) or DEFAULT_HOME)


@dataclass
class HeldHome:
    """An engine folder this process holds; ``fd`` is the lock, passed on to the children it starts."""

    path: Path
    fd: int

    def describe(self, **holder: object) -> None:
        """Records who holds the folder (shown to a second ``avail up``)."""
        os.ftruncate(self.fd, 0)
        os.pwrite(self.fd, orjson.dumps({"pid": os.getpid(), **holder}), 0)

    def write_addresses(self, addresses: Mapping[str, str]) -> Path:
        target = self.path / ENV_FILE
        partial = target.with_suffix(".partial")
        partial.write_text("".join(f"{key}={value}\n" for key, value in addresses.items()))
        partial.chmod(0o600)  # a Redis URL may carry a password
        partial.replace(target)
        return target


@contextlib.contextmanager
def hold(home: Path) -> Iterator[HeldHome]:
    """Locks ``home`` for this process (and the children given ``fd``); ``HomeInUse`` when another holds it."""
    home.mkdir(parents=True, exist_ok=True)
    fd = os.open(home / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise HomeInUse(home, _holder(fd)) from None
        held = HeldHome(home, fd)
        held.describe()
        try:
            yield held
        finally:
            (home / ENV_FILE).unlink(missing_ok=True)
    finally:
        os.close(fd)


def _holder(fd: int) -> dict[str, object]:
    with contextlib.suppress(ValueError):
        found = orjson.loads(os.pread(fd, 4096, 0) or b"{}")
        if isinstance(found, dict):
            return found
    return {}


def use_addresses(home: Path) -> Path | None:
    """Fills every ``AVAIL_*`` setting not already set from ``home``'s env file; the file, if there is one."""
    path = home / ENV_FILE
    if not path.is_file():
        return None
    for key, value in dotenv_values(path).items():
        if value is not None:
            os.environ.setdefault(key, value)
    return path
