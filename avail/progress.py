"""Progress bars for the commands' long work: on a terminal only, on stderr, so output stays clean for pipes."""

from __future__ import annotations

import shutil
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Never, Protocol

from tqdm import tqdm


class Progress(Protocol):
    """What long work reports to (a tqdm bar): how much there is, and how much is done."""

    total: float | None
    n: float

    def update(self, n: float | None = 1) -> bool | None: ...

    def refresh(self) -> object: ...


@contextmanager
def progress_bar(what: str, unit: str, total: int | None = None) -> Iterator[tqdm[Never]]:
    """A bar that draws only when stderr is a terminal (tqdm's ``disable=None``), and is gone when done."""
    size = shutil.get_terminal_size()  # a terminal that does not tell its size: 80x24 (tqdm would draw nothing)
    with tqdm(desc=what, unit=unit, total=total, disable=None, file=sys.stderr, leave=False,
              ncols=size.columns, nrows=size.lines) as bar:
        yield bar
