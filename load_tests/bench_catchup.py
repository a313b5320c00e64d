"""Catch-up: how fast the flow consumes a backlog, and how it recovers from a SIGKILL in the middle of one.

The backlog (default 5,000,000 events) comes from the load generator at ``--scale full``
(300 stores, 3 DCs, 50,000 SKUs, rules ``load_tests/rules_full``) via
``load_tests.produce_backlog``; as in bench_flow the backlog is one simulated day, here
starting at midnight UTC a week ago: reservations with an expiry have expired when they
arrive (they never count), so nothing depends on the engine's clock and two runs over
the same backlog must end with identical numbers. After the backlog, one marker event goes to
every partition of every inbound topic (explicit partition, a SKU of its own): the backlog
is fully handled when every marker's SKU hash exists in Redis (and ``{prefix}:stats`` has
stopped moving).

- Run A: ``avail flow`` (one worker, recovery on, default 1 s snapshots) from an empty
  recovery store; ``{prefix}:stats`` is sampled every 0.1 s (events handled vs time).
- Run B: the same, with its own Redis prefix and recovery store, SIGKILLed once it has
  handled ``--kill-at`` (50 %) of the backlog (and run at least 8 s, so a snapshot
  exists) and restarted at once on the same store. Timed from the restart: the new
  process's first heartbeat, the first write of applied events (``{prefix}:progress``
  newer than the restart), and the last marker.
- Exactness: every SKU hash of run B equals run A's (all fields but the write version
  ``v``: every node's numbers, every channel, rules version; ``as_of`` counted apart),
  and every position's on_hand equals the generator's own book.

``python -m load_tests.bench_catchup [--events 5000000] [--kill-at 0.5] [--partitions 2] [--seed 2026]``
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from confluent_kafka import Producer

from atp.events import Topic
from load_tests import report
from load_tests.generator import LoadGenerator, Scenario
from load_tests.harness import RULES, Flow, Servers, local_servers, progress_us, sku_numbers, wait_for
from load_tests.produce_backlog import produce_backlog, topic_names
from projection import Keys

MIN_KILL_S = 8.0  # never kill before a first snapshot could have been taken
MARKERS = {
    Topic.POS_SALES: b'"type":"sale","node":"dc-east","qty":1',
    Topic.ECOM_RESERVATIONS: b'"type":"reserve","node":"dc-east","reservation_id":"R-%s","channel":"web","qty":1',
    Topic.WMS_PICKS: b'"type":"pick","node":"dc-east","qty":1',
    Topic.INVENTORY_TRANSFERS: b'"type":"transfer_shipped","transfer_id":"T-%s","from_node":"dc-east",'
                               b'"to_node":"dc-west","qty":1',
    Topic.RETURNS: b'"type":"return","node":"dc-east","qty":1,"disposition":"restock"',
    Topic.ERP_INVENTORY: b'"type":"receipt","node":"dc-east","qty":1',
    Topic.ERP_SUPPLY: b'"type":"supply_expected","supply_id":"S-%s","node":"dc-east","qty":1,'
                      b'"expected_at":"2030-01-01T00:00:00Z"',
}


def produce_markers(bootstrap: str, topics: dict[str, str], partitions: int, at: str) -> list[str]:
    """One event at the end of every partition of every inbound topic; returns their SKUs."""
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5})
    skus = []
    for role, body in MARKERS.items():
        for partition in range(partitions):
            sku = f"MARK-{role.value}-{partition}"
            fields = body.replace(b"%s", sku.encode())
            value = b'{"event_id":"%s",%s,"sku":"%s","occurred_at":"%s"}' % (sku.encode(), fields, sku.encode(),
                                                                             at.encode())
            producer.produce(topics[role.value], value, sku.encode(), partition=partition)
            skus.append(sku)
    if producer.flush(30):
        raise RuntimeError("markers undelivered")
    return skus


class Run:
    """One flow over the backlog, sampling ``{prefix}:stats``."""

    def __init__(self, servers: Servers, prefix: str, topics: dict[str, str], markers: list[str]) -> None:
        self.servers, self.prefix, self.markers = servers, prefix, markers
        self.flow = Flow(servers, prefix, topics, RULES["full"], recovery=servers.work / f"recovery-{prefix}")
        self.origin = 0.0
        self.samples: list[tuple[float, int]] = []  # (s since the first start, events handled)

    def sample(self) -> int:
        done = self.flow.handled()
        self.samples.append((time.monotonic() - self.origin, done))
        return done

    def finished(self) -> bool:
        self.sample()
        keys = Keys(self.prefix)
        pipe = self.servers.client.pipeline(transaction=False)
        for sku in self.markers:
            pipe.exists(keys.sku(sku))
        return all(pipe.execute())

    def until(self, check: Any, what: str, timeout: float = 7200) -> float:
        """Samples every 0.1 s until ``check()``; returns seconds since the first start."""
        return wait_for(check, timeout, what, self.flow, every=0.1) - self.origin

    def settle(self) -> None:
        """Until the counters have not moved for 2 s (the last writes are in)."""
        last, since = self.sample(), time.monotonic()
        while time.monotonic() - since < 2.0:  # noqa: PLR2004
            time.sleep(0.1)
            if (now := self.sample()) != last:
                last, since = now, time.monotonic()


def run_plain(run: Run, events: int) -> dict[str, float]:
    run.origin = time.monotonic()
    run.flow.start()
    try:
        applying = run.until(lambda: run.sample() > 0, "first events handled")
        done = run.until(run.finished, "every marker written")
        run.settle()
    finally:
        run.flow.stop()
    return {"first_handled_s": applying, "done_s": done, "events_per_s": events / done,
            "events_per_s_after_start": events / (done - applying), "handled_counter": run.samples[-1][1]}


def run_killed(run: Run, events: int, kill_at: float) -> dict[str, float]:
    run.origin = time.monotonic()
    run.flow.start()
    try:
        run.until(lambda: run.sample() >= kill_at * events and time.monotonic() - run.origin > MIN_KILL_S,
                  f"{kill_at:.0%} handled")
        run.flow.kill()
        killed = time.monotonic() - run.origin
        at_kill = run.sample()
        restart_us = time.time_ns() // 1000
        run.flow.start()
        restarted = run.flow.started - run.origin
        up = run.flow.wait_up() - run.origin
        applying = run.until(lambda: progress_us(run.servers.client, run.prefix) > restart_us and run.sample() > 0,
                             "applying after the restart")
        done = run.until(run.finished, "every marker written after the restart")
        run.settle()
    finally:
        run.flow.stop()
    return {"killed_at_s": killed, "handled_at_kill": at_kill, "restart_s": restarted,
            "restart_to_heartbeat_s": up - restarted, "restart_to_applying_s": applying - restarted,
            "restart_to_done_s": done - restarted, "done_s": done, "handled_counter": run.samples[-1][1]}


def exactness(servers: Servers, a: str, b: str, generator: LoadGenerator) -> dict[str, Any]:
    """SKUs whose hashes differ between runs A and B; positions whose on_hand differs from the generator's book."""
    skus = sorted(s.decode() for s in servers.client.zrange(Keys(a).skus, 0, -1))  # type: ignore[union-attr]
    first, second = sku_numbers(servers.client, a, skus), sku_numbers(servers.client, b, skus)
    differ = [s for s in skus if first[s] != second[s]]
    numbers = [s for s in differ if {k: v for k, v in first[s].items() if k != b"a"}
               != {k: v for k, v in second[s].items() if k != b"a"}]
    examples = [{"sku": s, "a": {k.decode(): v.decode() for k, v in first[s].items() if second[s].get(k) != v},
                 "b": {k.decode(): v.decode() for k, v in second[s].items() if first[s].get(k) != v}}
                for s in (numbers or differ)[:5]]
    extra = servers.client.zcard(Keys(b).skus) - len(skus)
    positions = off_book = 0
    for sku in skus:
        if sku.startswith("MARK-"):
            continue
        for name, value in first[sku].items():
            if name.startswith(b"n:"):
                positions += 1
                off_book += int(value.split(b",")[0]) != generator.on_hand(sku, name[2:].decode())
    return {"skus": len(skus), "numbers_differing": len(numbers), "as_of_differing": len(differ) - len(numbers),
            "skus_only_in_b": int(extra),
            "positions": positions, "on_hand_off_book": off_book, "examples": examples}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=5_000_000)
    parser.add_argument("--kill-at", type=float, default=0.5, help="share of the backlog handled before SIGKILL")
    parser.add_argument("--partitions", type=int, default=2, help="partitions per inbound topic")
    parser.add_argument("--seed", type=int, default=2026)
    args = parser.parse_args()
    midnight = (datetime.now(UTC) - timedelta(days=7)).replace(hour=0, minute=0, second=0, microsecond=0)
    start = midnight.isoformat().replace("+00:00", "Z")
    scenario = replace(Scenario.at_scale("full", seed=args.seed, day_events=args.events), start=start)
    with local_servers("bench-catchup-") as servers:
        began = time.monotonic()
        topics = topic_names("cu.")
        generator = LoadGenerator(scenario)  # its book of on_hand is the reference; whole batches only, so
        events = 0                           # that the book holds exactly the events produced
        for batch in generator.batches():
            events += len(batch)
            if events >= args.events:
                break
        produced = produce_backlog(servers.bootstrap, scenario, events, topic_prefix="cu.",
                                   partitions=args.partitions)
        if produced.failed:
            raise RuntimeError(f"{produced.failed} messages failed to produce")
        markers = produce_markers(servers.bootstrap, topics, args.partitions, start)
        total = events + len(markers)
        print(f"backlog: {produced.events:,} events + {len(markers)} markers in {time.monotonic() - began:.0f} s")
        a, b = Run(servers, "cuA", topics, markers), Run(servers, "cuB", topics, markers)
        plain = run_plain(a, total)
        print(f"run A: {plain['done_s']:.1f} s, {plain['events_per_s']:,.0f} events/s")
        killed = run_killed(b, total, args.kill_at)
        print(f"run B: killed at {killed['killed_at_s']:.1f} s, done {killed['restart_to_done_s']:.1f} s after the"
              f" restart")
        exact = exactness(servers, "cuA", "cuB", generator)
        for example in exact["examples"]:
            print(f"differs: {example}")
    rows: list[list[Any]] = [
        ["backlog (events incl. markers)", total], ["A: seconds to handle all", plain["done_s"]],
        ["A: events/s (from start)", plain["events_per_s"]],
        ["A: events/s (from first event handled)", plain["events_per_s_after_start"]],
        ["B: SIGKILL at (s / events handled)", f"{killed['killed_at_s']:.1f} / {int(killed['handled_at_kill']):,}"],
        ["B: restart → heartbeat (s)", killed["restart_to_heartbeat_s"]],
        ["B: restart → applying again (s)", killed["restart_to_applying_s"]],
        ["B: restart → backlog handled (s)", killed["restart_to_done_s"]],
        ["B: total seconds incl. crash", killed["done_s"]], ["B − A (s)", killed["done_s"] - plain["done_s"]],
        ["events counted twice (replayed)", int(killed["handled_counter"] - plain["handled_counter"])],
        ["SKUs whose numbers differ, B vs A", f"{exact['numbers_differing']} of {exact['skus']:,}"
                                               f" (+{exact['skus_only_in_b']} only in B)"],
        ["SKUs with only as_of (a) differing, B vs A", f"{exact['as_of_differing']} of {exact['skus']:,}"],
        ["positions with on_hand off the generator's book", f"{exact['on_hand_off_book']} of {exact['positions']:,}"],
    ]
    report.save("catchup", {"events": events, "markers": len(markers), "partitions": args.partitions,
                            "seed": args.seed, "scenario_start": start, "kill_at": args.kill_at, "run_a": plain,
                            "run_b": killed, "exactness": exact, "samples_a": a.samples, "samples_b": b.samples},
                ["measure", "value"], rows)
    report.lines("catchup", f"Catch-up of {total:,} events (one worker)",
                 {"A: no crash": ([t for t, _ in a.samples], [n for _, n in a.samples]),
                  f"B: SIGKILL at {args.kill_at:.0%}, restart": ([t for t, _ in b.samples], [n for _, n in b.samples]),
                  "B: the SIGKILL": ([killed["killed_at_s"]] * 2, [0, total])},
                 "seconds since start", "events handled ({prefix}:stats)")


if __name__ == "__main__":
    main()
