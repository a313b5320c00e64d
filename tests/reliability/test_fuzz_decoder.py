"""Poison input at volume, in process: the decoder against arbitrary bytes and near-valid JSON.

Nothing may crash, and every outcome must be exactly what ``expected`` says. ``expected``
is a reference model of contract sections 1 and 7 and of the decisions in ``atp/decoding.py``'s
docstring, written over plain Python values (a list of key/value pairs, so duplicate keys
survive) and independent of msgspec. With several faults in one message the contract lets
the decoder report any one of them, so the model answers an Event or the set of faults
it may report.

``load_tests/fuzz_decoder_atheris.py`` drives the same model with a coverage-guided fuzzer.
The number of decoder calls is printed at the end of the module (pytest's summary).
"""

from __future__ import annotations

import base64
import calendar
import json
import os
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from atp.decoding import decode_event
from atp.encoding import event_fields
from atp.events import (
    TOPIC_TYPES,
    TYPE_NAMES,
    Adjustment,
    Disposition,
    Event,
    InventorySnapshot,
    Pick,
    Receipt,
    Release,
    Reserve,
    Return,
    Sale,
    SaleVoid,
    SupplyCancelled,
    SupplyExpected,
    TransferCancelled,
    TransferReceived,
    TransferShipped,
)
from atp.rejections import RejectCode, Rejection
from dataflows.messages import DeadLetter, RawMessage

pytestmark = pytest.mark.reliability

Fault = tuple[RejectCode, str | None]
Outcome = Event | frozenset[Fault]
Pairs = list[tuple[str, Any]]

# -- JSON values the model reasons about -----------------------------------------------------


@dataclass(frozen=True)
class Raw:
    """A JSON token rendered as is: ``kind`` is its JSON type, or ``bad`` when it is not JSON."""

    text: str
    kind: str
    value: int | None = None  # kind "int": its value; kind "bad": the number a parser reads before failing


class Obj(list[tuple[str, Any]]):
    """A JSON object as key/value pairs, duplicates kept."""


BAD_TOKENS = [Raw(t, "bad") for t in ("NaN", "Infinity", "-Infinity", '"\\ud800"', '"a\\udc00b"', '"\\ud83d"',
                                      "1.", ".5", "+1", "'x'", "tru", "nul", '"\\x41"', '"\t"')]
BAD_TOKENS += [Raw("01", "bad", 0), Raw("0x10", "bad", 0), Raw("-01", "bad", 0)]
ODD_NUMBERS = [Raw("1e400", "float"), Raw("-1e400", "float"), Raw("1E2", "float"), Raw("1.0e0", "float"),
               Raw("-0.0", "float"), Raw("-0", "int", 0), Raw("0e0", "float")]
MAX_DEPTH_SURE = 990  # msgspec refuses nesting from about 997 levels; between the two either answer is fine


def jtype(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, Raw):
        return value.kind
    return {int: "int", float: "float", str: "str", Obj: "object", dict: "object", list: "array"}[type(value)]


def is_bad(value: Any) -> bool:
    """Not JSON for the decoder: a bad token, a lone surrogate, or nesting beyond its limit."""
    stack = [(value, 1)]  # not recursive: the nesting itself is under test
    while stack:
        item, depth = stack.pop()
        if depth >= MAX_DEPTH_SURE:
            return True
        if isinstance(item, Raw):
            if item.kind == "bad":
                return True
        elif isinstance(item, str):
            if any("\ud800" <= c <= "\udfff" for c in item):
                return True
        elif isinstance(item, Obj):
            stack.extend(x for k, v in item for x in ((k, depth), (v, depth + 1)))
        elif isinstance(item, dict):
            stack.extend(x for k, v in item.items() for x in ((k, depth), (v, depth + 1)))
        elif isinstance(item, list):
            stack.extend((v, depth + 1) for v in item)
    return False


# -- the reference model ----------------------------------------------------------------------

ID, SKU, NODE, CHANNEL, QTY, SIGNED_QTY, ON_HAND, TIME, REASON, DISPOSITION, TEXT = (
    "id", "sku", "node", "channel", "qty", "signed_qty", "on_hand", "time", "reason", "disposition", "text")
INT_RANGES = {QTY: (1, 1_000_000), SIGNED_QTY: (-1_000_000, 1_000_000), ON_HAND: (0, 1_000_000_000)}
CODE_FAULTS = {SKU: RejectCode.INVALID_SKU, NODE: RejectCode.INVALID_NODE, CHANNEL: RejectCode.INVALID_CHANNEL}
CODE_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._:/-"
CODE_TEXT = re.compile(r"[A-Za-z0-9._:/\-]{1,64}")
NOT_CODE_CHARS = st.characters(exclude_categories=("Cs",), exclude_characters=CODE_CHARS)
DISPOSITIONS = {"restock", "damaged", "inspect"}


@dataclass(frozen=True)
class Spec:
    kind: str
    required: bool = True


def _fields(**specs: Spec) -> dict[str, Spec]:
    return {"event_id": Spec(ID), "sku": Spec(SKU), **specs}


_MOVE = {"node": Spec(NODE), "qty": Spec(QTY), "occurred_at": Spec(TIME)}
_TRANSFER = _fields(transfer_id=Spec(ID), from_node=Spec(NODE), to_node=Spec(NODE), qty=Spec(QTY),
                    occurred_at=Spec(TIME))
