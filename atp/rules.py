"""The merchandisers' rule set (contract sections 3 and 7) as immutable values.

Loading YAML happens outside ``atp``; here rules are plain objects built in code.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from fnmatch import translate
from fractions import Fraction
from functools import cached_property

from atp.exceptions import InvalidRule

_SKUS_REMEMBERED = 65_536
"""SKUs whose matching safety-stock rules a rule set remembers (then it starts over); as many
(matching rules, node) pairs."""

HORIZON_DAYS_DEFAULT = 30
HORIZON_DAYS_MAX = 180
LEAD_DAYS_MAX = 365
"""A year: a longer lead time is a typo, and it would push supply past any horizon anyway."""


@dataclass(frozen=True)
class Node:
    id: str
    type: str
    tags: frozenset[str] = frozenset()


@dataclass(frozen=True)
class SafetyStockMatch:
    """Every given criterion must hold; ``sku`` is a glob (``TV-*``)."""

    sku: str | None = None
    node: str | None = None
    node_type: str | None = None
    tag: str | None = None

    def matches_node(self, node_id: str, node: Node | None) -> bool:
        """Whether the node criteria hold (the SKU glob is checked once per SKU: ``RuleSet.safety_stock``)."""
        if self.node is not None and self.node != node_id:
            return False
        if self.node_type is not None and (node is None or node.type != self.node_type):
            return False
        return self.tag is None or (node is not None and self.tag in node.tags)


@dataclass(frozen=True)
class SafetyStockRule:
    match: SafetyStockMatch
    units: int
    origin: str | None = field(default=None, compare=False)
    """``file:line`` it was read from (explanations); no part of the rule's meaning or version."""


@dataclass(frozen=True)
class NodeSelector:
    """Eligible nodes: the union of types, tags and ids, minus ``exclude`` ids."""

    types: frozenset[str] = frozenset()
    tags: frozenset[str] = frozenset()
    ids: frozenset[str] = frozenset()
    exclude: frozenset[str] = frozenset()

    def selects(self, node: Node) -> bool:
        if node.id in self.exclude:
            return False
        return node.type in self.types or node.id in self.ids or bool(node.tags & self.tags)


@dataclass(frozen=True)
class Publish:
    max_per_second: int | None = None
    min_interval_ms: int = 0


@dataclass(frozen=True)
class Channel:
    name: str
    nodes: NodeSelector
    node_buffer: Mapping[str, int] = field(default_factory=dict)
    percent: Fraction | int = 100
    buffer: int = 0
    min_available: int = 0
    max_available: int | None = None
    publish: Publish = Publish()
    future_supply: bool = False
    """Whether the channel promises expected supply for later days (contract section 7), not only stock on hand."""

    def __post_init__(self) -> None:
        where = f"channels.{self.name}"
        if not isinstance(self.percent, Fraction):
            # str() keeps 12.5 exact where Fraction(float) would not
            object.__setattr__(self, "percent", Fraction(str(self.percent)))
        if not 0 <= self.percent <= 100:
            raise InvalidRule(f"{where}.percent", f"must be between 0 and 100, got {self.percent}")
        if self.publish.max_per_second is not None and self.publish.max_per_second < 1:
            raise InvalidRule(
                f"{where}.publish.max_per_second",
                f"must be 1 or more (leave it out for no limit), got {self.publish.max_per_second}",
            )
        if self.publish.min_interval_ms < 0:
            raise InvalidRule(
                f"{where}.publish.min_interval_ms", f"must be 0 or more, got {self.publish.min_interval_ms}"
            )
        for knob in ("buffer", "min_available"):
            if getattr(self, knob) < 0:
                raise InvalidRule(f"{where}.{knob}", f"must be 0 or more, got {getattr(self, knob)}")
        if self.max_available is not None and self.max_available < self.min_available:
            raise InvalidRule(
                f"{where}.max_available",
                f"must be at least min_available ({self.min_available}), got {self.max_available}",
            )
        for node_type, units in self.node_buffer.items():
            if units < 0:
                raise InvalidRule(f"{where}.node_buffer.{node_type}", f"must be 0 or more, got {units}")

    def shown(self, pool: int) -> int:
        """The channel formula from the pool (Σ contrib − unsourced reserved)."""
        numerator, scale = self._percent_parts
        shown = pool * numerator // scale - self.buffer
        if shown < self.min_available:
            return 0
        if shown < 0:
            return 0
        if self.max_available is not None and shown > self.max_available:
            return self.max_available
        return shown


    @cached_property
    def _percent_parts(self) -> tuple[int, int]:
        """``percent`` as (numerator, 100 × denominator).

        A Fraction's parts are Python properties, and ``shown`` runs for every channel
        number a SKU write changes.
        """
        percent = Fraction(self.percent)
        return percent.numerator, 100 * percent.denominator


