"""``avail dlq``: list the dead-letter topic by error code, export it, republish fixed events.

Operator (admin) commands. The broker is the permission boundary: whoever may read the
dead-letter topic and write the inbound topics (the broker's ACLs) may run them; the
API's keys play no part. ``republish`` checks every event with the engine's own decoder
against its topic's types, so nothing the flow would reject again is published.

Decisions:
- "Recent" is the newest ``--limit`` records of the topic (newest by record timestamp,
  across partitions). The broker's high watermark is only used to pick where to start:
  Tansu's lags the log end, so the commands read to the real end and stop once no
  record came for ``--idle`` seconds.
- Export writes JSON lines: ``topic``, ``key`` and ``value`` as text when they are
  UTF-8 (else ``key_base64``/``value_base64``), then ``error``, ``detail``, ``field``,
  ``partition`` and ``offset`` for context. ``republish`` reads ``topic`` and ``value``
  (text, a JSON object, or ``value_base64``) and ignores the rest; blank lines and lines
  starting with ``#`` are skipped.
- Republished events are keyed by their SKU. Lines that fail are refused with their
  line number and reason, the others are published, and the exit code is 1 if any was
  refused. Publishing a line twice is harmless: a repeated ``event_id`` has no effect.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import sys
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from atp.decoding import decode_event
from atp.events import TOPIC_TYPES, TYPE_NAMES, Event, Topic
from atp.rejections import Rejection
from avail.progress import Progress, progress_bar
from avail.reach import BROKER_TIMEOUT_S, Unreachable, kafka_client_config
from engine_settings import FlowSettings

UNREADABLE = "(unreadable)"


class DlqError(Exception):
    """The broker or the topic could not be used; the message says which and why."""


@dataclass(frozen=True, slots=True)
class DeadLetterRecord:
    """One dead letter: where it sits in the dead-letter topic and what it says."""

    dlq_partition: int
    dlq_offset: int
    timestamp_ms: int | None
    error: str
    detail: str
    field: str | None
    topic: str
    partition: int | None
    offset: int | None
    key: bytes | None
    value: bytes | None


def parse_dead_letter(raw: bytes | None, dlq_partition: int, dlq_offset: int,
                      timestamp_ms: int | None = None) -> DeadLetterRecord:
    """Reads one record; one not in the contract's shape is kept as error ``(unreadable)``."""
    try:
        body = orjson.loads(raw or b"")
        if not isinstance(body, dict):
            raise ValueError("not a JSON object")
        key, value = (None if body.get(n) is None else base64.b64decode(body[n], validate=True)
                      for n in ("key", "value"))
        return DeadLetterRecord(dlq_partition, dlq_offset, timestamp_ms, str(body["error"]), str(body["detail"]),
                                body.get("field"), str(body["topic"]), body.get("partition"), body.get("offset"),
                                key, value)
    except (ValueError, KeyError, TypeError, binascii.Error) as exc:
        return DeadLetterRecord(dlq_partition, dlq_offset, timestamp_ms, UNREADABLE,
                                f"not a dead-letter record: {exc}", None, "", None, None, None, raw)


def count_by_code(records: Sequence[DeadLetterRecord]) -> list[tuple[str, int]]:
    """Codes with their counts, most frequent first (ties by name)."""
    return sorted(Counter(r.error for r in records).items(), key=lambda item: (-item[1], item[0]))


def preview(data: bytes | None, width: int = 72) -> str:
    """A one-line printable view: non-printable characters escaped, long values cut."""
    if data is None:
        return "(none)"
    text = data[: width * 4].decode("utf-8", "backslashreplace")
    shown = "".join(c if c.isprintable() else c.encode("unicode_escape").decode() for c in text)
    cut = "…" if len(shown) > width or len(data) > width * 4 else ""
    return f"'{shown[:width]}{cut}' ({len(data)} bytes)"


