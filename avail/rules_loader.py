"""Reads a rules directory (YAML, contract section 3) into an ``atp.rules.RuleSet``.

Every ``*.yaml``/``*.yml`` file in the directory is read in name order and merged:
node lists and safety-stock rules are concatenated (file order is rule order), and
channels are merged by name. A node or channel defined twice, or ``safety_stock.default``
set twice, is an error naming both places. YAML is parsed with the safe loader only.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import yaml

from atp.exceptions import InvalidRule
from atp.rules import Channel, Node, NodeSelector, Publish, RuleSet, SafetyStockMatch, SafetyStockRule


class RulesError(InvalidRule):
    """A rules directory that cannot be loaded: file, line, key path and reason."""

    def __init__(self, file: Path | str, line: int | None, path: str, reason: str) -> None:
        super().__init__(path, reason)
        self.file = str(file)
        self.line = line

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where} {self.path}: {self.reason}" if self.path else f"{where}: {self.reason}"


@dataclass(frozen=True)
class _Origin:
    file: Path
    line: int | None


class _LineLoader(yaml.SafeLoader):
    """The safe loader, remembering the line of every mapping (``__line__`` key)."""


def _construct_mapping(loader: _LineLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    mapping: dict[Any, Any] = loader.construct_mapping(node, deep=True)
    mapping["__line__"] = node.start_mark.line + 1
    return mapping


_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)

_TOP_KEYS = frozenset({"nodes", "safety_stock", "channels"})
_MATCH_KEYS = frozenset({"sku", "node", "node_type", "tag"})
_SELECTOR_KEYS = frozenset({"types", "tags", "ids", "exclude"})
_CHANNEL_KEYS = frozenset(
    {"nodes", "node_buffer", "percent", "buffer", "min_available", "max_available", "publish"}
)


class _Reader:
    def __init__(self, file: Path) -> None:
        self.file = file

    def fail(self, where: Mapping[str, Any] | None, path: str, reason: str) -> RulesError:
        line = where.get("__line__") if isinstance(where, Mapping) else None
        return RulesError(self.file, line, path, reason)

    def mapping(self, value: Any, parent: Mapping[str, Any], path: str, keys: frozenset[str]) -> Mapping[str, Any]:
        if not isinstance(value, Mapping):
            raise self.fail(parent, path, f"must be a mapping, got {type(value).__name__}")
        unknown = sorted(k for k in value if k != "__line__" and k not in keys)
        if unknown:
            raise self.fail(value, f"{path}.{unknown[0]}", f"unknown key (expected one of {', '.join(sorted(keys))})")
        return value

    def integer(self, value: Any, where: Mapping[str, Any], path: str, minimum: int = 0) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.fail(where, path, f"must be a whole number, got {value!r}")
        if value < minimum:
            raise self.fail(where, path, f"must be {minimum} or more, got {value}")
        return value

    def text(self, value: Any, where: Mapping[str, Any], path: str) -> str:
        if not isinstance(value, str) or not value:
            raise self.fail(where, path, f"must be a non-empty string, got {value!r}")
        return value

    def strings(self, value: Any, where: Mapping[str, Any], path: str) -> frozenset[str]:
        if value is None:
            return frozenset()
        if not isinstance(value, list):
            raise self.fail(where, path, f"must be a list, got {type(value).__name__}")
        return frozenset(self.text(v, where, f"{path}[{i}]") for i, v in enumerate(value))


def _read_file(file: Path) -> Mapping[str, Any]:
    try:
        document = yaml.load(file.read_text(encoding="utf-8"), Loader=_LineLoader)  # noqa: S506 - a SafeLoader
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        line = mark.line + 1 if mark is not None else None
        raise RulesError(file, line, "", f"not valid YAML: {exc.problem}") from exc
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise RulesError(file, None, "", f"cannot be read: {exc}") from exc
    if document is None:
        return {}
    reader = _Reader(file)
    return reader.mapping(document, {}, "", _TOP_KEYS)


@dataclass
class _Merged:
    """The rule set being assembled across files, with where each piece came from."""

    nodes: dict[str, Node]
    node_origin: dict[str, _Origin]
    channels: dict[str, Channel]
    channel_origin: dict[str, _Origin]
    safety_stock_rules: list[SafetyStockRule]
    safety_stock_default: int = 0
    default_origin: _Origin | None = None


def load_rules(directory: Path | str) -> RuleSet:
    """Loads and validates every YAML file in ``directory`` into one rule set.

    Raises:
        RulesError: naming file, line, key path and a plain-language reason.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise RulesError(directory, None, "", "is not a directory")
    files = sorted(p for p in directory.iterdir() if p.suffix in (".yaml", ".yml") and p.is_file())
    merged = _Merged({}, {}, {}, {}, [])
    for file in files:
        document = _read_file(file)
        reader = _Reader(file)
        _merge_nodes(reader, document, merged)
        if "safety_stock" in document:
            _merge_safety_stock(reader, document, merged)
        if "channels" in document:
            _merge_channels(reader, document, merged)
    return RuleSet(
        nodes=merged.nodes,
        safety_stock_default=merged.safety_stock_default,
        safety_stock_rules=tuple(merged.safety_stock_rules),
        channels=merged.channels,
    )