@dataclass(frozen=True)
class Promise:
    """How far ahead, and from when, expected supply may be promised (contract section 7).

    A line's sellable day is max(date(expected_at), today + 1) + ``lead_days_for(type)``;
    lines sellable after today + ``horizon_days`` are left out.
    """

    horizon_days: int = HORIZON_DAYS_DEFAULT
    lead_days: Mapping[str, int] = field(default_factory=dict)
    """Per node type: days from arrival to sellable; a type not listed takes 0."""

    def __post_init__(self) -> None:
        if not 1 <= self.horizon_days <= HORIZON_DAYS_MAX:
            raise InvalidRule("promise.horizon_days",
                              f"must be between 1 and {HORIZON_DAYS_MAX}, got {self.horizon_days}")
        for node_type, days in self.lead_days.items():
            if not 0 <= days <= LEAD_DAYS_MAX:
                raise InvalidRule(f"promise.lead_days.{node_type}",
                                  f"must be between 0 and {LEAD_DAYS_MAX}, got {days}")

    def lead_days_for(self, node_type: str) -> int:
        return self.lead_days.get(node_type, 0)

    @property
    def is_default(self) -> bool:
        """Whether it means the same as no ``promise`` section (a lead time of 0 is the default)."""
        return self.horizon_days == HORIZON_DAYS_DEFAULT and not any(self.lead_days.values())


Eligibility = tuple[tuple[str, int], ...]
"""For one node: (channel name, node_buffer) of every channel it feeds."""


