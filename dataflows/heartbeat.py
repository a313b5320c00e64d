"""A per-worker tick, so Redis shows each worker alive even when no events flow, and its process's consumer lags."""

from __future__ import annotations

import os
import socket
from datetime import UTC, datetime, timedelta

from bytewax.inputs import DynamicSource, StatelessSourcePartition

from dataflows.consumer_lag import ConsumerLags
from dataflows.logic import now_us
from dataflows.messages import Heartbeat


class _Ticks(StatelessSourcePartition[Heartbeat]):
    def __init__(self, worker: str, interval: timedelta, lags: ConsumerLags | None) -> None:
        self.worker = worker
        self.interval = interval
        self.due = datetime.now(UTC)
        self.lags = lags

    def next_batch(self) -> list[Heartbeat]:
        self.due = datetime.now(UTC) + self.interval
        return [Heartbeat(self.worker, now_us(), self.lags.snapshot() if self.lags is not None else ())]

    def next_awake(self) -> datetime:
        return self.due


class HeartbeatSource(DynamicSource[Heartbeat]):
    def __init__(self, interval_s: float, lags: ConsumerLags | None = None) -> None:
        self.interval = timedelta(seconds=interval_s)
        self.lags = lags

    def build(self, step_id: str, worker_index: int, worker_count: int) -> _Ticks:
        return _Ticks(f"{socket.gethostname()}:{os.getpid()}:{worker_index}", self.interval, self.lags)
