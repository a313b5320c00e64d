"""Reads a rules directory (YAML, contract sections 3 and 7) into an ``atp.rules.RuleSet``.

Every ``*.yaml``/``*.yml`` file in the directory is read in name order and merged: node
lists and safety-stock rules are concatenated (file order is rule order) and channels
are merged by name. A node or channel defined twice, ``safety_stock.default`` set twice,
or a ``promise`` section in two files, is an error naming both places. Every problem is
reported with file, line, key path and a plain-language reason (``rules/channels.yaml:14
channels.amazon.percent: must be between 0 and 100, got 120``); warnings do not stop the
rules from loading.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path, PurePath
from typing import Any

from atp.exceptions import InvalidRule
from atp.rules import (
    HORIZON_DAYS_DEFAULT,
    Channel,
    Node,
    NodeSelector,
    Promise,
    Publish,
    RuleSet,
    SafetyStockMatch,
    SafetyStockRule,
)
from rulebook.checks import cross_check
from rulebook.located_yaml import Located, Problem, parse_yaml, read_text
from rulebook.schema import RULES, Checker, validate


class RulesError(InvalidRule):
    """A rules directory that cannot be loaded; ``problems`` lists every reason."""

    def __init__(self, problems: list[Problem]) -> None:
        first = problems[0]
        super().__init__(first.path, first.message)
        self.problems = problems

    def __str__(self) -> str:
        return "\n".join(str(p) for p in self.problems)


@dataclass(frozen=True)
class CheckedRules:
    """The outcome of reading a directory: the rule set (None if any error) and every finding."""

    rules: RuleSet | None
    problems: list[Problem]

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "error"]

    @property
    def warnings(self) -> list[Problem]:
        return [p for p in self.problems if p.severity != "error"]


def rule_files(directory: Path) -> list[Path]:
    return sorted(p for p in directory.iterdir() if p.suffix in (".yaml", ".yml") and p.is_file())


def load_rules(directory: Path | str) -> RuleSet:
    """The rule set of ``directory``; raises ``RulesError`` listing every error."""
    checked = check_rules(directory)
    if checked.rules is None:
        raise RulesError(checked.errors)
    return checked.rules


def read_sources(directory: Path | str) -> tuple[dict[str, str], list[Problem]]:
    """Every rules file's text by its shown name (``rules/channels.yaml``), in name order."""
    directory = Path(directory)
    if not directory.is_dir():
        return {}, [Problem(str(directory), None, "", "is not a directory")]
    sources: dict[str, str] = {}
    problems: list[Problem] = []
    for file in rule_files(directory):
        shown = str(directory / file.name)
        text, problem = read_text(file, shown)
        if problem is not None:
            problems.append(problem)
        elif text is not None:
            sources[shown] = text
    if not sources and not problems:
        problems.append(Problem(str(directory), None, "", "holds no .yaml rules files"))
    return sources, problems


def check_rules(directory: Path | str) -> CheckedRules:
    """Reads, validates, merges and cross-checks every YAML file of ``directory``."""
    sources, problems = read_sources(directory)
    if problems:
        return CheckedRules(None, problems)
    return check_sources(sources)


def published_rules(sources: dict[str, str]) -> RuleSet | None:
    """The rule set of the files a flow published (``{prefix}:rules:source``); None if they do not load.

    Files are named by file name, as merchandisers know them (``safety_stock.yaml:12``).
    """
    return check_sources({PurePath(name).name: text for name, text in sources.items()}).rules


def check_sources(sources: dict[str, str]) -> CheckedRules:
    """Validates, merges and cross-checks rules files given as shown name → text (in order)."""
    merged = _Merged()
    for shown, text in sources.items():
        document, problem = parse_yaml(text, shown)
        check = Checker(shown)
        if problem is not None:
            merged.problems.append(problem)
            continue
        if document is None:
            continue
        if validate(document, RULES, "", 1, check):
            merged.add(document, check)
        merged.problems.extend(check.problems)
    if any(p.severity == "error" for p in merged.problems):
        return CheckedRules(None, merged.problems)
    rules = merged.build()
    problems = merged.problems + cross_check(rules, merged.origins, merged.channel_sources, merged.promise_source)
    if any(p.severity == "error" for p in problems):
        return CheckedRules(None, problems)
    return CheckedRules(rules, problems)


