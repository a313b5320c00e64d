"""How a channel's shown quantity comes out of a SKU's positions, step by step (contract section 8).

The same formula as ``atp.allocation.channel_numbers`` (section 3), kept apart so that
every intermediate value can be shown: each node's position, safety stock and the rule
that set it, whether it feeds the channel and why not, its node buffer and contribution;
then the pool and the value after each knob. ``final`` always equals what
``channel_numbers`` gives for the same positions and rules (a property test holds it).
"""

from __future__ import annotations

from dataclasses import dataclass

from atp.positions import node_atp
from atp.rules import Channel, RuleSet

DEFAULT_RULE = "default"


@dataclass(frozen=True, slots=True)
class NodeHolding:
    """One position of the SKU: what the engine keeps per node."""

    node: str
    on_hand: int
    reserved: int
    in_transit: int = 0
    unsellable: int = 0


@dataclass(frozen=True, slots=True)
class NodeStep:
    node: str
    node_type: str | None
    on_hand: int
    reserved: int
    in_transit: int
    unsellable: int
    safety_stock: int
    safety_stock_rule: str
    """Where the safety stock came from: ``file:line`` of the first matching rule, or ``default``."""
    atp: int
    eligible: bool
    why_not: str | None
    """Why the node does not feed the channel: undeclared, or neither its type, tags nor id is selected."""
    node_buffer: int
    contribution: int


@dataclass(frozen=True, slots=True)
class KnobStep:
    knob: str
    setting: str
    value: int
    """The number after this step."""


@dataclass(frozen=True, slots=True)
class Explanation:
    sku: str
    channel: str
    nodes: tuple[NodeStep, ...]
    contributions: int
    unsourced_reserved: int
    pool: int
    steps: tuple[KnobStep, ...]
    final: int


def explain_channel(
    sku: str, holdings: list[NodeHolding], unsourced_reserved: int, rules: RuleSet, channel_name: str,
) -> Explanation:
    """Every step of ``channel_name``'s number for ``sku``; ``KeyError`` when the rules have no such channel."""
    channel = rules.channels[channel_name]
    nodes = tuple(_node_step(sku, holding, rules, channel) for holding in sorted(holdings, key=lambda h: h.node))
    contributions = sum(step.contribution for step in nodes)
    pool = contributions - unsourced_reserved
    steps = _knob_steps(pool, channel)
    return Explanation(sku, channel_name, nodes, contributions, unsourced_reserved, pool, steps, steps[-1].value)


def _node_step(sku: str, holding: NodeHolding, rules: RuleSet, channel: Channel) -> NodeStep:
    safety_stock, origin = rules.safety_stock_with_origin(sku, holding.node)
    atp = node_atp(holding.on_hand, holding.reserved, safety_stock)
    node = rules.nodes.get(holding.node)
    eligible, why_not = True, None
    if node is None:
        eligible, why_not = False, "undeclared: the node is not in the rules, so it feeds no channel"
    elif not channel.nodes.selects(node):
        eligible = False
        why_not = (f"excluded by id from {channel.name}" if node.id in channel.nodes.exclude else
                   f"type {node.type!r}, tags {sorted(node.tags)} and id not selected by {channel.name}")
    node_buffer = channel.node_buffer.get(node.type, 0) if node is not None and eligible else 0
    return NodeStep(
        holding.node, node.type if node is not None else None, holding.on_hand, holding.reserved,
        holding.in_transit, holding.unsellable, safety_stock, origin or DEFAULT_RULE, atp, eligible, why_not,
        node_buffer, max(0, atp - node_buffer) if eligible else 0,
    )


def _knob_steps(pool: int, channel: Channel) -> tuple[KnobStep, ...]:
    """The section 3 formula, one knob at a time, each with its default when the channel does not set it."""
    percent = channel.percent
    shared = pool * percent.numerator // (100 * percent.denominator)
    after_buffer = shared - channel.buffer
    after_minimum = 0 if after_buffer < channel.min_available else after_buffer
    clamped = max(0, after_minimum)
    if channel.max_available is not None:
        clamped = min(clamped, channel.max_available)
    shown_percent = str(percent.numerator) if percent.denominator == 1 else str(float(percent))
    return (
        KnobStep("percent", f"{shown_percent} % of the pool, rounded down", shared),
        KnobStep("buffer", f"minus {channel.buffer}", after_buffer),
        KnobStep("min_available", f"0 when below {channel.min_available}", after_minimum),
        KnobStep("max_available", (f"at most {channel.max_available}" if channel.max_available is not None
                                   else "no maximum") + "; never below 0", clamped),
    )