def _when(timestamp_ms: int | None) -> str:
    if not timestamp_ms:
        return "-"
    return datetime.fromtimestamp(timestamp_ms / 1000, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def list_lines(records: Sequence[DeadLetterRecord], code: str | None, show: int) -> list[str]:
    """The ``list`` report: counts by code over ``records``, then the newest entries (newest last)."""
    lines = ["by code:"] + [f"  {count:>8}  {name}" for name, count in count_by_code(records)]
    chosen = [r for r in records if code is None or r.error == code][-show:] if show > 0 else []
    which = f" with code {code}" if code else ""
    lines.append(f"newest {len(chosen)}{which} (newest last):" if chosen else f"no dead letters{which} to show")
    for r in chosen:
        lines.append(f"  {_when(r.timestamp_ms)}  {r.topic}[{r.partition}]@{r.offset}  {r.error}  {r.detail}")
        lines.append(f"      key {preview(r.key, 40)}  value {preview(r.value)}")
    return lines


def _text_or_base64(name: str, data: bytes | None) -> dict[str, str | None]:
    if data is None:
        return {name: None}
    try:
        return {name: data.decode("utf-8")}
    except UnicodeDecodeError:
        return {f"{name}_base64": base64.b64encode(data).decode()}


def export_line(record: DeadLetterRecord) -> bytes:
    """One JSON line an operator can edit and give back to ``republish``."""
    return orjson.dumps({
        "topic": record.topic, **_text_or_base64("key", record.key), **_text_or_base64("value", record.value),
        "error": record.error, "detail": record.detail, "field": record.field,
        "partition": record.partition, "offset": record.offset,
    })


@dataclass(frozen=True, slots=True)
class Republish:
    """A line that passed the decoder: ``value`` goes to ``topic`` keyed by the event's SKU."""

    line: int
    topic: str
    value: bytes
    event: Event

    def __str__(self) -> str:
        return (f"line {self.line}: {self.topic} key {self.event.sku!r}: "
                f"{TYPE_NAMES[type(self.event)]} {self.event.event_id!r}")


@dataclass(frozen=True, slots=True)
class Refused:
    line: int
    reason: str

    def __str__(self) -> str:
        return f"line {self.line}: refused: {self.reason}"


def _value_of(body: dict[str, Any]) -> bytes | str:
    """The bytes to publish, or why there are none."""
    value, encoded = body.get("value"), body.get("value_base64")
    if value is not None and encoded is not None:
        return "give either value or value_base64, not both"
    if isinstance(value, str):
        return value.encode()
    if isinstance(value, dict):  # an operator may write the event as an object
        return orjson.dumps(value)
    if isinstance(encoded, str):
        try:
            return base64.b64decode(encoded, validate=True)
        except binascii.Error:
            return "value_base64 is not valid base64"
    if value is None and encoded is None:
        return "no value (value, or value_base64)"
    return "value must be a string (the message text) or a JSON object (the event)"


def check_line(text: str, line: int, topics: Mapping[str, Topic]) -> Republish | Refused | None:
    """Validates one line of an export file; None for a blank or ``#`` comment line."""
    stripped = text.strip()
    if not stripped or stripped.startswith("#"):
        return None
    try:
        body = orjson.loads(stripped)
    except orjson.JSONDecodeError as exc:
        return Refused(line, f"not JSON ({exc})")
    if not isinstance(body, dict):
        return Refused(line, "not a JSON object")
    topic = body.get("topic")
    if not isinstance(topic, str) or topic not in topics:
        return Refused(line, f"topic {topic!r} is not an inbound topic ({', '.join(sorted(topics))})")
    value = _value_of(body)
    if isinstance(value, str):
        return Refused(line, value)
    decoded = decode_event(value, TOPIC_TYPES[topics[topic]])
    if isinstance(decoded, Rejection):
        return Refused(line, f"{decoded.code.value}: {decoded.detail}")
    return Republish(line, topic, value, decoded)


def check_file(lines: Sequence[str], topics: Mapping[str, Topic]) -> tuple[list[Republish], list[Refused]]:
    checked = [check_line(text, number, topics) for number, text in enumerate(lines, start=1)]
    return [c for c in checked if isinstance(c, Republish)], [c for c in checked if isinstance(c, Refused)]


# -- the broker -------------------------------------------------------------------------------


def read_recent(bootstrap: str, topic: str, limit: int, idle_s: float = 1.5,
                timeout_s: float = 60.0, progress: Progress | None = None) -> list[DeadLetterRecord]:
    """The newest ``limit`` records of ``topic``, oldest first; ``progress`` counts the records read."""
    from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition

    consumer = Consumer({**kafka_client_config(bootstrap), "group.id": "avail-dlq-cli", "enable.auto.commit": False,
                         "enable.partition.eof": True, "fetch.wait.max.ms": 100})
    records: list[DeadLetterRecord] = []
    try:
        try:
            described = consumer.list_topics(topic, timeout=BROKER_TIMEOUT_S).topics.get(topic)
        except KafkaException as exc:
            raise Unreachable(f"the broker at {bootstrap} does not answer ({exc.args[0].str()}); set "
                              "AVAIL_KAFKA_BOOTSTRAP or --bootstrap, or start the engine (avail up)") from exc
        if described is None or described.error is not None or not described.partitions:
            raise DlqError(f"topic {topic!r} not found at {bootstrap}")
        starts, expected = [], 0
        for partition in sorted(described.partitions):
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=10)
            starts.append(TopicPartition(topic, partition, max(low, high - limit)))  # at or before; see docstring
            expected += high - max(low, high - limit)
        if progress is not None:
            progress.total = expected  # about: the broker's watermark may lag the log end
            progress.refresh()
        consumer.assign(starts)
        heard: set[int] = set()  # the idle clock runs once every partition answered (connecting is slow)
        deadline, last = time.monotonic() + timeout_s, time.monotonic()
        while time.monotonic() < deadline and (len(heard) < len(starts) or time.monotonic() - last < idle_s):
            for message in consumer.consume(500, 0.2):
                error, partition = message.error(), message.partition() or 0
                if partition not in heard:
                    heard.add(partition)
                    last = time.monotonic()
                if error is not None:
                    if error.code() != KafkaError._PARTITION_EOF:
                        raise DlqError(f"reading {topic!r}: {error}")
                    continue
                last = time.monotonic()
                records.append(parse_dead_letter(message.value(), partition, message.offset() or 0,
                                                 message.timestamp()[1]))
                if progress is not None:
                    progress.update(1)
    finally:
        consumer.close()
    records.sort(key=lambda r: (r.timestamp_ms or 0, r.dlq_partition, r.dlq_offset))
    return records[-limit:] if limit > 0 else []


