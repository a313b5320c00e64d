"""CPU per event of each stage of the flow, in one process, with no broker and no Redis.

The load generator's events (``--scale``, ``--events``) go through the flow's own code in
poll-sized batches, as one worker runs them: decode and split by shard
(``Decoder.decode_batch``), the shard step (``ShardLogic.on_batch``), each channel's delta
throttle (``ThrottleLogic.on_batch``), the Redis sink's argument building (``coalesce``,
``sku_arguments``, ``pack_chunk`` and ``incident_arguments``, no network), and a snapshot of every
touched shard and throttle each ``--epoch-events`` (records appended to state logs in a temporary
directory, fsynced unless ``--no-sync``; the wall time of snapshots is reported apart,
since fsync waits cost no CPU). Times are process CPU time, so a busy machine slows the
run but hardly moves the numbers: use it to compare changes to the hot paths.
``python -m load_tests.bench_stages [--scale full] [--events 200000] [--poll 1000] [--supply-share 0.01]
[--dated-transfer-share 0.2]`` (the last two as in ``load_tests.produce_backlog``)
"""

from __future__ import annotations

import argparse
import gc
import tempfile
import time
from pathlib import Path
from typing import Literal

from dataflows.flow import _deltas_by_channel, tune_gc
from dataflows.kafka_io import Decoder
from dataflows.messages import ChannelDelta
from dataflows.redis_sink import coalesce, incident_arguments, pack_chunk, sku_arguments
from dataflows.rules_reload import ActiveRules
from dataflows.shard_key import SHARDS
from dataflows.shards import ShardLogic
from dataflows.state_log import StateLog
from dataflows.store_guard import Registry
from dataflows.throttle import ThrottleLogic
from engine_settings import FlowSettings
from load_tests import report
from load_tests.generator import LoadGenerator, Scenario
from load_tests.produce_backlog import topic_names
from rulebook import load_rules

RULES = {"full": Path(__file__).parent / "rules_full", "small": Path(__file__).parent.parent / "rules"}


