"""Coverage-guided fuzzing of the decoder with atheris (opt-in; ``make fuzz``).

Run from the repository root::

    python -m load_tests.fuzz_decoder_atheris -runs=2000000
    python -m load_tests.fuzz_decoder_atheris -max_total_time=300 -jobs=2

Any libFuzzer flag works. Each input's first byte picks the topic (none, or one of the
six) and the rest is the Kafka value. Every input is checked like
``tests/reliability/test_fuzz_decoder.py`` does: ``decode_event`` never raises, the dead
letter serialises with the original bytes, and the outcome is the reference model's
(Python's json parser plus ``expected``). Coverage of both the decoder and the
model guides the mutations. A failing input is saved as ``crash-*`` under
``.avail/fuzz-decoder/``; replay it by passing the file as the only argument. The corpus
grows in ``.avail/fuzz-decoder/corpus`` (seeded with valid events of every type) and a
dictionary of JSON and field tokens steers the mutations.
"""

from __future__ import annotations

import sys
import time
from collections import Counter
from pathlib import Path

import atheris

# the reference model is instrumented too: its branches are the contract's cases, a good map to explore
with atheris.instrument_imports(include=["atp", "tests.reliability.test_fuzz_decoder"]):
    from atp.events import TOPIC_TYPES, TYPE_NAMES, Event
    from atp.rejections import Rejection
    from tests.reliability.test_fuzz_decoder import assert_outcome, decode_checked, oracle
from atp.encoding import encode_event
from tests.unit.atp.test_decoding import VALID

HOME = Path(".avail/fuzz-decoder")
TOPICS: list[frozenset[str] | None] = [None, *sorted(TOPIC_TYPES.values(), key=sorted)]
TOKENS = [
    '"type"', '"sale"', '"sale_void"', '"reserve"', '"release"', '"pick"', '"transfer_shipped"', '"return"',
    '"transfer_received"', '"transfer_cancelled"', '"receipt"', '"adjustment"', '"snapshot"', '"event_id"',
    '"sku"', '"node"', '"qty"', '"occurred_at"', '"as_of"', '"expires_at"', '"on_hand"', '"reservation_id"',
    '"channel"', '"transfer_id"', '"from_node"', '"to_node"', '"disposition"', '"restock"', '"reason"',
    '"reference"', "NaN", "Infinity", "1e400", "-0", "1000001", "18446744073709551616", "true", "null", "\\ud800",
    "\\u0000", "2026-11-23T10:15:00.123Z", "+05:30", "T23:59:60", "\xef\xbb\xbf", "\xff",
]

STATS: Counter[str] = Counter()
started = time.monotonic()


def test_one_input(data: bytes) -> None:
    accepted = TOPICS[data[0] % len(TOPICS)] if data else None
    value = data[1:] if data else None
    result = decode_checked(value, accepted, counter="atheris")
    want = oracle(value, accepted)
    if want is not None:
        assert_outcome(result, want, value)
    STATS["event" if isinstance(result, Event) else result.code.value if isinstance(result, Rejection) else "?"] += 1
    runs = sum(STATS.values())
    if runs & (runs - 1) == 0 and runs >= 1024:  # a line at every power of two
        shares = ", ".join(f"{name} {count}" for name, count in STATS.most_common())
        print(f"#{runs} decoder inputs in {time.monotonic() - started:.0f} s: {shares}", file=sys.stderr, flush=True)


def _seed(corpus: Path) -> None:
    corpus.mkdir(parents=True, exist_ok=True)
    for name, (_, event) in VALID.items():
        topic = next(i for i, types in enumerate(TOPICS) if types is not None and TYPE_NAMES[type(event)] in types)
        (corpus / f"seed-{name}").write_bytes(bytes([topic]) + encode_event(event))


def _dict_entry(token: str) -> str:
    """A libFuzzer dictionary line: the token's UTF-8 bytes in quotes, escaped."""
    return '"' + "".join(chr(b) if 32 <= b < 127 and b not in b'"\\' else f"\\x{b:02x}" for b in token.encode()) + '"'


def main(argv: list[str]) -> None:
    HOME.mkdir(parents=True, exist_ok=True)
    corpus = HOME / "corpus"
    _seed(corpus)
    dictionary = HOME / "json.dict"
    dictionary.write_text("".join(_dict_entry(token) + "\n" for token in TOKENS))
    flags = [a for a in argv[1:] if a.startswith("-")]
    paths = [a for a in argv[1:] if not a.startswith("-")]
    if not any(f.startswith("-dict=") for f in flags):
        flags.append(f"-dict={dictionary}")
    if not any(f.startswith("-artifact_prefix=") for f in flags):
        flags.append(f"-artifact_prefix={HOME}/")
    if not any(f.startswith("-max_len=") for f in flags):
        flags.append("-max_len=8192")
    atheris.Setup([argv[0], *flags, *(paths or [str(corpus)])], test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main(sys.argv)