SCHEMA: dict[str, dict[str, Spec]] = {
    "sale": _fields(**_MOVE),
    "sale_void": _fields(**_MOVE),
    "receipt": _fields(**_MOVE, reference=Spec(TEXT, False)),
    "pick": _fields(**_MOVE, reservation_id=Spec(ID, False)),
    "return": _fields(**_MOVE, disposition=Spec(DISPOSITION)),
    "adjustment": _fields(node=Spec(NODE), qty=Spec(SIGNED_QTY), reason=Spec(REASON), occurred_at=Spec(TIME)),
    "snapshot": _fields(node=Spec(NODE), on_hand=Spec(ON_HAND), as_of=Spec(TIME)),
    "reserve": _fields(reservation_id=Spec(ID), channel=Spec(CHANNEL), qty=Spec(QTY), occurred_at=Spec(TIME),
                       node=Spec(NODE, False), expires_at=Spec(TIME, False)),
    "release": _fields(reservation_id=Spec(ID), occurred_at=Spec(TIME), node=Spec(NODE, False),
                       qty=Spec(QTY, False)),
    "transfer_shipped": {**_TRANSFER, "expected_at": Spec(TIME, False)},
    "transfer_received": _TRANSFER,
    "transfer_cancelled": _TRANSFER,
    "supply_expected": _fields(supply_id=Spec(ID), node=Spec(NODE), qty=Spec(QTY), expected_at=Spec(TIME),
                               occurred_at=Spec(TIME)),
    "supply_cancelled": _fields(supply_id=Spec(ID), occurred_at=Spec(TIME)),
}
FIELD_NAMES = sorted({name for fields in SCHEMA.values() for name in fields})
TIME_NAMES = ("occurred_at", "as_of", "expires_at", "expected_at")

_STAMP = re.compile(r"(\d{4})-(\d\d)-(\d\d)[Tt](\d\d):(\d\d):(\d\d)(?:\.(\d+))?(?:[Zz]|([+-])(\d\d):(\d\d))", re.ASCII)


def reference_micros(text: str) -> int | None:
    """RFC 3339 date-time with offset to µs (fraction truncated, :60 = next minute's first second)."""
    match = _STAMP.fullmatch(text)
    if match is None:
        return None
    year, month, day, hour, minute, second = (int(g) for g in match.groups()[:6])
    fraction, sign, off_h, off_m = match.groups()[6:]
    if not (year >= 1 and 1 <= month <= 12 and hour <= 23 and minute <= 59 and second <= 60):
        return None
    if not 1 <= day <= calendar.monthrange(year, month)[1]:
        return None
    offset = 0
    if sign is not None:
        if int(off_h) > 23 or int(off_m) > 59:
            return None
        offset = (int(off_h) * 60 + int(off_m)) * 60 * (1 if sign == "+" else -1)
    seconds = calendar.timegm((year, month, day, hour, minute, second, 0, 0, 0)) - offset
    return seconds * 1_000_000 + int((fraction or "").ljust(6, "0")[:6])


def _field_fault(spec: Spec, name: str, value: Any) -> Fault | None:
    kind = jtype(value)
    if kind == "null":
        return (RejectCode.WRONG_TYPE, name) if spec.required else None
    if spec.kind in INT_RANGES:
        if kind != "int":
            return RejectCode.WRONG_TYPE, name
        low, high = INT_RANGES[spec.kind]
        number = value.value if isinstance(value, Raw) else value
        return None if low <= number <= high else (RejectCode.QTY_OUT_OF_RANGE, name)
    if kind != "str":
        return RejectCode.WRONG_TYPE, name
    if spec.kind == ID and not 1 <= len(value) <= 128:
        return RejectCode.INVALID_ID, name
    if spec.kind in CODE_FAULTS and not CODE_TEXT.fullmatch(value):
        return CODE_FAULTS[spec.kind], name
    if (spec.kind == REASON and not 1 <= len(value) <= 256) or (spec.kind == DISPOSITION
                                                                 and value not in DISPOSITIONS):
        return RejectCode.INVALID_VALUE, name
    return None


def parse_faults(pairs: Pairs) -> set[Fault]:
    """Faults found while parsing and type-checking (before timestamps and cross-field rules)."""
    faults: set[Fault] = {(RejectCode.NOT_JSON, None)} if any(is_bad(k) or is_bad(v) for k, v in pairs) else set()
    tags = [value for key, value in pairs if key == "type"]
    if not tags:
        return faults | {(RejectCode.MISSING_FIELD, "type")}
    tag = tags[0]
    if is_bad(tag):  # a number read before the syntax error is already the wrong type
        return faults | ({(RejectCode.WRONG_TYPE, "type")} if isinstance(tag, Raw) and tag.value is not None else set())
    if not isinstance(tag, str):
        return faults | {(RejectCode.WRONG_TYPE, "type")}
    if tag not in SCHEMA:
        return faults | {(RejectCode.UNKNOWN_TYPE, "type")}
    schema = SCHEMA[tag]
    for value in tags[1:]:  # every later "type" must repeat the first
        if isinstance(value, Raw) and value.value is not None:
            faults.add((RejectCode.WRONG_TYPE, "type"))
        if is_bad(value) or value == tag:
            continue
        if not isinstance(value, str):
            faults.add((RejectCode.WRONG_TYPE, "type"))
        else:
            faults.add((RejectCode.INVALID_VALUE if value in SCHEMA else RejectCode.UNKNOWN_TYPE, "type"))
    for key, value in pairs:
        if isinstance(value, Raw) and value.kind == "bad" and value.value is not None:
            value = value.value
        if key in schema and not is_bad(value):
            fault = _field_fault(schema[key], key, value)
            if fault is not None:
                faults.add(fault)
    present = {key for key, _ in pairs}
    faults |= {(RejectCode.MISSING_FIELD, name) for name, spec in schema.items()
               if spec.required and name not in present}
    return faults


