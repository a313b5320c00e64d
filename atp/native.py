"""Which build of the core runs: native (compiled with mypyc at install) or pure Python.

``setup.py`` compiles ``COMPILED`` into extension modules that sit next to their sources,
and Python's import prefers an extension module to a source file. ``AVAIL_NATIVE=0`` makes
the same install run the sources instead, so the test suite runs on both builds and an
operator can rule the compiled code out without reinstalling. In a source tree, a compiled
module older than its source (edited since the install) makes it run the sources too, with a warning, so an
edit is never tested against stale C (``use_sources_unless_wanted``). This module is never
compiled itself and imports nothing of the project: ``setup.py`` reads it.

What compiling asks of the code: values that cross processes (Bytewax pickles the items it
moves between workers) pickle as a call of their constructor (``atp.values.ByFields``), a
SKU's state through its flat form. Classes whose instances never hold a reference back to
themselves carry ``acyclic=True``, so the cycle collector neither tracks nor walks them: the
long-lived leaves (``Position``, ``Reservation``, ``Transfer``, ``SkuState`` and its
``PendingChange``) and every ``ByFields`` value, the events and messages made per event or per
write among them (tracked, they filled the young generation that each collection walks). A
dataclass's generated ``__init__`` stays Python, so the classes built per event or per SKU
write theirs out.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import os
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

COMPILED = (
    "atp.allocation",
    "atp.changes",
    "atp.encoding",
    "atp.events",
    "atp.explain",
    "atp.outcomes",
    "atp.pending",
    "atp.positions",
    "atp.rejections",
    "atp.reservations",
    "atp.state",
    "atp.supply",
    "atp.values",
    "dataflows.kafka_io",
    "dataflows.logic",
    "dataflows.messages",
    "dataflows.redis_sink",
    "dataflows.shard_key",
    "dataflows.shards",
    "projection.codec",
)
"""Modules compiled to C at install: the flow's per-event path. Not ``atp.rules`` (its ``cached_property`` memos need an
instance ``__dict__``, which a native class has not), nor ``atp.decoding`` (msgspec reads class
keywords that compiled classes drop), nor ``atp.exceptions`` (other packages subclass its
errors, which a native class refuses), nor package ``__init__`` modules."""

SWITCH = "AVAIL_NATIVE"
"""Environment variable: ``0`` runs the pure-Python sources even where compiled modules are installed."""


def wanted(environ: dict[str, str] | os._Environ[str] = os.environ) -> bool:
    return environ.get(SWITCH, "1").strip().lower() not in ("0", "false", "no", "off")


class _Sources(importlib.abc.MetaPathFinder):
    """Finds the ``.py`` file of a compiled module, ahead of its extension module."""

    def find_spec(self, fullname: str, path: Sequence[str] | None,
                  target: ModuleType | None = None) -> importlib.machinery.ModuleSpec | None:
        if fullname not in COMPILED:
            return None
        name = fullname.rpartition(".")[2] + ".py"
        for entry in path or sys.path:
            source = Path(entry) / name
            if source.is_file():
                return importlib.util.spec_from_file_location(fullname, source)
        return None


def stale(root: Path) -> list[str]:
    """Compiled modules under ``root`` older than their source: edited since the last install.

    The compiled modules call one another directly, so one stale module means the sources
    for all of them (``use_sources_unless_wanted``).
    """
    found = []
    for name in COMPILED:
        source = root / (name.replace(".", "/") + ".py")
        for compiled in source.parent.glob(source.stem + ".*.so"):
            if source.is_file() and source.stat().st_mtime > compiled.stat().st_mtime:
                found.append(name)
    return found


def use_sources_unless_wanted() -> None:
    """Called first thing by each package holding compiled modules; idempotent."""
    if any(isinstance(finder, _Sources) for finder in sys.meta_path):
        return
    if not wanted():
        sys.meta_path.insert(0, _Sources())
        return
    root = Path(__file__).resolve().parents[1]
    # Only in a source tree (an editable install): a wheel's files all carry its install time,
    # in no set order, so there an older compiled module means nothing.
    edited = stale(root) if (root / "setup.py").is_file() else []
    if edited:
        warnings.warn(f"the compiled core is older than {', '.join(edited)}: running the pure-Python sources; "
                      f"make install (or pip install -e .) compiles it again", RuntimeWarning, stacklevel=2)
        sys.meta_path.insert(0, _Sources())


def build() -> str:
    """``native`` when the core runs compiled, else ``pure``."""
    import atp.state  # noqa: PLC0415 - only to ask where it came from

    return "native" if Path(atp.state.__file__ or "").suffix != ".py" else "pure"
