"""Consumer lag per Kafka partition: noted by the source partitions, carried to Redis by the heartbeats."""

from __future__ import annotations

import threading

LAG_EVERY_S = 0.25
"""How often a source partition looks at its lag: a heartbeat (about once a second) carries the latest."""


def partition_lag(next_offset: int, low: int, high: int) -> int | None:
    """Messages not yet read: high watermark − next offset to read, at least 0; None while unknown.

    ``next_offset`` is logical (below 0, e.g. ``OFFSET_BEGINNING``) until the first message is
    read: the next one is then the log start. ``low``/``high`` are ``OFFSET_INVALID`` (−1001)
    until the consumer's first fetch response for the partition.
    """
    if high < 0:
        return None
    if next_offset < 0:
        if high == 0:  # an empty partition
            return 0
        if low < 0:
            return None
        next_offset = low
    return max(0, high - next_offset)


class ConsumerLags:
    """One per flow process: each partition this process reads → its latest lag.

    Written by the Kafka source partitions and read by the heartbeat source, possibly on
    other worker threads of the process.
    """

    def __init__(self) -> None:
        self._lags: dict[tuple[str, int], int] = {}
        self._lock = threading.Lock()

    def note(self, topic: str, partition: int, lag: int) -> None:
        with self._lock:
            self._lags[topic, partition] = lag

    def forget(self, topic: str, partition: int) -> None:
        """The partition is no longer read here (closed): another process reports it now."""
        with self._lock:
            self._lags.pop((topic, partition), None)

    def snapshot(self) -> tuple[tuple[str, int, int], ...]:
        """(topic, partition, lag) of every partition read here, sorted."""
        with self._lock:
            return tuple(sorted((topic, partition, lag) for (topic, partition), lag in self._lags.items()))

