"""SKU writes and the delta feed on threads beside the worker, finished before the epoch that made them commits.

Written on the worker's thread, each poll's writes held the worker while Redis ran their
scripts: a fifth of the flow's wall time went to waiting (docs/performance.md, section 11).
Here the state shards hand their ``Applied`` to their worker's ``BackgroundWriter``, whose
thread writes it through a Redis sink partition of its own (the same code and retries as
the sink step), while the worker polls and applies the next events.

The delta throttles hand their releases to their worker's feed writer the same way.

Nothing may reach the recovery store before its writes reach Redis: a resume from an epoch
whose writes were lost would leave Redis behind the state until each SKU's next event.
Bytewax snapshots every state shard touched in an epoch in one loop after the epoch's last
``on_batch``, and commits the epoch only with those snapshots, so the shard's (and the
throttle's) ``snapshot`` waits for ``drain`` first (the first shard waits, the others find the queue empty). A
writer that fails for good (not a Redis outage: the sink retries those) fails the worker
at its next hand-over or drain, as a failing sink step would.
"""

from __future__ import annotations

import logging
import threading
from typing import Any, Protocol

log = logging.getLogger(__name__)

MAX_PENDING = 128
"""Items waiting for the writer at most (the Redis writer's are shard activations); past that the worker
waits (backpressure, as for a slow sink)."""


class BatchWriter(Protocol):
    def write_batch(self, items: list[Any]) -> None: ...

    def close(self) -> None: ...


class BackgroundWriterFailed(RuntimeError):
    """The writer's thread stopped on an error that retrying cannot fix."""


class BackgroundWriter:
    """One worker's writes, in hand-over order, on a thread of its own; each round writes all that waits."""

    def __init__(self, sink: BatchWriter, name: str = "redis-writer", max_pending: int = MAX_PENDING) -> None:
        self._sink = sink
        self._max_pending = max_pending
        self._changed = threading.Condition()
        self._waiting: list[object] = []
        self._writing = False
        self._closing = False
        self._failure: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def submit(self, item: object) -> None:
        self.submit_all([item])

    def submit_all(self, items: list[Any]) -> None:
        with self._changed:
            while len(self._waiting) >= self._max_pending and self._failure is None:
                self._changed.wait()
            self._raise_failure()
            if self._closing:
                raise BackgroundWriterFailed("the background writer is closed")
            self._waiting.extend(items)
            self._changed.notify_all()

    def drain(self) -> None:
        """Returns once everything handed over so far is written."""
        with self._changed:
            while (self._waiting or self._writing) and self._failure is None:
                self._changed.wait()
            self._raise_failure()

    def close(self) -> None:
        """Writes what waits, then stops the thread and closes the sink."""
        with self._changed:
            self._closing = True
            self._changed.notify_all()
        self._thread.join()
        self._sink.close()
        with self._changed:
            self._raise_failure()

    def _raise_failure(self) -> None:
        if self._failure is not None:
            raise BackgroundWriterFailed(f"background Redis writes stopped: {self._failure!r}") from self._failure

    def _run(self) -> None:
        while True:
            with self._changed:
                while not self._waiting and not self._closing:
                    self._changed.wait()
                if not self._waiting:
                    return
                batch, self._waiting = self._waiting, []
                self._writing = True
                self._changed.notify_all()  # room for a worker that waits to hand over
            try:
                self._sink.write_batch(batch)
            except BaseException as exc:  # noqa: BLE001 - handed to the worker, which fails with it
                log.exception("background Redis writes failed")
                with self._changed:
                    self._failure, self._writing = exc, False
                    self._changed.notify_all()
                return
            with self._changed:
                self._writing = False
                self._changed.notify_all()


class WorkerWriters:
    """Each worker thread's ``BackgroundWriter``: made where Bytewax builds the worker's sink, found by its shards.

    Bytewax builds a worker's steps, and later its state shards' logic, on that worker's thread.
    Keyed by the thread's id, not ``threading.local``: a worker thread is Bytewax's, and each
    time it takes the interpreter lock it may get a new Python thread state, whose locals are gone.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_thread: dict[int, BackgroundWriter] = {}

    def start(self, writer: BackgroundWriter) -> BackgroundWriter:
        with self._lock:
            self._by_thread[threading.get_ident()] = writer
        return writer

    def current(self) -> BackgroundWriter:
        with self._lock:
            writer = self._by_thread.get(threading.get_ident())
        if writer is None:
            raise BackgroundWriterFailed(
                "no background writer on this thread: the Redis sink starts one per worker before its shards run")
        return writer


class HandedOver:
    """A sink step's partition when its step's items reach the worker's background writer directly.

    Bytewax builds it on the worker's thread before the stateful steps run, so it starts the
    writer; at the end of the flow it closes it (written out first).
    """

    def __init__(self, writer: BackgroundWriter) -> None:
        self.writer = writer

    def write_batch(self, items: list[Any]) -> None:
        self.writer.submit_all(items)

    def close(self) -> None:
        self.writer.close()