def expected(pairs: Pairs, accepted: frozenset[str] | None = None) -> Outcome:
    """The Event a JSON object decodes to, or the faults of which the decoder reports one."""
    faults = parse_faults(pairs)
    if faults:
        return frozenset(faults)
    tag = next(value for key, value in pairs if key == "type")
    schema = SCHEMA[tag]
    values = {key: value for key, value in pairs if key in schema}  # the last duplicate wins
    v = {key: value.value if isinstance(value, Raw) else value for key, value in values.items() if value is not None}
    if tag == "adjustment" and v["qty"] == 0:
        return frozenset({(RejectCode.QTY_OUT_OF_RANGE, "qty")})
    if tag.startswith("transfer_") and v["from_node"] == v["to_node"]:
        return frozenset({(RejectCode.INVALID_VALUE, "to_node")})
    at: dict[str, int] = {}
    for name in TIME_NAMES:  # the first bad one is reported
        if name in v:
            micros = reference_micros(v[name])
            if micros is None:
                return frozenset({(RejectCode.BAD_TIMESTAMP, name)})
            at[name] = micros
    built = _build(tag, v, at)
    if accepted is not None and tag not in accepted:
        return frozenset({(RejectCode.WRONG_TOPIC, "type")})
    return built


def _build(tag: str, v: dict[str, Any], at: dict[str, int]) -> Event:
    e, s = v["event_id"], v["sku"]
    if tag == "supply_expected":
        return SupplyExpected(e, s, v["supply_id"], v["node"], v["qty"], at["expected_at"], at["occurred_at"])
    if tag == "supply_cancelled":
        return SupplyCancelled(e, s, v["supply_id"], at["occurred_at"])
    if tag == "transfer_shipped":
        return TransferShipped(e, s, v["transfer_id"], v["from_node"], v["to_node"], v["qty"], at["occurred_at"],
                               at.get("expected_at"))
    if tag in ("sale", "sale_void"):
        return (Sale if tag == "sale" else SaleVoid)(e, s, v["node"], v["qty"], at["occurred_at"])
    if tag == "receipt":
        return Receipt(e, s, v["node"], v["qty"], at["occurred_at"], v.get("reference"))
    if tag == "pick":
        return Pick(e, s, v["node"], v["qty"], at["occurred_at"], v.get("reservation_id"))
    if tag == "return":
        return Return(e, s, v["node"], v["qty"], Disposition(v["disposition"]), at["occurred_at"])
    if tag == "adjustment":
        return Adjustment(e, s, v["node"], v["qty"], v["reason"], at["occurred_at"])
    if tag == "snapshot":
        return InventorySnapshot(e, s, v["node"], v["on_hand"], at["as_of"])
    if tag == "reserve":
        return Reserve(e, s, v["reservation_id"], v["channel"], v["qty"], at["occurred_at"], v.get("node"),
                       at.get("expires_at"))
    if tag == "release":
        return Release(e, s, v["reservation_id"], at["occurred_at"])
    cls = {"transfer_received": TransferReceived, "transfer_cancelled": TransferCancelled}[tag]
    return cls(e, s, v["transfer_id"], v["from_node"], v["to_node"], v["qty"], at["occurred_at"])


# -- checking one input --------------------------------------------------------------------------

CALLS: Counter[str] = Counter()


def decode_checked(value: bytes | None, accepted: frozenset[str] | None = None, *,
                   counter: str = "decode") -> Event | Rejection:
    """``decode_event`` plus what must hold for any input: no exception, a dead letter that serialises."""
    CALLS[counter] += 1
    result = decode_event(value, accepted)
    assert isinstance(result, Event | Rejection), result
    if isinstance(result, Rejection):
        assert result.code is not RejectCode.OUTSIDE_WINDOW and result.detail, result
        assert accepted is not None or result.code is not RejectCode.WRONG_TOPIC, result
        letter = orjson.loads(DeadLetter(RawMessage("t", 0, 0, b"k", value), result).to_json())
        assert letter["error"] == result.code.value
        assert (base64.b64decode(letter["value"]) if value is not None else None) == value
    else:
        assert value is not None and len(value) <= 65_536
        for text in (getattr(result, name) for name, _ in event_fields(type(result))):
            if isinstance(text, str):
                text.encode()  # no lone surrogate can reach Redis
    return result


def assert_outcome(result: Event | Rejection, want: Outcome, raw: bytes | None) -> None:
    if isinstance(want, frozenset):
        assert isinstance(result, Rejection), f"{raw!r}: expected one of {sorted(want, key=str)}, got {result}"
        assert (result.code, result.field) in want or (result.code, ANY_FIELD) in want, (
            f"{raw!r}: expected one of {sorted(want, key=str)}, got {result!r}")
    else:
        assert result == want, f"{raw!r}: expected {want}, got {result!r}"


class _Refused(Exception):
    pass


def _refuse(token: str) -> Any:
    raise _Refused(token)


INVALID, UNSURE = object(), object()
ANY_FIELD = "*"
PARSE_CODES = [RejectCode.MISSING_FIELD, RejectCode.WRONG_TYPE, RejectCode.UNKNOWN_TYPE, RejectCode.INVALID_ID,
               RejectCode.INVALID_SKU, RejectCode.INVALID_NODE, RejectCode.INVALID_CHANNEL,
               RejectCode.QTY_OUT_OF_RANGE, RejectCode.INVALID_VALUE]


