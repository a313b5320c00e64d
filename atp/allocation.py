"""Channel numbers from positions alone: what a rule set would show, without the history.

``SkuState`` keeps these numbers incrementally as events arrive; this computes them
from scratch for any rule set, e.g. to preview a rules change against live positions.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from atp.positions import node_atp
from atp.rules import RuleSet

Holding = tuple[str, int, int]
"""(node, on_hand, reserved) of one position."""


def channel_numbers(
    sku: str, holdings: Iterable[Holding], unsourced: Mapping[str, int], rules: RuleSet,
) -> dict[str, int]:
    """Every channel's shown quantity of ``sku`` under ``rules`` (contract section 3)."""
    contrib = dict.fromkeys(rules.channels, 0)
    for node, on_hand, reserved in holdings:
        atp = node_atp(on_hand, reserved, rules.safety_stock(sku, node))
        for channel, node_buffer in rules.eligibility(node):
            contrib[channel] += max(0, atp - node_buffer)
    return {name: channel.shown(contrib[name] - unsourced.get(name, 0)) for name, channel in rules.channels.items()}