def publish(bootstrap: str, items: Sequence[Republish], timeout_s: float = 30.0) -> list[str]:
    """Produces every item, keyed by SKU; returns the delivery failures (empty when all landed)."""
    from confluent_kafka import KafkaError, Message, Producer

    failures: list[str] = []

    def delivered(item: Republish) -> Callable[[KafkaError | None, Message], None]:
        def report(error: KafkaError | None, _: Message) -> None:
            if error is not None:
                failures.append(f"line {item.line}: not delivered: {error}")
        return report

    producer = Producer({**kafka_client_config(bootstrap), "linger.ms": 5})
    for item in items:
        producer.produce(item.topic, item.value, item.event.sku.encode(), on_delivery=delivered(item))
        producer.poll(0)
    if producer.flush(timeout_s):
        failures.append(f"some messages were not confirmed by the broker within {timeout_s:.0f} s")
    return failures


# -- the commands -----------------------------------------------------------------------------


def _settings(args: argparse.Namespace) -> FlowSettings:
    overrides = {k: v for k, v in (("kafka_bootstrap", args.bootstrap), ("topic_dlq", getattr(args, "topic", None)))
                 if v}
    return FlowSettings(**overrides)


def _read(args: argparse.Namespace, settings: FlowSettings) -> list[DeadLetterRecord]:
    with progress_bar(f"reading {settings.topic_dlq}", "letter") as bar:
        return read_recent(settings.kafka_bootstrap, settings.topic_dlq, args.limit, args.idle, progress=bar)