class _Message:
    """What the decoder reads of a confluent-kafka ``Message``."""

    __slots__ = ("_key", "_offset", "_topic", "_value")

    def __init__(self, topic: str, offset: int, key: bytes, value: bytes) -> None:
        self._topic, self._offset, self._key, self._value = topic, offset, key, value

    def error(self) -> None:
        return None

    def topic(self) -> str:
        return self._topic

    def partition(self) -> int:
        return 0

    def offset(self) -> int:
        return self._offset

    def key(self) -> bytes:
        return self._key

    def value(self) -> bytes:
        return self._value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", choices=("small", "full"), default="full")
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--poll", type=int, default=1000, help="messages per poll of one partition")
    parser.add_argument("--epoch-events", type=int, default=50_000, help="events between snapshots")
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--python-gc", action="store_true", help="keep Python's GC thresholds, not the flow's")
    parser.add_argument("--no-sync", action="store_true", help="do not fsync state-log records")
    parser.add_argument("--supply-share", type=float, default=Scenario.supply_share)
    parser.add_argument("--dated-transfer-share", type=float, default=Scenario.dated_transfer_share)
    args = parser.parse_args()
    scale: Literal["small", "full"] = args.scale
    topics = topic_names()
    messages: dict[str, list[_Message]] = {name: [] for name in topics.values()}
    scenario = Scenario.at_scale(scale, seed=args.seed, day_events=args.events, supply_share=args.supply_share,
                                 dated_transfer_share=args.dated_transfer_share)
    for batch in LoadGenerator(scenario).batches(args.events):
        for role, key, value in batch:
            held = messages[topics[role]]
            held.append(_Message(topics[role], len(held), key, value))
    polls = [chunk for held in messages.values() for chunk in
             (held[i:i + args.poll] for i in range(0, len(held), args.poll))]
    polls.sort(key=lambda poll: poll[0].offset())  # partitions take turns, as the source polls them
    rules = load_rules(RULES[scale])
    settings = FlowSettings(rules_dir=RULES[scale])  # type: ignore[call-arg]
    decoder, active, registry = Decoder(settings), ActiveRules(rules), Registry("bench")
    log_dir = tempfile.TemporaryDirectory(prefix="bench-stages-")
    state_log = StateLog(Path(log_dir.name), sync=not args.no_sync)
    logged: dict[str, tuple[int, int]] = {}  # shard → (generation, length) at its last snapshot
    snapshot_wall = 0.0
    shards: dict[str, ShardLogic] = {}
    throttles: dict[str, ThrottleLogic] = {}
    spent = dict.fromkeys(("decode", "apply", "throttle", "sink arguments", "snapshot"), 0.0)
    touched: set[str] = set()
    since_snapshot = snapshot_bytes = epochs = 0
    gc.collect()
    if not args.python_gc:
        tune_gc()
    for poll in polls:
        started = time.process_time()
        decoded = decoder.decode_batch(poll)  # type: ignore[arg-type]
        decoded_at = time.process_time()
        applied = []
        for shard, batch in decoded.shards.items():
            logic = shards.get(shard)
            if logic is None:
                logic = shards[shard] = ShardLogic(active, None, registry, state_log)
            applied.extend(logic.on_batch([batch])[0])
            touched.add(shard)
        applied_at = time.process_time()
        by_channel: dict[str, list[list[ChannelDelta]]] = {}
        for activation in applied:
            for channel, deltas in _deltas_by_channel(activation):
                by_channel.setdefault(channel, []).append(deltas)
        for channel, deltas_in_order in by_channel.items():
            throttle = throttles.get(channel)
            if throttle is None:
                throttle = throttles[channel] = ThrottleLogic(active, 50_000, None, state_log)
            throttle.on_batch(deltas_in_order)
        throttled_at = time.process_time()
        coalesced = coalesce(applied)
        pack_chunk([sku_arguments(write) for write in coalesced.writes.values()])
        if coalesced.incidents:
            incident_arguments(coalesced.incidents)
        sunk_at = time.process_time()
        spent["decode"] += decoded_at - started
        spent["apply"] += applied_at - decoded_at
        spent["throttle"] += throttled_at - applied_at
        spent["sink arguments"] += sunk_at - throttled_at
        since_snapshot += len(poll)
        if since_snapshot >= args.epoch_events:
            started, wall = time.process_time(), time.perf_counter()
            for shard in touched:
                position = shards[shard].snapshot()
                assert position is not None  # noqa: S101
                generation, length = logged.get(shard, (position.generation, 0))
                snapshot_bytes += position.length - (length if generation == position.generation else 0)
                logged[shard] = (position.generation, position.length)
            for throttle in throttles.values():
                throttle.snapshot()
            spent["snapshot"] += time.process_time() - started
            snapshot_wall += time.perf_counter() - wall
            touched.clear()
            since_snapshot = 0
            epochs += 1
    total = sum(len(p) for p in polls)
    rows = [[stage, seconds * 1e6 / total] for stage, seconds in spent.items()]
    rows.append(["all", sum(spent.values()) * 1e6 / total])
    positions = sum(len(logic.state.positions) for shard in shards.values() for logic in shard.skus.values()
                    if logic.state is not None)
    result = {"gc_thresholds": gc.get_threshold(), "scale": scale, "events": total, "poll": args.poll,
              "epoch_events": args.epoch_events, "snapshot_bytes_per_epoch": snapshot_bytes / max(1, epochs),
              "positions": positions, "cpu_us_per_event": {stage: us for stage, us in rows},
              "snapshot_wall_us_per_event": snapshot_wall * 1e6 / total, "sync": not args.no_sync,
              "supply_share": args.supply_share, "dated_transfer_share": args.dated_transfer_share}
    report.save("flow_stages", result, ["stage", "µs CPU per event"], rows)
    print(f"{SHARDS} shards, {positions:,} positions, state logs grow {snapshot_bytes / max(1, epochs) / 1e6:.2f} MB "
          f"per epoch of {args.epoch_events:,} events; snapshots take {snapshot_wall * 1e6 / total:.1f} µs wall "
          f"per event ({'fsynced' if not args.no_sync else 'no fsync'})")
    log_dir.cleanup()


if __name__ == "__main__":
    main()