def python_json(raw: bytes) -> Any:
    """What Python's json makes of ``raw`` (objects as Obj), or INVALID / UNSURE."""
    try:
        return json.loads(raw.decode(), object_pairs_hook=Obj, parse_constant=_refuse,
                          parse_float=lambda t: Raw(t, "float"))
    except (json.JSONDecodeError, _Refused):
        return INVALID
    except (RecursionError, ValueError):  # too deep for Python, or an integer past its digit limit
        return UNSURE


def oracle(raw: bytes | None, accepted: frozenset[str] | None) -> Outcome | None:
    """The exact outcome for any bytes, or None where only the invariants are checked."""
    if raw is None or raw == b"":
        return frozenset({(RejectCode.NOT_JSON, None)})
    if len(raw) > 65_536:
        return frozenset({(RejectCode.TOO_LARGE, None)})
    try:
        raw.decode()
    except UnicodeDecodeError:
        return frozenset({(RejectCode.NOT_UTF8, None)})
    parsed = python_json(raw)
    if parsed is INVALID:
        if raw.lstrip(b" \t\n\r").startswith(b"{"):  # a field fault met before the syntax error may win
            return frozenset({(RejectCode.NOT_JSON, None), *((code, ANY_FIELD) for code in PARSE_CODES)})
        return frozenset({(RejectCode.NOT_JSON, None), (RejectCode.NOT_OBJECT, None)})
    if parsed is UNSURE or _depth(parsed) >= MAX_DEPTH_SURE - 10:
        return None
    if not isinstance(parsed, Obj):  # the decoder may stop at the first token, before what is not JSON
        return frozenset({(RejectCode.NOT_OBJECT, None), *([(RejectCode.NOT_JSON, None)] if is_bad(parsed) else [])})
    return expected(list(parsed), accepted)


def _depth(value: Any) -> int:
    stack, deepest = [(value, 1)], 0
    while stack:
        item, depth = stack.pop()
        deepest = max(deepest, depth)
        if isinstance(item, Obj):
            stack.extend((v, depth + 1) for _, v in item)
        elif isinstance(item, list):
            stack.extend((v, depth + 1) for v in item)
    return deepest


def check_any(raw: bytes | None, accepted: frozenset[str] | None = None, counter: str = "decode") -> None:
    result = decode_checked(raw, accepted, counter=counter)
    want = oracle(raw, accepted)
    if want is not None:
        assert_outcome(result, want, raw)


# -- rendering pairs as JSON text --------------------------------------------------------------


@dataclass(frozen=True)
class Style:
    escape: str = "none"  # none | ascii | all | mixed: which characters become \\uXXXX
    space: str = ""  # between tokens
    lead: str = ""
    trail: str = ""


def _escape_all(text: str, every: int) -> str:
    out = []
    for i, char in enumerate(text):
        if i % every:
            out.append(json.dumps(char, ensure_ascii=False)[1:-1])
            continue
        code = ord(char)
        if code > 0xFFFF:
            code -= 0x10000
            out.append(f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04X}")
        else:
            out.append(f"\\u{code:04x}")
    return '"' + "".join(out) + '"'


def render_str(text: str, style: Style) -> str:
    if style.escape == "all":
        return _escape_all(text, 1)
    if style.escape == "mixed":
        return _escape_all(text, 2)
    return json.dumps(text, ensure_ascii=style.escape == "ascii")


def render_value(value: Any, style: Style) -> str:
    sp = style.space
    if isinstance(value, Raw):
        return value.text
    if value is None or isinstance(value, bool):
        return json.dumps(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, str):
        return render_str(value, style)
    if isinstance(value, Obj | dict):
        items = value if isinstance(value, Obj) else list(value.items())
        return render_object(items, style)
    return "[" + sp + f"{sp},{sp}".join(render_value(v, style) for v in value) + sp + "]"


def render_object(pairs: Pairs, style: Style) -> str:
    sp = style.space
    body = f"{sp},{sp}".join(f"{render_str(k, style)}{sp}:{sp}{render_value(v, style)}" for k, v in pairs)
    return "{" + sp + body + sp + "}"


def render(pairs: Pairs, style: Style = Style()) -> bytes:
    return (style.lead + render_object(pairs, style) + style.trail).encode("utf-8", "surrogatepass")


# -- valid events and their many spellings -----------------------------------------------------

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MIN_US = (datetime(2, 1, 1, tzinfo=UTC) - _EPOCH) // timedelta(microseconds=1)
MAX_US = (datetime(9998, 12, 31, tzinfo=UTC) - _EPOCH) // timedelta(microseconds=1)
TEXT_CHARS = st.characters(exclude_categories=("Cs",))
ids = st.text(TEXT_CHARS, min_size=1, max_size=128) | st.sampled_from(["e-1", "x" * 128, "é" * 128, "\x00"])
codes = st.from_regex(r"[A-Za-z0-9._:/-]{1,64}", fullmatch=True) | st.sampled_from(["a" * 64, "Az09._-:/"])
qtys = st.integers(1, 1_000_000) | st.sampled_from([1, 1_000_000])
micros = st.integers(MIN_US, MAX_US) | st.integers(1_700_000_000_000_000, 1_900_000_000_000_000)


def _day(moment: datetime) -> str:
    return f"{moment.year:04d}-{moment.month:02d}-{moment.day:02d}"  # strftime drops the zeros of year 991


