"""Pre-produce a backlog of generated retail events (load_tests/generator.py) to the seven inbound topics.

``python -m load_tests.produce_backlog --events 1000000 --bootstrap 127.0.0.1:9092 [--scale small|full]
[--seed S] [--topic-prefix P] [--partitions 4] [--day-events D] [--start now|RFC3339] [--run-id ID]
[--supply-share 0.01] [--dated-transfer-share 0.2]``

Topics are ``<prefix><default name>`` (``pos.sales``, ...), created first with
``--partitions`` partitions each (existing ones are kept), plus ``<prefix>availability.dlq``
with one. Keys are the SKU. By default the backlog is one simulated day
(``--day-events`` = ``--events``) starting at the scenario's fixed midnight, so two
runs produce the same bytes; ``--start now`` makes the day start now, so that
reservations expire by the engine's clock while it runs. Event ids repeat between
runs with the same ``--run-id`` (default from the seed): the engine ignores a
repeated id, so use a fresh broker or another run id. ``--supply-share`` (default 1 %)
is the share of ``erp.supply`` events (purchase-order lines, revisions, cancels; receipts
name the lines), ``--dated-transfer-share`` (default 20 %) that of shipments with an
``expected_at``; both at 0 give the backlog of before future supply.

Benchmarks import ``produce_backlog(...)`` and get a ``Produced`` back.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Literal

from confluent_kafka import KafkaError, Message, Producer
from tqdm import tqdm

from atp.events import Topic
from load_tests.generator import LoadGenerator, Scenario
from local_servers import create_topics

PRODUCER_CONFIG = {
    "linger.ms": 50,
    "batch.size": 1_000_000,
    "batch.num.messages": 10_000,
    "compression.type": "none",  # the broker is local: compression would cost CPU for nothing
    "queue.buffering.max.messages": 1_000_000,
    "queue.buffering.max.kbytes": 1_048_576,
    "acks": 1,
    "enable.idempotence": False,
    "delivery.report.only.error": True,  # a callback per failure, none per success
}


@dataclass(frozen=True)
class Produced:
    events: int
    opening_counts: int
    failed: int
    seconds: float  # from the first draw to the last acknowledgement
    generate_seconds: float  # CPU time spent generating, part of ``seconds``

    @property
    def events_per_s(self) -> float:
        return self.events / self.seconds if self.seconds else 0.0


def topic_names(prefix: str = "") -> dict[str, str]:
    """Topic role (an ``atp.events.Topic`` value) → Kafka topic name."""
    return {role.value: f"{prefix}{role.value}" for role in Topic}


def produce_backlog(bootstrap: str, scenario: Scenario, events: int, *, topic_prefix: str = "",
                    partitions: int = 4) -> Produced:
    """Creates the topics and produces ``events`` messages of ``scenario``; returns when all are acknowledged.

    Raises:
        RuntimeError: when the producer cannot deliver everything within 120 s of the last send.
    """
    topics = topic_names(topic_prefix)
    create_topics(bootstrap, {**dict.fromkeys(topics.values(), partitions), f"{topic_prefix}availability.dlq": 1})
    failures: list[KafkaError] = []

    def on_delivery(error: KafkaError | None, _message: Message) -> None:
        if error is not None:
            failures.append(error)

    producer = Producer({"bootstrap.servers": bootstrap, **PRODUCER_CONFIG, "on_delivery": on_delivery})
    send = producer.produce
    started = time.perf_counter()
    generating = 0.0
    made = openings = 0
    batches = LoadGenerator(scenario).batches(events)
    size = shutil.get_terminal_size()
    bar = tqdm(desc="producing the backlog", unit="event", total=events, disable=None, file=sys.stderr, leave=False,
               ncols=size.columns, nrows=size.lines)
    while True:
        cpu = time.process_time()
        batch = next(batches, None)
        generating += time.process_time() - cpu
        if batch is None:
            break
        for role, key, value in batch:
            while True:
                try:
                    send(topics[role], value, key)
                    break
                except BufferError:  # the local queue is full: let the broker catch up
                    producer.poll(0.05)
        producer.poll(0)
        made += len(batch)
        openings += batch.openings
        bar.update(len(batch))
    bar.close()
    left = producer.flush(120)
    if left:
        raise RuntimeError(f"{left} messages still undelivered after 120 s")
    return Produced(made, openings, len(failures), time.perf_counter() - started, generating)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, required=True)
    parser.add_argument("--scale", choices=("small", "full"), default="full")
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--bootstrap", required=True, help="HOST:PORT of the broker")
    parser.add_argument("--topic-prefix", default="")
    parser.add_argument("--partitions", type=int, default=4, help="partitions per inbound topic")
    parser.add_argument("--day-events", type=int, help="events per simulated day (default: --events)")
    parser.add_argument("--start", help="midnight of the first simulated day: RFC 3339, or 'now'")
    parser.add_argument("--run-id", help="event id prefix (default: lg<seed>)")
    parser.add_argument("--supply-share", type=float, default=Scenario.supply_share,
                        help="share of supply_expected and supply_cancelled events (erp.supply)")
    parser.add_argument("--dated-transfer-share", type=float, default=Scenario.dated_transfer_share,
                        help="share of transfer_shipped events with expected_at")
    args = parser.parse_args()
    scale: Literal["small", "full"] = args.scale
    try:
        scenario = Scenario.at_scale(scale, seed=args.seed, day_events=args.day_events or args.events,
                                     supply_share=args.supply_share, dated_transfer_share=args.dated_transfer_share)
    except ValueError as exc:
        parser.error(str(exc))
    now = datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    try:
        if args.start:
            scenario = replace(scenario, start=now if args.start == "now" else args.start)
        if args.run_id:
            scenario = replace(scenario, run_id=args.run_id)
    except ValueError as exc:
        parser.error(str(exc))
    result = produce_backlog(args.bootstrap, scenario, args.events, topic_prefix=args.topic_prefix,
                             partitions=args.partitions)
    print(f"{result.events:,} events ({result.opening_counts:,} opening counts) produced in {result.seconds:.1f} s: "
          f"{result.events_per_s:,.0f} events/s; generation {result.generate_seconds:.1f} s CPU"
          f" ({result.events / max(result.generate_seconds, 1e-9):,.0f} events/s); {result.failed} failed")
    if result.failed:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
