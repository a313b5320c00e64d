"""State logs: each shard's SKU changes appended to a file beside Bytewax's recovery store.

Bytewax stores what ``snapshot()`` returns whole, at every epoch a key was touched, so a
shard holding hot SKUs (a week of event ids, journals and reservations) was rewritten
whole every second and a large backlog slowed to a crawl as the state grew. Instead a
shard appends one record per epoch with only what its SKUs changed (``atp.changes``) to
``<shard>.<generation>.log``, and gives Bytewax just the log's length (``LogPosition``).

Resuming reads the log up to the length in the snapshot Bytewax resumes from and cuts
what lies beyond it (records of epochs that never committed). Records are fsynced before
Bytewax commits the epoch that names them, so the log is as durable as Bytewax's store.
When a log has grown past a few times its live content, the shard writes its state whole
to the next generation; the older generation stays until the one after is made, since
Bytewax may still resume from a snapshot naming it.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import struct
import time
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

from atp.changes import Change

_HEADER = struct.Struct("<II")  # payload length, CRC-32 of the payload

SkuRecord = tuple[str, int, str, Change]
"""One SKU in a shard's record: its id, last version written, Redis data generation, change."""


class LogPosition(NamedTuple):
    """What Bytewax stores for a shard (or a channel's throttle): which log, and how much of it is committed.

    ``shard`` is the log's file stem: a state shard's name, or ``throttle-<digest>``.
    """

    shard: str
    generation: int
    length: int


class StateLogError(RuntimeError):
    """A log does not hold what the recovery store says it does."""


@dataclass(frozen=True, slots=True)
class Compaction:
    """When a shard's log is rewritten whole.

    It is ``ratio`` times its last whole content and at least ``min_bytes``, and its
    generation is ``min_age_s`` old, so the generation before it is no longer named by
    any snapshot Bytewax could resume from.
    """

    ratio: float = 3.0
    min_bytes: int = 1 << 20
    min_age_s: float = 30.0


class StateLog:
    """The directory of shard logs of one recovery store."""

    def __init__(self, directory: Path, *, sync: bool = True, compaction: Compaction | None = None) -> None:
        self.directory = directory
        self.sync = sync
        self.compaction = compaction or Compaction()
        directory.mkdir(parents=True, exist_ok=True)

    def fresh(self, shard: str) -> ShardLog:
        """A new log for a shard Bytewax holds no snapshot of; leftovers of uncommitted epochs go."""
        self._remove(shard, keep=None)
        return ShardLog(self, shard, 1, whole_bytes=0)

    def resume(self, position: LogPosition) -> tuple[ShardLog, list[list[Any]]]:
        """The shard's log positioned at ``position`` and the records up to it, oldest first."""
        path = self._path(position.shard, position.generation)
        try:
            with path.open("r+b") as file:
                data = file.read(position.length)
                if len(data) < position.length:
                    raise StateLogError(
                        f"{path} holds {len(data)} bytes, the recovery store names {position.length}: the "
                        "recovery directory was not copied whole or the disk lost writes. Start with a new "
                        "recovery directory and replay the topics (docs/operations.md)")
                file.truncate(position.length)  # records of epochs that never committed
        except FileNotFoundError:
            raise StateLogError(
                f"{path} is missing but the recovery store names it: the recovery directory was not copied "
                "whole. Start with a new recovery directory and replay the topics (docs/operations.md)") from None
        records = list(_read(path, data))
        self._remove(position.shard, keep=position.generation)
        whole_bytes = _first_length(data) if position.generation > 1 else 0
        log = ShardLog(self, position.shard, position.generation, whole_bytes, length=position.length)
        return log, records

    def _path(self, shard: str, generation: int) -> Path:
        return self.directory / f"{shard}.{generation:06d}.log"

    def _remove(self, shard: str, keep: int | None) -> None:
        for path in self.directory.glob(f"{shard}.*.log"):
            if keep is None or int(path.name[len(shard) + 1:-len(".log")]) != keep:
                path.unlink(missing_ok=True)


class ShardLog:
    """One shard's current log file, appended to once per epoch the shard was touched in."""

    def __init__(self, owner: StateLog, shard: str, generation: int, whole_bytes: int, length: int = 0) -> None:
        self.owner = owner
        self.shard = shard
        self.generation = generation
        self.whole_bytes = whole_bytes  # size of the generation's first, whole record
        self.length = length
        self.started = time.monotonic()

    @property
    def position(self) -> LogPosition:
        return LogPosition(self.shard, self.generation, self.length)

    def wants_compaction(self) -> bool:
        rule = self.owner.compaction
        return (0 < self.length and self.length >= rule.min_bytes and self.length >= rule.ratio * self.whole_bytes
                and time.monotonic() - self.started >= rule.min_age_s)

    def append(self, skus: list[Any]) -> LogPosition:
        created = self.length == 0
        self.length += self._write(self.owner._path(self.shard, self.generation), skus)
        if created and self.owner.sync:
            _sync_directory(self.owner.directory)
        return self.position

    def rewrite(self, skus: list[Any]) -> LogPosition:
        """Starts the next generation with ``skus`` (every SKU, whole); drops the one before last."""
        generation = self.generation + 1
        written = self._write(self.owner._path(self.shard, generation), skus)
        if self.owner.sync:
            _sync_directory(self.owner.directory)
        self.owner._path(self.shard, self.generation - 1).unlink(missing_ok=True)
        self.generation, self.length, self.whole_bytes = generation, written, written
        self.started = time.monotonic()
        return self.position

    def _write(self, path: Path, skus: list[Any]) -> int:
        payload = pickle.dumps(skus, protocol=5)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            os.write(fd, _HEADER.pack(len(payload), zlib.crc32(payload)) + payload)
            if self.owner.sync:
                os.fdatasync(fd)
        finally:
            os.close(fd)
        return _HEADER.size + len(payload)


def _read(path: Path, data: bytes) -> Iterable[list[Any]]:
    offset = 0
    while offset < len(data):
        if offset + _HEADER.size > len(data):
            raise StateLogError(f"{path}: record header cut at byte {offset}")
        size, crc = _HEADER.unpack_from(data, offset)
        payload = data[offset + _HEADER.size: offset + _HEADER.size + size]
        if len(payload) != size or zlib.crc32(payload) != crc:
            raise StateLogError(f"{path}: damaged record at byte {offset}")
        yield pickle.loads(payload)  # noqa: S301 - our own records, never user input
        offset += _HEADER.size + size


def _first_length(data: bytes) -> int:
    return _HEADER.size + _HEADER.unpack_from(data, 0)[0] if data else 0


def _sync_directory(directory: Path) -> None:
    with contextlib.suppress(OSError):  # some file systems cannot fsync a directory
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