@dataclass
class _Merged:
    nodes: dict[str, Node] = field(default_factory=dict)
    channels: dict[str, Channel] = field(default_factory=dict)
    channel_sources: dict[str, tuple[str, Located]] = field(default_factory=dict)
    safety_stock_rules: list[SafetyStockRule] = field(default_factory=list)
    safety_stock_default: int = 0
    promise: Promise = field(default_factory=Promise)
    promise_source: tuple[str, Located] | None = None
    origins: dict[str, str] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)

    def add(self, document: Located, check: Checker) -> None:
        for i, entry in enumerate(document.get("nodes") or []):
            where = f"{check.file}:{entry.line}"
            first = self.origins.get(f"node:{entry['id']}")
            if first is not None:
                message = f"node {entry['id']!r} is already defined at {first}"
                check.report(entry.line_of("id"), f"nodes[{i}].id", message)
                continue
            self.origins[f"node:{entry['id']}"] = where
            self.nodes[entry["id"]] = Node(entry["id"], entry["type"], frozenset(entry.get("tags") or ()))
        section: Located = document.get("safety_stock") or Located()
        if "default" in section:
            first = self.origins.get("safety_stock.default")
            if first is not None:
                check.report(section.line_of("default"), "safety_stock.default", f"already set at {first}")
            self.origins["safety_stock.default"] = f"{check.file}:{section.line_of('default')}"
            self.safety_stock_default = section["default"]
        for entry in section.get("rules") or []:
            match = SafetyStockMatch(**{k: v for k, v in entry["match"].items()})
            self.safety_stock_rules.append(SafetyStockRule(match, entry["units"], f"{check.file}:{entry.line}"))
        for name, entry in (document.get("channels") or {}).items():
            first = self.origins.get(f"channel:{name}")
            if first is not None:
                check.report(document["channels"].line_of(name), f"channels.{name}",
                             f"channel {name!r} is already defined at {first}")
                continue
            self.origins[f"channel:{name}"] = f"{check.file}:{document['channels'].line_of(name)}"
            channel = _channel(name, entry, check)
            if channel is not None:
                self.channels[name] = channel
                self.channel_sources[name] = (check.file, entry)
        if "promise" in document:
            self._add_promise(document, check)

    def _add_promise(self, document: Located, check: Checker) -> None:
        where = f"{check.file}:{document.line_of('promise')}"
        first = self.origins.get("promise")
        if first is not None:
            check.report(document.line_of("promise"), "promise", f"already set at {first}")
            return
        self.origins["promise"] = where
        section: Located = document["promise"]
        # the schema has checked every value, so Promise cannot refuse them
        self.promise = Promise(section.get("horizon_days", HORIZON_DAYS_DEFAULT), dict(section.get("lead_days") or {}))
        self.promise_source = (check.file, section)

    def build(self) -> RuleSet:
        return RuleSet(self.nodes, self.safety_stock_default, tuple(self.safety_stock_rules), self.channels,
                       self.origins.get("safety_stock.default"), self.promise)


def _channel(name: str, entry: Located, check: Checker) -> Channel | None:
    selector = entry["nodes"]
    nodes = NodeSelector(**{k: frozenset(selector.get(k) or ()) for k in ("types", "tags", "ids", "exclude")})
    publish_entry = entry.get("publish") or {}
    publish = Publish(publish_entry.get("max_per_second"), publish_entry.get("min_interval_ms", 0))
    try:
        return Channel(name, nodes, dict(entry.get("node_buffer") or {}), Fraction(str(entry.get("percent", 100))),
                       entry.get("buffer", 0), entry.get("min_available", 0), entry.get("max_available"), publish,
                       entry.get("future_supply", False))
    except InvalidRule as exc:
        key = exc.path.removeprefix(f"channels.{name}.").split(".")[0]
        line: Any = entry.line_of(key) if isinstance(entry, Located) else None
        check.report(line, exc.path, exc.reason)
        return None
