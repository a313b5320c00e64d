"""Poison input at volume on a real flow: thousands of messages, valid and not, on all seven topics.

The dead-letter topic must hold exactly the invalid ones, each with its original bytes and
key, its source topic and the code the reference model (``test_fuzz_decoder.expected``)
allows; the rejects-by-code counters must equal those counts; and the numbers served
must be the reference model's (``tests/support/reference.py``) for the valid events alone.
Set ``AVAIL_TEST_SEED`` to replay a run.
"""

from __future__ import annotations

import base64
import hashlib
import os
import random
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest

from atp.encoding import encode_event
from atp.events import TOPIC_TYPES, TYPE_NAMES, Event, Receipt, Topic
from atp.rejections import RejectCode
from dataflows.messages import DEAD_LETTER_VALUE_CAP
from rulebook import load_rules
from tests.reliability.test_fuzz_decoder import (
    BAD_CODES,
    BAD_STAMPS,
    BAD_TOKENS,
    NEVER_UTF8,
    Outcome,
    Pairs,
    expected,
    render,
)
from tests.reliability.test_store_faults import _observed_or_empty
from tests.support.engine import ADMIN_KEY, Engine, flow_log, wait_for
from tests.support.events import TOPIC_OF
from tests.support.reference import expected as reference
from tests.support.streams import now_us, random_stream

pytestmark = [pytest.mark.integration, pytest.mark.reliability]

VALID, INVALID = 6000, 4000
Message = tuple[Topic, bytes | None, bytes | None]  # role, key, value


def pairs_of(event: Event) -> Pairs:
    return list(orjson.loads(encode_event(event)).items())


def _drop(rng: random.Random, pairs: Pairs) -> Pairs:
    del pairs[rng.randrange(len(pairs))]
    return pairs


def _set(field: str, *values: Any) -> Callable[[random.Random, Pairs], Pairs]:
    def change(rng: random.Random, pairs: Pairs) -> Pairs:
        return [(k, rng.choice(values) if k == field else v) for k, v in pairs]
    return change


def _token(rng: random.Random, pairs: Pairs) -> Pairs:
    at = rng.randrange(len(pairs))
    pairs[at] = (pairs[at][0], rng.choice(BAD_TOKENS))
    return pairs


def _duplicate_type(rng: random.Random, pairs: Pairs) -> Pairs:
    return [*pairs, ("type", rng.choice(sorted({n for names in TOPIC_TYPES.values() for n in names})))]


STRUCTURAL = [
    _drop, _token, _duplicate_type,
    _set("qty", 0, -1, 1_000_001, 2.5, "3", True, None, 2**64),
    _set("on_hand", -1, 1_000_000_001, 1.0),
    _set("sku", *BAD_CODES), _set("node", *BAD_CODES), _set("from_node", *BAD_CODES), _set("channel", *BAD_CODES),
    _set("occurred_at", *BAD_STAMPS), _set("as_of", *BAD_STAMPS), _set("expires_at", *BAD_STAMPS, 17),
    _set("event_id", "", "x" * 129, 42), _set("reservation_id", "", 7), _set("disposition", "lost", "Restock"),
    _set("type", "Sale", "teleport", "", 3, None),
]


def _whole(rng: random.Random, raw: bytes) -> tuple[bytes | None, Outcome]:
    """Breaks the document itself; returns the bytes and the code they must get."""
    not_json = frozenset({(RejectCode.NOT_JSON, None)})
    how = rng.randrange(7)
    if how == 0:
        return None, not_json  # a tombstone
    if how == 1:
        return b"\xef\xbb\xbf" + raw, not_json
    if how == 2:
        return raw[: rng.randrange(1, len(raw))], not_json
    if how == 3:
        at = rng.randrange(len(raw))
        return raw[:at] + rng.choice(NEVER_UTF8) + raw[at:], frozenset({(RejectCode.NOT_UTF8, None)})
    if how == 4:
        return raw + b" " * rng.randrange(65_536, 70_000), frozenset({(RejectCode.TOO_LARGE, None)})
    if how == 5:
        return b"[" + raw + b"]", frozenset({(RejectCode.NOT_OBJECT, None)})
    garbage = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 60)))
    try:
        garbage.decode()
    except UnicodeDecodeError:
        return garbage, frozenset({(RejectCode.NOT_UTF8, None)})
    return b"\x01" + garbage, not_json  # a control character never starts JSON


def poison(rng: random.Random, template: Event) -> tuple[Message, Outcome]:
    """One invalid message built from a valid event, and the faults of which it must report one."""
    role = TOPIC_OF[type(template)]
    key = rng.choice([template.sku.encode(), None, rng.randbytes(rng.randrange(1, 12)), b""])
    roll = rng.random()
    if roll < 0.15:  # a valid event on a topic that does not take its type
        role = rng.choice([r for r in Topic if TYPE_NAMES[type(template)] not in TOPIC_TYPES[r]])
        return (role, key, encode_event(template)), frozenset({(RejectCode.WRONG_TOPIC, "type")})
    if roll < 0.45:
        value, want = _whole(rng, encode_event(template))
        return (role, key, value), want
    while True:
        pairs = rng.choice(STRUCTURAL)(rng, pairs_of(template))
        want = expected(pairs, TOPIC_TYPES[role])
        if isinstance(want, frozenset):  # a change that left the event valid is tried again
            return (role, key, render(pairs)), want