@st.composite
def stamps(draw: st.DrawFn, at: int) -> str:
    """One of the many RFC 3339 spellings of the instant ``at``."""
    minutes = draw(st.sampled_from([0, 0, 60, -480, 330, 1439, -1439]) | st.integers(-1439, 1439))
    local = _EPOCH + timedelta(microseconds=at) + timedelta(minutes=minutes)
    day, clock = _day(local), f"{local:%H:%M:%S}"
    if local.second == 0 and draw(st.booleans()):  # the same instant written as a leap second
        before = local - timedelta(minutes=1)
        day, clock = _day(before), f"{before:%H:%M}:60"
    digits = f"{local.microsecond:06d}"
    fraction = draw(st.sampled_from([
        "." + digits, "." + digits + draw(st.text("0123456789", min_size=1, max_size=6)),
        ("." + digits.rstrip("0")) if local.microsecond else "", ".000000" if not local.microsecond else "." + digits,
    ]))
    if minutes == 0:
        offset = draw(st.sampled_from(["Z", "z", "+00:00", "-00:00"]))
    else:
        offset = f"{'+' if minutes > 0 else '-'}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"
    return f"{day}{draw(st.sampled_from('Tt'))}{clock}{fraction}{offset}"


def _apart(pair: tuple[str, str]) -> tuple[str, str]:
    source, target = pair
    return source, target if target != source else ("b" if source != "b" else "c")


def _transfer(t: tuple[Any, ...]) -> Event:
    kind, event_id, sku, transfer_id, (source, target), qty, at, expected_at = t
    if kind is TransferShipped:
        return TransferShipped(event_id, sku, transfer_id, source, target, qty, at, expected_at)
    return kind(event_id, sku, transfer_id, source, target, qty, at)  # type: ignore[no-any-return]


_TRANSFERS = st.tuples(st.sampled_from([TransferShipped, TransferReceived, TransferCancelled]), ids, codes, ids,
                       st.tuples(codes, codes).map(_apart), qtys, micros, st.none() | micros)
valid_events: st.SearchStrategy[Event] = st.one_of(
    st.builds(Sale, ids, codes, codes, qtys, micros),
    st.builds(SaleVoid, ids, codes, codes, qtys, micros),
    st.builds(Receipt, ids, codes, codes, qtys, micros, st.none() | st.text(TEXT_CHARS, max_size=40)),
    st.builds(Pick, ids, codes, codes, qtys, micros, st.none() | ids),
    st.builds(Return, ids, codes, codes, qtys, st.sampled_from(Disposition), micros),
    st.builds(Adjustment, ids, codes, codes, st.integers(1, 1_000_000) | st.integers(-1_000_000, -1),
              st.text(TEXT_CHARS, min_size=1, max_size=256), micros),
    st.builds(InventorySnapshot, ids, codes, codes, st.integers(0, 1_000_000_000), micros),
    st.builds(Reserve, ids, codes, ids, codes, qtys, micros, st.none() | codes, st.none() | micros),
    st.builds(Release, ids, codes, ids, micros),
    _TRANSFERS.map(_transfer),
    st.builds(SupplyExpected, ids, codes, ids, codes, qtys, micros, micros),
    st.builds(SupplyCancelled, ids, codes, ids, micros),
)
styles = st.builds(Style, st.sampled_from(["none", "ascii", "all", "mixed"]),
                   st.sampled_from(["", "", " ", "\n", "\t", "\r\n  "]), st.sampled_from(["", " ", "\n"]),
                   st.sampled_from(["", " ", "\n", "\r\n\t "]))
topics = st.none() | st.sampled_from(sorted(TOPIC_TYPES.values(), key=sorted))


@st.composite
def spelled(draw: st.DrawFn, event_: Event) -> Pairs:
    """``event_`` as key/value pairs in any order, timestamps in any offset, optional nulls either way."""
    pairs: Pairs = [("type", TYPE_NAMES[type(event_)])]
    for name, _ in event_fields(type(event_)):
        value = getattr(event_, name)
        if value is None:
            if draw(st.booleans()):
                pairs.append((name, None))
            continue
        if name in TIME_NAMES:
            value = draw(stamps(value))
        elif isinstance(value, Disposition):
            value = value.value
        pairs.append((name, value))
    return draw(st.permutations(pairs))


def own_topic(event_: Event) -> frozenset[str]:
    return next(types for types in TOPIC_TYPES.values() if TYPE_NAMES[type(event_)] in types)


# -- (c) round trip --------------------------------------------------------------------------------

# a few thousand inputs per test in the dev profile; FUZZ_EXAMPLES sets it for a long run
FUZZ = settings(max_examples=int(os.environ.get("FUZZ_EXAMPLES", settings.default.max_examples * 4)))


@FUZZ
@given(data=st.data(), event_=valid_events, style=styles)
def test_every_valid_event_decodes_to_itself_in_any_spelling(data: st.DataObject, event_: Event, style: Style) -> None:
    pairs = data.draw(spelled(event_))
    assert expected(pairs) == event_  # the model agrees before it is trusted below
    raw = render(pairs, style)
    assert decode_checked(raw, counter="round_trip") == event_
    assert decode_checked(raw, own_topic(event_), counter="round_trip") == event_
    other = next(types for types in TOPIC_TYPES.values() if TYPE_NAMES[type(event_)] not in types)
    assert_outcome(decode_checked(raw, other, counter="round_trip"),
                   frozenset({(RejectCode.WRONG_TOPIC, "type")}), raw)


# -- (b) near-valid JSON ---------------------------------------------------------------------------

