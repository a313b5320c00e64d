"""Safe YAML loading that remembers where every mapping and key was written."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml


@dataclass(frozen=True, slots=True)
class Problem:
    """One finding about a rules directory, worded for the person who edits the files."""

    file: str
    line: int | None
    path: str
    message: str
    severity: str = "error"  # or "warning": reported, but the rules still load

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        kind = "" if self.severity == "error" else "warning: "
        return f"{where} {self.path}: {kind}{self.message}" if self.path else f"{where}: {kind}{self.message}"


class Located(dict[str, Any]):
    """A YAML mapping that knows its own line and the line of each of its keys."""

    line: int | None = None

    def __init__(self) -> None:
        super().__init__()
        self.key_lines: dict[str, int] = {}

    def line_of(self, key: str) -> int | None:
        return self.key_lines.get(key, self.line)


class LocatedList(list[Any]):
    line: int | None = None
    item_lines: list[int]

    def line_of(self, index: int) -> int | None:
        return self.item_lines[index] if index < len(self.item_lines) else self.line


class DuplicateKey(Exception):
    def __init__(self, key: str, line: int, first: int) -> None:
        super().__init__(key)
        self.key, self.line, self.first = key, line, first


class _Loader(yaml.SafeLoader):
    pass


def _mapping(loader: _Loader, node: yaml.MappingNode) -> Located:
    located = Located()
    located.line = node.start_mark.line + 1
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        key = str(key) if not isinstance(key, str) else key
        line = key_node.start_mark.line + 1
        if key in located:
            raise DuplicateKey(key, line, located.key_lines[key])
        located[key] = loader.construct_object(value_node, deep=True)
        located.key_lines[key] = line
    return located


def _sequence(loader: _Loader, node: yaml.SequenceNode) -> LocatedList:
    located = LocatedList(loader.construct_object(child, deep=True) for child in node.value)
    located.line = node.start_mark.line + 1
    located.item_lines = [child.start_mark.line + 1 for child in node.value]
    return located


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping)
_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, _sequence)


def read_text(file: Path, shown_as: str) -> tuple[str | None, Problem | None]:
    try:
        return file.read_text(encoding="utf-8"), None
    except (OSError, UnicodeDecodeError) as exc:
        return None, Problem(shown_as, None, "", f"cannot be read: {exc}")


def parse_yaml(text: str, shown_as: str) -> tuple[Any, Problem | None]:
    """Parses one file's text; a problem (with its line) instead of an exception on bad YAML."""
    try:
        return yaml.load(text, Loader=_Loader), None  # noqa: S506 - a SafeLoader subclass: no object tags
    except DuplicateKey as exc:
        return None, Problem(shown_as, exc.line, exc.key, f"key given twice (first at line {exc.first})")
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        line = mark.line + 1 if mark is not None else None
        return None, Problem(shown_as, line, "", f"not valid YAML: {exc.problem}")
    except yaml.YAMLError as exc:
        return None, Problem(shown_as, None, "", f"not valid YAML: {exc}")
