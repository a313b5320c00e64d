"""Where a process's time went, from py-spy's collapsed stacks (``py-spy record --format raw``).

Prints the functions with the most samples on the stack (inclusive) and at the top of
it (self), as shares of all samples, and buckets the inclusive time into the flow's
parts (decode, apply, Redis sink, snapshots, feed, Bytewax). Each line of the input is
``frame;frame;...;frame count``, a frame being ``function (file:line)``.
``python -m load_tests.profile_summary results/flow_profile.txt``
"""

from __future__ import annotations

import re
import sys
from collections import Counter
from pathlib import Path

_FRAME = re.compile(r"^(?P<function>.*?) \((?P<file>[^:()]*)(?::\d+)?\)$")

PARTS = {  # a sample belongs to the first part, in this order, with a frame on its stack
    "state snapshots (serialising)": ("def snapshot", "def to_bytes"),
    "decode (atp.decoding)": ("atp/decoding.py",),
    "Redis sink": ("dataflows/redis_sink.py",),
    "delta feed (throttle, publish)": ("dataflows/throttle.py", "dataflows/feed_sink.py"),
    "apply (atp state, allocation)": ("atp/state.py",),
    "SKU step bookkeeping (dataflows.logic, shards)": ("dataflows/logic.py", "dataflows/shards.py"),
    "Kafka poll": ("def next_batch",),
}


def _name(frame: str) -> str:
    match = _FRAME.match(frame)
    if match is None:
        return frame
    short = "/".join(Path(match["file"]).parts[-2:])
    return f"{match['function']} ({short})"


def summarise(stacks: Path, out: Path | None = None, top: int = 25) -> str:
    inclusive: Counter[str] = Counter()
    self_time: Counter[str] = Counter()
    parts: Counter[str] = Counter()
    total = 0
    for line in stacks.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        total += count
        frames = [_name(f) for f in stack.split(";")]
        for name in set(frames):
            inclusive[name] += count
        self_time[frames[-1]] += count
        parts[_part(stack)] += count
    if not total:
        return "no samples"
    lines = [f"{total} samples", "", "by part of the flow (each sample counted once):"]
    lines += [f"  {100 * n / total:5.1f} %  {part}" for part, n in parts.most_common()]
    lines += ["", "inclusive:"] + [f"  {100 * n / total:5.1f} %  {f}" for f, n in inclusive.most_common(top)]
    lines += ["", "self:"] + [f"  {100 * n / total:5.1f} %  {f}" for f, n in self_time.most_common(top)]
    text = "\n".join(lines)
    if out is not None:
        out.write_text(text + "\n")
    return text


def _part(stack: str) -> str:
    frames = stack.split(";")
    for part, needles in PARTS.items():
        if any(_matches(frame, needle) for frame in frames for needle in needles):
            return part
    return "Bytewax runtime and the rest"


def _matches(frame: str, needle: str) -> bool:
    if needle.startswith("def "):  # a method or function of that name, in any class
        function = frame.split(" (", 1)[0]
        return function == needle[4:] or function.endswith("." + needle[4:])
    return needle in frame


if __name__ == "__main__":
    print(summarise(Path(sys.argv[1])))
