"""An explanation of one channel's number as JSON, from a SKU's hash as Redis holds it (contract section 8).

Shared by the API (``GET /v1/availability/{sku}/explain``) and ``avail explain``.
"""

from __future__ import annotations

from collections.abc import Mapping

from atp.explain import NodeHolding, NodeStep, explain_channel
from atp.rules import RuleSet
from projection.codec import (
    AS_OF,
    CHANNEL_PREFIX,
    NODE_PREFIX,
    RULES_VERSION,
    UNSOURCED_PREFIX,
    decode_position,
    format_as_of,
)

Document = dict[str, object]


def holdings(fields: Mapping[str, str]) -> list[NodeHolding]:
    found = []
    for name, value in fields.items():
        if name.startswith(NODE_PREFIX):
            p = decode_position(name[len(NODE_PREFIX):], value)
            found.append(NodeHolding(p.node, p.on_hand, p.reserved, p.in_transit, p.unsellable))
    return found


def explain_document(sku: str, channel: str, fields: Mapping[str, str], rules: RuleSet) -> Document:
    """The explanation as JSON; ``matches_shown`` says whether it ends at the number the SKU's hash shows."""
    unsourced = int(fields.get(UNSOURCED_PREFIX + channel, 0))
    explained = explain_channel(sku, holdings(fields), unsourced, rules, channel)
    shown = int(fields.get(CHANNEL_PREFIX + channel, 0))
    return {
        "sku": sku, "channel": channel,
        "nodes": [_node(step) for step in explained.nodes],
        "contributions": explained.contributions,
        "unsourced_reserved": explained.unsourced_reserved,
        "pool": explained.pool,
        "steps": [{"knob": s.knob, "setting": s.setting, "value": s.value} for s in explained.steps],
        "final": explained.final,
        "shown": shown,
        "matches_shown": explained.final == shown,
        "rules_version": rules.version,
        "numbers_rules_version": fields.get(RULES_VERSION),
        "as_of": format_as_of(fields.get(AS_OF)),
    }


def _node(step: NodeStep) -> Document:
    return {
        "node": step.node, "type": step.node_type, "on_hand": step.on_hand, "reserved": step.reserved,
        "in_transit": step.in_transit, "unsellable": step.unsellable, "safety_stock": step.safety_stock,
        "safety_stock_rule": step.safety_stock_rule, "atp": step.atp, "eligible": step.eligible,
        "why_not": step.why_not, "node_buffer": step.node_buffer, "contribution": step.contribution,
    }

