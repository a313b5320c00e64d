"""``avail explain SKU --channel C``: the explain route's answer, read straight from the engine's Redis."""

from __future__ import annotations

from typing import Any

import orjson

from avail.reach import Unreachable
from projection import Keys
from projection.connect import SyncClient
from projection.explain import explain_document
from rulebook import published_rules


def explanation(client: SyncClient, keys: Keys, sku: str, channel: str) -> dict[str, Any]:
    """The explanation, as ``GET /v1/availability/{sku}/explain`` answers it; ``Unreachable`` when impossible."""
    raw: Any = client.get(keys.rules_source)
    rules = published_rules(orjson.loads(raw)["sources"]) if raw is not None else None
    if rules is None:
        raise Unreachable("no rule set published: is the flow running?")
    if channel not in rules.channels:
        raise Unreachable(f"unknown channel {channel!r}; the active rules define: {', '.join(sorted(rules.channels))}")
    fields: dict[bytes, bytes] = client.hgetall(keys.sku(sku))  # type: ignore[assignment]
    if not fields:
        raise Unreachable(f"no availability for SKU {sku!r}: never seen")
    return explain_document(sku, channel, {k.decode(): v.decode() for k, v in fields.items()}, rules)


def lines(document: dict[str, Any]) -> list[str]:
    """The explanation for a terminal: one line per node, then the pool and each knob."""
    out = [f"{document['sku']} on {document['channel']} (rules {document['rules_version']}, "
           f"as of {document['as_of']})", ""]
    out.append(f"  {'node':<14} {'type':<8} {'on_hand':>7} {'reserved':>8} {'safety':>6} {'atp':>5} "
               f"{'buffer':>6} {'contrib':>7}  why")
    for n in document["nodes"]:
        why = f"safety stock: {n['safety_stock_rule']}" if n["eligible"] else f"not eligible: {n['why_not']}"
        out.append(f"  {n['node']:<14} {n['type'] or '-':<8} {n['on_hand']:>7} {n['reserved']:>8} "
                   f"{n['safety_stock']:>6} {n['atp']:>5} {n['node_buffer']:>6} {n['contribution']:>7}  {why}")
    out += ["", f"  contributions {document['contributions']:>7}",
            f"  unsourced     {-document['unsourced_reserved']:>7}  (reserved for {document['channel']} at no node)",
            f"  pool          {document['pool']:>7}"]
    out += [f"  {s['knob']:<13} {s['value']:>7}  {s['setting']}" for s in document["steps"]]
    verdict = "the number shown" if document["matches_shown"] else (
        f"NOT the {document['shown']} shown: the numbers were computed with rules "
        f"{document['numbers_rules_version']}; they are being recomputed")
    out += ["", f"  = {document['final']}, {verdict}"]
    return out
