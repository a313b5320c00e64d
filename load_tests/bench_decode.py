"""Benchmark: µs per Kafka value for the two decoders of contract section 1.

Run ``python -m load_tests.bench_decode`` (or ``python load_tests/bench_decode.py``)
from the repository root. It builds a seeded corpus (a realistic mix of valid
events of all 12 types plus about 5% invalid values), checks that
``atp.decoding`` (msgspec) and ``load_tests.decode_alternative`` (orjson) give the
same answer for every value (exit 1 if not, so the loser cannot rot silently),
then times each over the corpus and prints the median of the repeats.
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import random
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

if __package__ in (None, ""):  # run as a file: make the repository root importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from atp import decoding  # noqa: E402
from atp.events import TYPE_NAMES, Event  # noqa: E402
from atp.rejections import Rejection  # noqa: E402
from load_tests import decode_alternative  # noqa: E402

Decoder = Callable[[bytes | None], Event | Rejection]
DECODERS: dict[str, Decoder] = {
    "msgspec (atp.decoding)": decoding.decode_event,
    "orjson (decode_alternative)": decode_alternative.decode_event,
}

# Rough shares of a retail event stream: sales and reservations dominate.
TYPE_WEIGHTS = {
    "sale": 34, "sale_void": 2, "reserve": 16, "release": 10, "pick": 12, "transfer_shipped": 2,
    "transfer_received": 2, "transfer_cancelled": 1, "return": 4, "receipt": 5, "adjustment": 3, "snapshot": 9,
}  # fmt: skip
NODES = [f"store-{i:03d}" for i in range(1, 200)] + ["dc-east", "dc-west"]
CHANNELS = ["web", "store_pickup", "amazon"]


def _timestamp(rng: random.Random) -> str:
    day, second = rng.randint(18, 24), rng.randint(0, 86_399)
    base = f"2026-11-{day:02d}T{second // 3600:02d}:{second // 60 % 60:02d}:{second % 60:02d}"
    style = rng.random()
    if style < 0.7:
        return f"{base}.{rng.randint(0, 999):03d}Z"
    if style < 0.9:
        return f"{base}.{rng.randint(0, 999_999):06d}+01:00"
    return f"{base}-05:00"


def _valid(rng: random.Random, type_name: str, n: int) -> dict[str, Any]:
    sku = f"SKU-{rng.randint(1, 50_000):06d}"
    body: dict[str, Any] = {"event_id": f"evt-{n:09d}-{rng.getrandbits(32):08x}", "type": type_name, "sku": sku}
    at = _timestamp(rng)
    if type_name == "snapshot":
        return body | {"node": rng.choice(NODES), "on_hand": rng.randint(0, 500), "as_of": at}
    if type_name.startswith("transfer_"):
        from_node, to_node = rng.sample(NODES, 2)
        body |= {"transfer_id": f"TR-{rng.randint(1, 9999)}", "from_node": from_node, "to_node": to_node}
        return body | {"qty": rng.randint(1, 40), "occurred_at": at}
    if type_name in ("reserve", "release"):
        body |= {"reservation_id": f"ord-{rng.randint(1, 10**7)}-1", "occurred_at": at}
        if type_name == "release":
            return body
        body |= {"channel": rng.choice(CHANNELS), "qty": rng.randint(1, 3), "expires_at": _timestamp(rng)}
        return body | ({"node": rng.choice(NODES)} if rng.random() < 0.5 else {})
    body |= {"node": rng.choice(NODES), "qty": rng.randint(1, 5), "occurred_at": at}
    if type_name == "adjustment":
        body |= {"qty": rng.choice([-1, 1]) * rng.randint(1, 20), "reason": "cycle count correction"}
    elif type_name == "return":
        body["disposition"] = rng.choice(["restock", "restock", "damaged", "inspect"])
    elif type_name == "receipt":
        body["reference"] = f"PO-{rng.randint(1, 10**6)}"
    elif type_name == "pick" and rng.random() < 0.7:
        body["reservation_id"] = f"ord-{rng.randint(1, 10**7)}-1"
    return body | {"producer": "bench", "schema_version": 1}  # extra fields are allowed


def _corrupt(rng: random.Random, body: dict[str, Any]) -> bytes:
    """One realistic fault per value."""
    fault = rng.randrange(14)
    field = "on_hand" if body["type"] == "snapshot" else "qty"
    time_field = "as_of" if body["type"] == "snapshot" else "occurred_at"
    changes: list[dict[str, Any]] = [
        {field: 5.0}, {field: "5"}, {field: None}, {field: -7 if field == "on_hand" else 0}, {"sku": "TV 55"},
        {time_field: "2026-11-23 10:15:00"}, {"type": "stock_count"}, {"event_id": ""}, {"sku": {"id": 1}},
    ]  # fmt: skip
    if fault < len(changes):
        return orjson.dumps(body | changes[fault])
    if fault == 9:
        return orjson.dumps({k: v for k, v in body.items() if k != "sku"})
    if fault == 10:
        return orjson.dumps(body)[:-7]  # truncated
    if fault == 11:
        return orjson.dumps([body])
    if fault == 12:
        return orjson.dumps(body).replace(b'"sku":"', b'"sku":"\xff')
    return b""


def build_corpus(size: int, invalid_share: float, seed: int) -> tuple[list[bytes], list[bytes]]:
    """Seeded (valid, invalid) message values."""
    rng = random.Random(seed)
    names, weights = list(TYPE_WEIGHTS), list(TYPE_WEIGHTS.values())
    valid: list[bytes] = []
    invalid: list[bytes] = []
    for n in range(size):
        body = _valid(rng, rng.choices(names, weights)[0], n)
        if rng.random() < invalid_share:
            invalid.append(_corrupt(rng, body))
        else:
            valid.append(orjson.dumps(body))
    return valid, invalid


def check_agreement(values: list[bytes]) -> list[str]:
    """Values on which the decoders disagree (event, or rejection code and field)."""

    def outcome(result: Event | Rejection) -> object:
        return (result.code, result.field) if isinstance(result, Rejection) else result

    first, *others = DECODERS.values()
    return [
        f"{value[:120]!r}: {[outcome(d(value)) for d in DECODERS.values()]}"
        for value in values
        if any(outcome(other(value)) != outcome(first(value)) for other in others)
    ]


def time_pass(decode: Callable[[Any], object], values: list[Any]) -> float:
    """µs per value for one pass over ``values``."""
    gc.disable()  # as timeit does: collector pauses are not the decoder's cost
    try:
        start = time.perf_counter()
        for value in values:
            decode(value)
        return (time.perf_counter() - start) / len(values) * 1e6
    finally:
        gc.enable()


def measure(corpora: dict[str, list[bytes]], repeats: int) -> dict[tuple[str, str], float]:
    """Median µs per value for each (decoder, corpus); decoders interleave so drift hits both alike."""
    runs: dict[tuple[str, str], list[float]] = {}
    for decode in DECODERS.values():
        time_pass(decode, corpora["mix"][:2000])  # warm-up
    for _ in range(repeats):
        for corpus, values in corpora.items():
            for name, decode in DECODERS.items():
                runs.setdefault((name, corpus), []).append(time_pass(decode, values))
    return {key: statistics.median(times) for key, times in runs.items()}


def print_components(valid: list[bytes], repeats: int) -> None:
    """Where the time goes on valid events: parsers alone and the parts both decoders share."""
    structs = [decoding._DECODER.decode(value) for value in valid]
    stamps = [getattr(s, "occurred_at", None) or getattr(s, "as_of", "") for s in structs]
    parts: dict[str, tuple[Callable[[Any], object], list[Any]]] = {
        "orjson.loads alone (dict)": (orjson.loads, valid),
        "msgspec decode to Struct, validated": (decoding._DECODER.decode, valid),
        "Struct -> atp.events dataclass": (lambda struct: struct.to_event(), structs),
        "parse_timestamp (shared, per call)": (decoding.parse_timestamp, stamps),
    }
    print("\ncomponents on the valid corpus (median µs per item):")
    for label, (step, items) in parts.items():
        print(f"  {label:<38} {statistics.median(time_pass(step, items) for _ in range(repeats)):>6.2f}")


def cpu_model() -> str:
    """The CPU model name where the platform knows it."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.partition(":")[2].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--invalid-share", type=float, default=0.05)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--seed", type=int, default=2026)
    args = parser.parse_args(argv)

    valid, invalid = build_corpus(args.events, args.invalid_share, args.seed)
    mixed = valid + invalid
    random.Random(args.seed).shuffle(mixed)
    print(f"machine: {platform.platform()}, {platform.machine()}, {os.cpu_count()} CPUs ({cpu_model()})")
    print(f"python:  {platform.python_implementation()} {platform.python_version()}")
    print(f"corpus:  {len(valid)} valid ({len(TYPE_NAMES)} types) + {len(invalid)} invalid, seed {args.seed}")
    print(f"         mean value size {sum(map(len, mixed)) / len(mixed):.0f} bytes; median of {args.repeats} repeats")

    disagreements = check_agreement(mixed)
    if disagreements:
        print(f"\nFAIL: the decoders disagree on {len(disagreements)} values, e.g.:", *disagreements[:5], sep="\n  ")
        return 1
    print("agreement: both decoders give the same event or (code, field) on every value\n")

    medians = measure({"valid": valid, "invalid": invalid, "mix": mixed}, args.repeats)
    header = f"{'decoder':<30} {'valid µs':>9} {'invalid µs':>11} {'mix µs':>8} {'events/s (mix)':>15}"
    print(header, "-" * len(header), sep="\n")
    for name in DECODERS:
        valid_us, invalid_us, mix_us = (medians[name, corpus] for corpus in ("valid", "invalid", "mix"))
        print(f"{name:<30} {valid_us:>9.2f} {invalid_us:>11.2f} {mix_us:>8.2f} {1e6 / mix_us:>15,.0f}")
    print_components(valid, args.repeats)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