def corpus(seed: int) -> tuple[list[Event], list[tuple[Message, Outcome]], list[Message]]:
    """Valid events, the invalid messages with their outcomes, and everything in produce order."""
    rng = random.Random(seed)
    skus = [f"VOL-{seed}-{i:02d}" for i in range(40)]
    valid = random_stream(seed, skus, VALID)
    bad = [poison(rng, rng.choice(valid)) for _ in range(INVALID)]
    messages: list[Message] = [(TOPIC_OF[type(e)], e.sku.encode(), encode_event(e)) for e in valid]
    for message, _ in bad:
        messages.insert(rng.randrange(len(messages) + 1), message)
    return valid, bad, messages


def test_thousands_of_mixed_messages_dead_letter_exactly_the_invalid_ones(engine: Engine) -> None:
    seed = int(os.environ.get("AVAIL_TEST_SEED", random.randrange(1_000_000)))
    valid, bad, messages = corpus(seed)
    started = time.monotonic()
    for role, key, value in messages:
        engine.produce_raw(role, value, key)
    engine.producer.flush(30)
    assert {role for (role, _, _), _ in bad} == set(Topic), "every topic gets poison"

    letters = [orjson.loads(v) for v in engine.dead_letters(at_least=len(bad), timeout=30)]
    assert len(letters) == len(bad), f"seed {seed}: {len(letters)} dead letters for {len(bad)} invalid\n" + flow_log(
        engine)
    want: dict[tuple[str, bytes | None, bytes | None], Outcome] = {}
    for (role, key, value), outcome in bad:
        want[(engine.topics[role], key, value)] = outcome
    got = Counter((letter["topic"], _b64(letter["key"]), _b64(letter["value"])) for letter in letters)
    assert got == Counter((engine.topics[role], key, value) for (role, key, value), _ in bad), f"seed {seed}"
    for letter in letters:
        outcome = want[(letter["topic"], _b64(letter["key"]), _b64(letter["value"]))]
        assert isinstance(outcome, frozenset) and (RejectCode(letter["error"]), letter["field"]) in outcome, (
            f"seed {seed}: {letter} not in {sorted(outcome, key=str)}")
        assert letter["detail"] and isinstance(letter["partition"], int) and isinstance(letter["offset"], int)
    assert len({(x["topic"], x["partition"], x["offset"]) for x in letters}) == len(letters)

    by_code = Counter(letter["error"] for letter in letters)
    stats = wait_for(engine.stats, lambda s: _rejected(s) == by_code, timeout=15)
    assert _rejected(stats) == by_code, f"seed {seed}: stats {_rejected(stats)} != dead letters {by_code}"
    metrics = engine.get("/metrics", key=ADMIN_KEY).text
    for code, count in by_code.items():
        assert f'avail_flow_events_rejected_total{{code="{code}"}} {float(count)}' in metrics

    skus = sorted({e.sku for e in valid})
    rules = load_rules(engine.rules_dir)
    events: dict[str, list[Event]] = {sku: [] for sku in skus}
    for event in valid:
        events[event.sku].append(event)
    numbers = {sku: reference(sku, events[sku], now=now_us(), rules=rules) for sku in skus}
    seen = wait_for(lambda: _observed_or_empty(engine, skus), lambda s: s == numbers, timeout=30, every=0.5)
    wrong = [sku for sku in skus if seen.get(sku) != numbers[sku]]
    assert not wrong, f"seed {seed}: {wrong[0]}: {seen.get(wrong[0])} != {numbers[wrong[0]]}\n" + flow_log(engine)
    assert engine.stats().get("applied", 0) == len({e.event_id for e in valid})
    extra = engine.dead_letters(at_least=len(bad) + 1, timeout=2)
    assert len(extra) == len(bad), f"seed {seed}: {len(extra) - len(bad)} more dead letters came later"
    print(f"seed {seed}: {len(valid)} valid + {len(bad)} invalid in {time.monotonic() - started:.1f} s; "
          f"dead letters by code: {dict(by_code.most_common())}")


def _b64(text: str | None) -> bytes | None:
    return None if text is None else base64.b64decode(text)


def _rejected(stats: dict[str, int]) -> Counter[str]:
    return Counter({k.removeprefix("rejected:"): v for k, v in stats.items() if k.startswith("rejected:")})


def test_a_value_near_the_brokers_size_limit_is_dead_lettered_and_the_flow_goes_on(
    kafka_bootstrap: str, redis_url: str, tmp_path: Path,
) -> None:
    engine = Engine(kafka_bootstrap, redis_url, tmp_path / "engine")
    try:
        engine.start_flow()
        big = b'{"type":"sale","note":"' + b"x" * 900_000 + b'"}'
        engine.produce_raw(Topic.POS_SALES, big, b"big")
        after = Receipt("after-big", "BIG-1", "dc-east", 5, now_us() - 60_000_000)
        engine.produce([after])
        applied = wait_for(lambda: engine.sku_hash("BIG-1") if engine.flows[0].poll() is None else {"dead": "1"},
                           bool, timeout=30)
        time.sleep(2)  # the dead-letter batch is flushed after the write
        assert "dead" not in applied and engine.flows[0].poll() is None, flow_log(engine)
        letters = [orjson.loads(v) for v in engine.dead_letters(at_least=1, timeout=10)]
        assert [letter["error"] for letter in letters] == ["too_large"]
        (letter,) = letters
        assert letter["value_truncated"] is True and letter["value_size"] == len(big)
        assert letter["value_sha256"] == hashlib.sha256(big).hexdigest()
        assert base64.b64decode(letter["value"]) == big[:DEAD_LETTER_VALUE_CAP]
    finally:
        engine.stop()