@dataclass(frozen=True)
class RuleSet:
    nodes: Mapping[str, Node] = field(default_factory=dict)
    safety_stock_default: int = 0
    safety_stock_rules: tuple[SafetyStockRule, ...] = ()
    channels: Mapping[str, Channel] = field(default_factory=dict)
    safety_stock_default_origin: str | None = field(default=None, compare=False)
    promise: Promise = field(default_factory=Promise)

    def __post_init__(self) -> None:
        if self.safety_stock_default < 0:
            raise InvalidRule("safety_stock.default", f"must be 0 or more, got {self.safety_stock_default}")
        for i, rule in enumerate(self.safety_stock_rules):
            if rule.units < 0:
                raise InvalidRule(f"safety_stock.rules[{i}].units", f"must be 0 or more, got {rule.units}")
        for name, channel in self.channels.items():
            if name != channel.name:
                raise InvalidRule(f"channels.{name}", f"holds channel named {channel.name!r}")

    @cached_property
    def version(self) -> str:
        """A short content hash, equal for equal rule sets however they were built."""
        return hashlib.sha256(repr(self._canonical()).encode()).hexdigest()[:8]

    @cached_property
    def future_supply_channels(self) -> tuple[str, ...]:
        """Names of the channels that promise expected supply (``future_supply: true``), sorted."""
        return tuple(sorted(name for name, channel in self.channels.items() if channel.future_supply))

    def lead_days(self, node_id: str) -> int:
        """Days from arrival to sellable at a node, by its type; 0 for an undeclared node."""
        node = self.nodes.get(node_id)
        return 0 if node is None else self.promise.lead_days_for(node.type)

    def safety_stock(self, sku: str, node_id: str) -> int:
        """The units held back at ``node_id`` for ``sku``: the first matching rule's, else the default.

        Asked once per new position, so a catch-up that builds many asks it often: the answer
        depends only on which rules' SKU globs admit ``sku`` (a bit mask, found once per SKU)
        and on the node, and is remembered for both.
        """
        key = (self._sku_rule_mask(sku), node_id)
        cache = self._safety_by_mask_and_node
        units = cache.get(key)
        if units is None:
            if len(cache) >= _SKUS_REMEMBERED:
                cache.clear()
            node = self.nodes.get(node_id)
            units = cache[key] = next((rule.units for rule in self._rules_in(key[0])
                                       if rule.match.matches_node(node_id, node)), self.safety_stock_default)
        return units

    def safety_stock_with_origin(self, sku: str, node_id: str) -> tuple[int, str | None]:
        """``safety_stock`` and where it was set: the matching rule's ``file:line``, or the default's (None: unset)."""
        node = self.nodes.get(node_id)
        for rule in self._safety_rules_for(sku):
            if rule.match.matches_node(node_id, node):
                return rule.units, rule.origin or "a safety_stock rule"
        return self.safety_stock_default, (f"default ({self.safety_stock_default_origin})"
                                           if self.safety_stock_default_origin else None)

    def _safety_rules_for(self, sku: str) -> tuple[SafetyStockRule, ...]:
        """The rules whose SKU glob admits ``sku``, in order."""
        return self._rules_in(self._sku_rule_mask(sku))

    def _rules_in(self, mask: int) -> tuple[SafetyStockRule, ...]:
        return tuple(rule for i, rule in enumerate(self.safety_stock_rules) if mask >> i & 1)

    def _sku_rule_mask(self, sku: str) -> int:
        """Bit i set when rule i's SKU glob admits ``sku`` (or it has none): globbing once per SKU."""
        cache = self._rule_mask_by_sku
        mask = cache.get(sku)
        if mask is None:
            if len(cache) >= _SKUS_REMEMBERED:
                cache.clear()
            mask = cache[sku] = sum(1 << i for i, glob in enumerate(self._sku_globs)
                                    if glob is None or glob(sku) is not None)
        return mask

    @cached_property
    def _sku_globs(self) -> tuple[Callable[[str], object] | None, ...]:
        """Each rule's SKU glob compiled once (what ``fnmatchcase`` would look up per call)."""
        return tuple(None if rule.match.sku is None else re.compile(translate(rule.match.sku)).match
                     for rule in self.safety_stock_rules)

    @cached_property
    def _rule_mask_by_sku(self) -> dict[str, int]:
        return {}

    @cached_property
    def _safety_by_mask_and_node(self) -> dict[tuple[int, str], int]:
        return {}

    def eligibility(self, node_id: str) -> Eligibility:
        """Channels fed by a node; undeclared nodes feed none."""
        return self.eligibility_by_node.get(node_id, ())

    @cached_property
    def eligibility_by_node(self) -> dict[str, Eligibility]:
        """``eligibility`` of every declared node: the compiled core reads it as a dict, with no call into Python."""
        return {node_id: self._eligibility_of(node_id) for node_id in self.nodes}

    def _eligibility_of(self, node_id: str) -> Eligibility:
        node = self.nodes.get(node_id)
        if node is None:
            return ()
        return tuple(
            (name, channel.node_buffer.get(node.type, 0))
            for name, channel in sorted(self.channels.items())
            if channel.nodes.selects(node)
        )

    def _canonical(self) -> tuple[object, ...]:
        def selector(s: NodeSelector) -> tuple[object, ...]:
            return (sorted(s.types), sorted(s.tags), sorted(s.ids), sorted(s.exclude))

        # Section 7 settings join only when they differ from the defaults, so rule sets
        # without them keep the versions they had before those settings existed.
        def channel(c: Channel) -> tuple[object, ...]:
            knobs: tuple[object, ...] = (
                c.name, selector(c.nodes), sorted(c.node_buffer.items()), str(c.percent),
                c.buffer, c.min_available, c.max_available,
                c.publish.max_per_second, c.publish.min_interval_ms,
            )
            return (*knobs, "future_supply") if c.future_supply else knobs

        canonical: tuple[object, ...] = (
            sorted((n.id, n.type, sorted(n.tags)) for n in self.nodes.values()),
            self.safety_stock_default,
            [(r.match.sku, r.match.node, r.match.node_type, r.match.tag, r.units) for r in self.safety_stock_rules],
            sorted(channel(c) for c in self.channels.values()),
        )
        if self.promise.is_default:
            return canonical
        lead = sorted((t, d) for t, d in self.promise.lead_days.items() if d)
        return (*canonical, ("promise", self.promise.horizon_days, lead))