BAD_CODES = ["", "x" * 65, "TV 55", "TV-55\n", "TV#55", "télé", "TV*", "tv,55", "\u0000", "ＴＶ", "a\u200bb"]
BAD_STAMPS = [
    "2026-11-23T10:15:00", "2026-11-23T10:15:00.123", "2026-11-23 10:15:00Z", "2026-11-23T10:15:00+0530",
    "2026-11-23T10:15Z", "2026-11-23", "2026-11-23T10:15:00.Z", "2026-11-23T10:15:00,123Z", "2026-02-29T10:15:00Z",
    "2026-13-01T10:15:00Z", "2026-11-31T10:15:00Z", "2026-11-23T24:00:00Z", "2026-11-23T10:60:00Z",
    "2026-11-23T10:15:61Z", "2026-11-23T10:15:00+24:00", "2026-11-23T10:15:00+05:60", "2026-11-23T10:15:00Z\n",
    " 2026-11-23T10:15:00Z", "２０２６-11-23T10:15:00Z", "0000-01-01T00:00:00Z", "20261123T101500Z", "1795428900",
    "", "now", "2026-11-23T10:15:00UTC", "2026-11-23T10:15:00+05", "+12026-11-23T10:15:00Z", "2026-11-23T10:15:00.1e3Z",
]  # fmt: skip
json_scalars = (
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(TEXT_CHARS, max_size=20) | st.sampled_from(ODD_NUMBERS)
)  # fmt: skip
json_values = st.recursive(
    json_scalars, lambda inner: st.lists(inner, max_size=3) | st.lists(st.tuples(st.text(max_size=5), inner),
                                                                       max_size=3).map(Obj),
    max_leaves=8,
)


@st.composite
def broken_stamps(draw: st.DrawFn) -> str:
    good = draw(stamps(draw(micros)))
    cut = draw(st.sampled_from(["offset", "space", "colon", "seconds", "date", "suffix"]))
    if cut == "offset":
        return re.sub(r"([Zz]|[+-]\d\d:\d\d)$", "", good)
    if cut == "space":
        return good[:10] + " " + good[11:]
    if cut == "colon":
        return good[:-3] + good[-2:] if good[-3] == ":" else good + "+0000"
    if cut == "seconds":
        return good[:16] + good[19:]
    if cut == "date":
        return "2026-02-30" + good[10:]
    return good + draw(st.sampled_from(["x", " ", "Z", "\n", ".5"]))


@st.composite
def field_values(draw: st.DrawFn, kind: str) -> Any:
    """A value for a field of ``kind``: often wrong, in every way the contract names, sometimes right."""
    choice = draw(st.integers(0, 19))
    if choice == 0:
        return draw(json_values)
    if choice == 1:
        return None
    if kind in INT_RANGES:
        low, high = INT_RANGES[kind]
        return draw(st.one_of(
            st.integers(low, high), st.sampled_from([low - 1, high + 1, 0, -1, 1_000_001, 2**63, -(2**63) - 1, 2**64]),
            st.integers(-(2**80), 2**80), st.booleans(), st.integers(-5, 5).map(float), st.floats(-1e7, 1e7),
            st.sampled_from(ODD_NUMBERS), st.integers(1, 9).map(str), st.integers(1, 9).map(lambda n: [n]),
        ))
    if kind == ID:
        return draw(ids | st.sampled_from(["", "x" * 129, "é" * 129]) | st.text(min_size=129, max_size=140)
                    | st.integers() | st.booleans())
    if kind in CODE_FAULTS:
        good = draw(codes)
        at, odd = draw(st.integers(0, len(good))), draw(NOT_CODE_CHARS)
        return draw(st.sampled_from([good, good[:at] + odd + good[at:], good * 65]
                                    + BAD_CODES) | st.integers() | st.lists(st.just(good), max_size=1))
    if kind == TIME:
        return draw(st.sampled_from(BAD_STAMPS) | stamps(draw(micros)) | broken_stamps()
                    | st.integers(0, 2**40) | st.floats(0, 1e10))
    if kind == REASON:
        return draw(st.text(TEXT_CHARS, min_size=1, max_size=256) | st.sampled_from(["", "r" * 257, "r" * 256])
                    | st.integers())
    if kind == DISPOSITION:
        return draw(st.sampled_from([*DISPOSITIONS, "Restock", "RESTOCK", "lost", "", " restock"]) | st.text()
                    | st.integers())
    return draw(st.text(TEXT_CHARS) | st.integers() | st.booleans())  # TEXT


@st.composite
def contract_faults(draw: st.DrawFn, kind: str) -> Any:
    """A value of the right JSON type that breaks its field's rule (range, charset, length, format)."""
    if kind in INT_RANGES:
        low, high = INT_RANGES[kind]
        return draw(st.sampled_from([low - 1, high + 1, low - 1_000_000, high * 3, 2**64, -(2**63) - 1,
                                     *([0] if kind == SIGNED_QTY else [])]) | st.integers(high + 1, 2**70))
    if kind == ID:
        return draw(st.sampled_from(["", "x" * 129, "é" * 129]) | st.text(TEXT_CHARS, min_size=129, max_size=140))
    if kind in CODE_FAULTS:
        good = draw(codes)
        at, odd = draw(st.integers(0, len(good))), draw(NOT_CODE_CHARS)
        return draw(st.sampled_from([good[:at] + odd + good[at:], good + "x" * (65 - len(good)), *BAD_CODES]))
    if kind == TIME:
        return draw(st.sampled_from(BAD_STAMPS) | broken_stamps())
    if kind == REASON:
        return draw(st.sampled_from(["", "r" * 257]) | st.text(TEXT_CHARS, min_size=257, max_size=300))
    if kind == DISPOSITION:
        return draw(st.sampled_from(["Restock", "RESTOCK", "lost", "", " restock", "restock\n"]))
    return draw(st.integers())  # a TEXT field has no rule but its type


OTHER_TYPES = ["Sale", "SALE", " sale", "sale ", "", "stock_count", "sale\u0000", "séle", "transfer"]