def _merge_nodes(reader: _Reader, document: Mapping[str, Any], merged: _Merged) -> None:
    for i, raw in enumerate(document.get("nodes") or []):
        path = f"nodes[{i}]"
        entry = reader.mapping(raw, document, path, frozenset({"id", "type", "tags"}))
        node_id = reader.text(entry.get("id"), entry, f"{path}.id")
        if node_id in merged.nodes:
            first = merged.node_origin[node_id]
            raise reader.fail(entry, f"{path}.id", f"node {node_id!r} is already defined at {first.file}:{first.line}")
        node_type = reader.text(entry.get("type"), entry, f"{path}.type")
        merged.nodes[node_id] = Node(node_id, node_type, reader.strings(entry.get("tags"), entry, f"{path}.tags"))
        merged.node_origin[node_id] = _Origin(reader.file, entry.get("__line__"))


def _merge_safety_stock(reader: _Reader, document: Mapping[str, Any], merged: _Merged) -> None:
    section = reader.mapping(document["safety_stock"], document, "safety_stock", frozenset({"default", "rules"}))
    if "default" in section:
        if merged.default_origin is not None:
            first = merged.default_origin
            raise reader.fail(section, "safety_stock.default", f"already set at {first.file}:{first.line}")
        merged.safety_stock_default = reader.integer(section["default"], section, "safety_stock.default")
        merged.default_origin = _Origin(reader.file, section.get("__line__"))
    for i, raw in enumerate(section.get("rules") or []):
        path = f"safety_stock.rules[{i}]"
        entry = reader.mapping(raw, section, path, frozenset({"match", "units"}))
        match = reader.mapping(entry.get("match"), entry, f"{path}.match", _MATCH_KEYS)
        criteria = {k: reader.text(v, match, f"{path}.match.{k}") for k, v in match.items() if k != "__line__"}
        if not criteria:
            raise reader.fail(match, f"{path}.match", "needs at least one of sku, node, node_type, tag")
        units = reader.integer(entry.get("units"), entry, f"{path}.units")
        merged.safety_stock_rules.append(SafetyStockRule(SafetyStockMatch(**criteria), units))


def _merge_channels(reader: _Reader, document: Mapping[str, Any], merged: _Merged) -> None:
    section = document["channels"]
    if not isinstance(section, Mapping):
        raise reader.fail(document, "channels", "must be a mapping of channel name to settings")
    for name, raw in section.items():
        if name == "__line__":
            continue
        path = f"channels.{name}"
        if name in merged.channels:
            first = merged.channel_origin[name]
            where = raw if isinstance(raw, Mapping) else section
            raise reader.fail(where, path, f"channel {name!r} is already defined at {first.file}:{first.line}")
        entry = reader.mapping(raw, section, path, _CHANNEL_KEYS)
        merged.channels[name] = _channel(reader, name, entry)
        merged.channel_origin[name] = _Origin(reader.file, entry.get("__line__"))


def _channel(reader: _Reader, name: str, entry: Mapping[str, Any]) -> Channel:
    path = f"channels.{name}"
    selector = reader.mapping(entry.get("nodes"), entry, f"{path}.nodes", _SELECTOR_KEYS)
    nodes = NodeSelector(**{k: reader.strings(selector.get(k), selector, f"{path}.nodes.{k}") for k in _SELECTOR_KEYS})
    node_buffer_raw = entry.get("node_buffer") or {}
    if not isinstance(node_buffer_raw, Mapping):
        raise reader.fail(entry, f"{path}.node_buffer", "must be a mapping of node type to units")
    node_buffer = {
        t: reader.integer(units, node_buffer_raw, f"{path}.node_buffer.{t}")
        for t, units in node_buffer_raw.items() if t != "__line__"
    }
    percent = entry.get("percent", 100)
    if isinstance(percent, bool) or not isinstance(percent, int | float):
        raise reader.fail(entry, f"{path}.percent", f"must be a number between 0 and 100, got {percent!r}")
    publish_raw = reader.mapping(entry.get("publish") or {}, entry, f"{path}.publish",
                                 frozenset({"max_per_second", "min_interval_ms"}))
    max_per_second = publish_raw.get("max_per_second")
    publish = Publish(
        None if max_per_second is None else reader.integer(max_per_second, publish_raw,
                                                           f"{path}.publish.max_per_second", 1),
        reader.integer(publish_raw.get("min_interval_ms", 0), publish_raw, f"{path}.publish.min_interval_ms"),
    )
    max_available = entry.get("max_available")
    try:
        return Channel(
            name, nodes, node_buffer, Fraction(str(percent)),
            reader.integer(entry.get("buffer", 0), entry, f"{path}.buffer"),
            reader.integer(entry.get("min_available", 0), entry, f"{path}.min_available"),
            None if max_available is None else reader.integer(max_available, entry, f"{path}.max_available"),
            publish,
        )
    except InvalidRule as exc:
        raise reader.fail(entry, exc.path, exc.reason) from exc
