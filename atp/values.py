"""Value classes that pickle by their constructor, compiled (mypyc) or not."""

from __future__ import annotations

from dataclasses import fields
from typing import Any

from mypy_extensions import mypyc_attr


@mypyc_attr(acyclic=True)
class ByFields:
    """For a dataclass whose ``__init__`` takes its fields in order: pickles as that call.

    Bytewax pickles the items it moves between workers. A class compiled with mypyc has
    neither the ``__slots__`` nor the ``__setstate__`` a slotted dataclass pickles through,
    and a frozen one refuses the attribute writes of unpickling; calling the constructor
    works for both builds.
    """

    __slots__ = ()

    def __reduce__(self) -> tuple[type[Any], tuple[Any, ...]]:
        return type(self), tuple(getattr(self, f.name) for f in fields(self))  # type: ignore[arg-type]