def _mutate(draw: st.DrawFn, pairs: Pairs) -> Pairs:
    """One structural change, drawn from every way the issue lists; recorded with ``event``."""
    pairs = list(pairs)
    tag = next((v for k, v in pairs if k == "type"), None)
    schema = SCHEMA.get(tag, {}) if isinstance(tag, str) else {}
    at = draw(st.integers(0, max(0, len(pairs) - 1)))
    how = draw(st.sampled_from(["drop", "rename", "value", "fault", "fault", "fault", "null", "extra", "duplicate",
                                "type", "token", "same_nodes", "shuffle"]))
    event(f"mutation: {how}")
    if how == "drop" and pairs:
        del pairs[at]
    elif how == "rename" and pairs:
        key, value = pairs[at]
        new = draw(st.sampled_from([key.upper(), key + "_", "_" + key, key[:-1], key.replace("_", "-"), "Type"])
                   | st.sampled_from(FIELD_NAMES))
        pairs[at] = (new, value)
    elif how in ("value", "null", "fault") and pairs:
        fields = [i for i, (k, _) in enumerate(pairs) if k in schema]
        at = draw(st.sampled_from(fields)) if fields and (how == "fault" or draw(st.integers(0, 4))) else at
        key, _ = pairs[at]
        kind = schema.get(key, Spec(TEXT)).kind
        values = {"null": st.none(), "value": field_values(kind), "fault": contract_faults(kind)}[how]
        pairs[at] = (key, draw(values))
    elif how == "extra":
        key = draw(st.sampled_from(FIELD_NAMES) | st.text(max_size=12))
        kind = schema[key].kind if key in schema else draw(st.sampled_from([ID, QTY, TIME, TEXT]))
        pairs.insert(at, (key, draw(field_values(kind) | json_values)))
    elif how == "duplicate" and pairs:
        key, value = pairs[at]
        spec = schema.get(key, Spec(TEXT))
        copy = value if draw(st.booleans()) else draw(field_values(spec.kind))
        pairs.insert(at + draw(st.integers(0, 1)), (key, copy))
    elif how == "type":
        new_tag = draw(st.sampled_from(sorted(SCHEMA)) | st.sampled_from(OTHER_TYPES) | st.text(max_size=10)
                       | st.integers() | st.none() | st.lists(st.just("sale"), max_size=1))
        pairs = [(k, new_tag if k == "type" else v) for k, v in pairs]
    elif how == "token":
        token = draw(st.sampled_from(BAD_TOKENS))
        if pairs and draw(st.booleans()):
            pairs[at] = (pairs[at][0], token)
        else:
            holder = draw(st.sampled_from([token, [1, token], Obj([("a", token)])]))
            pairs.insert(at, (draw(st.text(max_size=5)), holder))
    elif how == "same_nodes" and "from_node" in schema:
        source = next((v for k, v in pairs if k == "from_node"), "dc-east")
        pairs = [(k, source if k == "to_node" else v) for k, v in pairs]
    elif how == "shuffle":
        pairs = draw(st.permutations(pairs))
    return pairs


DOC_CHANGES = ["none"] * 7 + ["bom", "trailing", "array", "truncate", "utf8", "oversize", "exact_size"]
NEVER_UTF8 = [b"\xff", b"\xfe", b"\xc0\xaf", b"\xc1", b"\xf5\x80\x80\x80", b"\xed\xa0\x80", b"\xc3(", b"\xe2\x82x",
              b"\x80"]


def _respell(draw: st.DrawFn, pairs: Pairs, style: Style) -> tuple[bytes, Outcome, frozenset[str] | None]:
    """Renders ``pairs``, maybe breaks the document itself, and says what must come out."""
    accepted = draw(topics)
    change = draw(st.sampled_from(DOC_CHANGES))
    event(f"document: {change}")
    raw = render(pairs, style)
    early = frozenset(parse_faults(pairs))
    not_json = frozenset({(RejectCode.NOT_JSON, None)})
    if change == "bom":
        return b"\xef\xbb\xbf" + raw, not_json, accepted
    if change == "trailing":  # the object is read (its faults may win), then the garbage is seen
        garbage = draw(st.sampled_from(["x", "}", ",", "{}", "]", "\x00", "//", "0", '"', "\u00a0"]))
        return raw + (draw(st.sampled_from(["", " ", "\n"])) + garbage).encode(), early or not_json, accepted
    if change == "array":
        return b"[" + raw + b"]", frozenset({(RejectCode.NOT_OBJECT, None)}), accepted
    if change == "truncate":
        cut = raw.rstrip()[: draw(st.integers(0, len(raw.rstrip()) - 1))]
        try:
            cut.decode()
        except UnicodeDecodeError:
            return cut, frozenset({(RejectCode.NOT_UTF8, None)}), accepted
        return cut, not_json | early, accepted
    if change == "utf8":
        places = [i for i in range(len(raw) + 1) if i == len(raw) or raw[i] < 0x80]
        where = draw(st.sampled_from(places))
        return raw[:where] + draw(st.sampled_from(NEVER_UTF8)) + raw[where:], frozenset(
            {(RejectCode.NOT_UTF8, None)}), accepted
    if change in ("oversize", "exact_size"):
        room = 65_536 - len(render([*pairs, ("zz_pad", Raw('""', "str"))], style))
        if room >= 0:
            padded = [*pairs, ("zz_pad", Raw('"' + "x" * room + '"', "str"))]
            if change == "exact_size":
                raw = render(padded, style)
                assert len(raw) == 65_536
                return raw, expected(padded, accepted), accepted
            return render(padded, style) + b" " * draw(st.integers(1, 3)), frozenset(
                {(RejectCode.TOO_LARGE, None)}), accepted
    return raw, expected(pairs, accepted), accepted