def _list(args: argparse.Namespace) -> int:
    settings = _settings(args)
    records = _read(args, settings)
    print(f"{settings.topic_dlq} at {settings.kafka_bootstrap}: {len(records)} dead letter(s) read "
          f"(the newest {args.limit} at most)")
    print("\n".join(list_lines(records, args.code, args.show)))
    return 0


def _export(args: argparse.Namespace) -> int:
    settings = _settings(args)
    records = [r for r in _read(args, settings) if args.code is None or r.error == args.code]
    data = b"".join(export_line(r) + b"\n" for r in records)
    if str(args.output) == "-":
        sys.stdout.buffer.write(data)
    else:
        args.output.write_bytes(data)
    print(f"wrote {len(records)} line(s) to {args.output}", file=sys.stderr)
    return 0


def _republish(args: argparse.Namespace) -> int:
    settings = _settings(args)
    lines = args.file.read_text(encoding="utf-8").splitlines()
    items, refused = check_file(lines, settings.topic_roles())
    for problem in refused:
        print(f"{args.file}:{problem}", file=sys.stderr)
    verb = "would publish" if args.dry_run else "published"
    failures = [] if args.dry_run or not items else publish(settings.kafka_bootstrap, items)
    for item in items:
        print(f"{verb} {item}")
    for failure in failures:
        print(f"{args.file}:{failure}", file=sys.stderr)
    print(f"{verb} {len(items)} event(s); refused {len(refused)} line(s)"
          + (f"; {len(failures)} delivery failure(s)" if failures else ""))
    return 1 if refused or failures else 0


def _run(handler: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        try:
            return int(handler(args))
        except (DlqError, OSError, UnicodeDecodeError) as exc:  # broker, topic, or the file given
            print(f"avail dlq: {exc}", file=sys.stderr)
            return 2
    return run


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Adds ``dlq list|export|republish`` to the ``avail`` subcommands."""
    admin = ("Operator (admin) command: it needs read access to the dead-letter topic and, for republish, write "
             "access to the inbound topics; the broker's ACLs are the permission boundary.")
    dlq = commands.add_parser("dlq", help="dead letters: counts by code, export, republish fixed events (admin)",
                              description="Rejected inbound messages (topic AVAIL_TOPIC_DLQ). " + admin)
    sub = dlq.add_subparsers(dest="dlq_command", required=True)

    def common(parser: argparse.ArgumentParser, reads: bool = True) -> None:
        parser.add_argument("--bootstrap", help="Kafka bootstrap servers (AVAIL_KAFKA_BOOTSTRAP)")
        if reads:
            parser.add_argument("--topic", help="the dead-letter topic (AVAIL_TOPIC_DLQ)")
            parser.add_argument("--limit", type=int, default=1000,
                                help="look at the newest N dead letters (default 1000)")
            parser.add_argument("--code", help="only this error code, e.g. bad_timestamp")
            parser.add_argument("--idle", type=float, default=1.5,
                                help="stop reading after this many seconds without a new record (default 1.5)")

    listing = sub.add_parser("list", help="counts by error code and the newest entries", description=admin)
    common(listing)
    listing.add_argument("--show", type=int, default=20, help="entries printed (default 20)")
    listing.set_defaults(handler=_run(_list))
    export = sub.add_parser("export", help="write dead letters as editable JSON lines", description=admin)
    common(export)
    export.add_argument("-o", "--output", type=Path, required=True, help="the file to write ('-': stdout)")
    export.set_defaults(handler=_run(_export))
    republish = sub.add_parser(
        "republish", help="validate an edited export file and produce its events to their topics",
        description="Every line is checked with the engine's decoder against its topic's event types; "
                    "refused lines are reported with their line number (exit 1), the others are produced "
                    "keyed by SKU and printed. " + admin)
    common(republish, reads=False)
    republish.add_argument("file", type=Path, help="JSON lines, as written by 'avail dlq export'")
    republish.add_argument("--dry-run", action="store_true", help="validate and print, publish nothing")
    republish.set_defaults(handler=_run(_republish))
