"""Feeds the demo retailer's stream (``demo_retailer``) to Kafka at a steady rate."""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import signal
import sys
import threading
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

from tqdm import tqdm

from atp.events import Topic
from demo_retailer.retailer import DemoRetailer

log = logging.getLogger(__name__)


def run_demo(bootstrap: str, topics: Mapping[str, str] | None = None, rate: float = 500.0,
             stop: threading.Event | None = None, seed: int = 42, *, seconds: float | None = None,
             max_events: int | None = None, poison_ratio: float = 0.002, retailer: DemoRetailer | None = None,
             nodes: Sequence[tuple[str, str]] | None = None, producer_config: Mapping[str, Any] | None = None) -> int:
    """Produces the demo retailer's stream to Kafka until ``stop``, ``seconds`` or ``max_events``.

    The opening stock counts go out as one burst (an ERP's nightly load); the steady
    mix then follows at ``rate`` events per second (a token bucket with 0.1 s of burst).

    Args:
        bootstrap: Kafka bootstrap servers.
        topics: topic role (``atp.events.Topic`` value) → configured topic name;
            roles left out keep their default name.
        rate: steady-state events per second.
        stop: set it to stop producing (e.g. from another thread).
        seed: the generator's seed.
        seconds: stop after this long, the opening burst included.
        max_events: stop after this many messages (opening counts included).
        poison_ratio: share of deliberately invalid messages (0 disables), so the
            dead-letter path shows.
        retailer: the generator to use (then ``seed``, ``poison_ratio`` and ``nodes``
            are its own); default a new ``DemoRetailer``.
        nodes: ``(node_id, node_type)`` pairs, e.g. from the rules.
        producer_config: extra librdkafka settings.

    Returns:
        How many messages the broker acknowledged.
    """
    from confluent_kafka import KafkaError, Producer

    if rate <= 0:
        raise ValueError(f"rate must be positive, got {rate}")
    names = {role.value: role.value for role in Topic} | dict(topics or {})
    retailer = retailer or DemoRetailer(nodes, seed=seed, poison_ratio=poison_ratio)
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5, "client.id": "avail-demo",
                         **(producer_config or {})})
    outcome = Counter[str]()

    def delivered(error: KafkaError | None, _message: object) -> None:
        outcome["failed" if error else "delivered"] += 1
        if error and outcome["failed"] == 1:
            log.warning("demo: delivery failed: %s", error)

    stop = stop or threading.Event()
    started = time.monotonic()
    deadline = started + seconds if seconds is not None else float("inf")
    burst = retailer.initial_remaining
    interval = 1.0 / rate
    due = started
    sent = 0
    # The opening counts are the long part of a start; a bar shows them on a terminal only.
    size = shutil.get_terminal_size()
    opening = tqdm(desc="demo: opening stock counts", unit="count", total=burst, disable=None, file=sys.stderr,
                   leave=False, ncols=size.columns, nrows=size.lines)
    while not stop.is_set() and (max_events is None or sent < max_events):
        now = time.monotonic()
        if now >= deadline:
            break
        if not retailer.initial_remaining:
            if now < due:
                producer.poll(0)
                stop.wait(min(due - now, 0.01))
                continue
            due = max(due, now - 0.1) + interval  # after a stall, catch up at most 0.1 s worth
        role, key, value = retailer.next_record()
        while True:
            try:
                producer.produce(names[role], value, key, on_delivery=delivered)
                break
            except BufferError:  # the local queue is full: let the broker catch up
                producer.poll(0.05)
        sent += 1
        if sent % 500 == 0:
            producer.poll(0)
            if sent <= burst:
                opening.update(500)
        if sent == burst:
            opening.close()
    opening.close()
    left = producer.flush(30)
    elapsed = time.monotonic() - started
    steady = sent - min(sent, burst)
    log.info("demo: sent %d messages (%d opening counts, %d at %.0f/s) in %.1f s; %d acknowledged, %d failed, "
             "%d unflushed", sent, sent - steady, steady, rate, elapsed, outcome["delivered"], outcome["failed"], left)
    return outcome["delivered"]


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m demo_retailer.feed``: produce the demo stream until Ctrl-C or ``--seconds``."""
    parser = argparse.ArgumentParser(prog="python -m demo_retailer.feed",
                                     description="Feed a synthetic retailer's events.")
    parser.add_argument("--bootstrap", default=os.environ.get("AVAIL_KAFKA_BOOTSTRAP", "localhost:9092"),
                        help="Kafka bootstrap servers (default AVAIL_KAFKA_BOOTSTRAP or localhost:9092)")
    parser.add_argument("--rate", type=float, default=500.0, help="steady events per second (default 500)")
    parser.add_argument("--seconds", type=float, default=None, help="stop after this long (default: never)")
    parser.add_argument("--seed", type=int, default=42, help="random seed (default 42)")
    parser.add_argument("--skus", type=int, default=5_000, help="catalog size (default 5000)")
    parser.add_argument("--poison", type=float, default=0.002, help="share of invalid messages (default 0.002)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # Same variables as the flow's settings (AVAIL_TOPIC_POS_SALES, ...), so both agree.
    topics = {role.value: os.environ.get(f"AVAIL_TOPIC_{role.name}", role.value) for role in Topic}
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    retailer = DemoRetailer(skus=args.skus, seed=args.seed, poison_ratio=args.poison)
    log.info("demo: %d SKUs, %d positions, run id %s → %s", len(retailer.catalog.skus), retailer.initial_remaining,
             retailer.run_id, args.bootstrap)
    run_demo(args.bootstrap, topics, args.rate, stop, seconds=args.seconds, retailer=retailer)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