@FUZZ
@given(data=st.data(), event_=valid_events, style=styles)
def test_near_valid_json_gets_exactly_the_right_outcome(data: st.DataObject, event_: Event, style: Style) -> None:
    pairs = data.draw(spelled(event_))
    for _ in range(data.draw(st.sampled_from([1, 1, 1, 2, 3]))):
        pairs = _mutate(data.draw, pairs)
    raw, want, accepted = _respell(data.draw, pairs, style)
    result = decode_checked(raw, accepted, counter="near_valid")
    if isinstance(want, frozenset):
        event("outcome: rejected" + (f" ({next(iter(want))[0].value})" if len(want) == 1 else " (several faults)"))
    else:
        event("outcome: valid")
    assert_outcome(result, want, raw)


# -- (a) arbitrary bytes ----------------------------------------------------------------------------


@st.composite
def nested(draw: st.DrawFn) -> bytes:
    depth = draw(st.integers(1, 3000) | st.sampled_from([995, 996, 997, 998, 1000]))
    opener, closer = draw(st.sampled_from([(b"[", b"]"), (b'{"a":', b"}"), (b'{"type":"sale","x":[', b"]}")]))
    tail = draw(st.sampled_from([b"1", b"", b"null", b"[]"]))
    return opener * depth + tail + closer * draw(st.sampled_from([depth, max(0, depth - 1), depth + 1]))


@st.composite
def byte_edits(draw: st.DrawFn) -> bytes:
    """A valid event's bytes with a few bytes flipped, inserted or deleted."""
    raw = bytearray(render(draw(spelled(draw(valid_events))), draw(styles)))
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(raw)))
        how = draw(st.sampled_from(["flip", "insert", "delete"]))
        if how == "insert" or at == len(raw):
            raw[at:at] = draw(st.binary(min_size=1, max_size=3) | st.sampled_from([b'"', b"\\", b"{", b",", b":"]))
        elif how == "delete":
            del raw[at]
        else:
            raw[at] ^= 1 << draw(st.integers(0, 7))
    return bytes(raw)


def _json_text(value: Any) -> bytes:
    return render_value(value, Style()).encode("utf-8", "surrogatepass")


arbitrary_bytes = st.one_of(
    st.none(),
    st.binary(max_size=400),
    st.binary(min_size=1, max_size=64).flatmap(lambda chunk: st.integers(65_536 // len(chunk) - 2, 70_000 // len(
        chunk) + 2).map(lambda n: chunk * n)),
    nested(),
    byte_edits(),
    json_values.map(_json_text),
    st.lists(st.tuples(st.sampled_from(FIELD_NAMES), json_values), max_size=8).map(
        lambda pairs: render([("type", "sale"), *pairs])),
)


@FUZZ
@given(raw=arbitrary_bytes, accepted=topics)
def test_arbitrary_bytes_never_raise_and_match_the_model(raw: bytes | None, accepted: frozenset[str] | None) -> None:
    check_any(raw, accepted, counter="arbitrary")


@pytest.fixture(scope="module", autouse=True)
def _report_executions(pytestconfig: pytest.Config) -> Iterator[None]:
    yield
    reporter = pytestconfig.pluginmanager.get_plugin("terminalreporter")
    capture = pytestconfig.pluginmanager.get_plugin("capturemanager")
    if reporter is not None and capture is not None and CALLS:
        total = sum(CALLS.values())
        detail = ", ".join(f"{name} {count}" for name, count in sorted(CALLS.items()))
        with capture.global_and_fixture_disabled():
            reporter.write_line(f"\ndecoder fuzz: {total} decode_event calls ({detail})")


# -- what the fuzzers found, kept as plain examples ---------------------------------------------

_SALE = b'{"type":"sale","event_id":"e","sku":"S","node":"N","qty":1,"occurred_at":"2026-11-23T10:00:00Z"'


@pytest.mark.parametrize(("raw", "code", "field", "detail"), [
    # a quoted value holding msgspec's " - at `$." path marker was read as the path: code and field were wrong
    (b'{"type":"x - at `$.qty`","event_id":"e"}', RejectCode.UNKNOWN_TYPE, "type", "unknown type 'x - at `$.qty`'"),
    (_SALE + b',"type":"teleport - at `$.sku`"}', RejectCode.UNKNOWN_TYPE, "type", "unknown type"),
    (_SALE.replace(b'"sale"', b'"return"') + b',"disposition":"x - at `$.sku`"}', RejectCode.INVALID_VALUE,
     "disposition", "disposition must be one of restock, damaged, inspect"),
    # a lone number beyond double range was not_json; any other lone number is not_object
    (b"1e400", RejectCode.NOT_OBJECT, None, "expected a JSON object, got float"),
    # details named the wrong type, or were msgspec's words
    (_SALE.replace(b'"sku":"S"', b'"sku":1e400') + b"}", RejectCode.WRONG_TYPE, "sku", "sku: expected str, got float"),
    (_SALE.replace(b'"qty":1', b'"qty":' + b"9" * 5000) + b"}", RejectCode.QTY_OUT_OF_RANGE, "qty",
     "qty is out of range"),
])  # fmt: skip
def test_inputs_the_fuzzers_found(raw: bytes, code: RejectCode, field: str | None, detail: str) -> None:
    result = decode_checked(raw, counter="examples")
    assert isinstance(result, Rejection) and (result.code, result.field) == (code, field), result
    assert result.detail.startswith(detail), result.detail
