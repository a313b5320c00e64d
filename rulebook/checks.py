"""Checks across files: what one part of the rules names must exist in another."""

from __future__ import annotations

from atp.rules import RuleSet
from rulebook.located_yaml import Located, Problem


def cross_check(
    rules: RuleSet, origins: dict[str, str], channel_sources: dict[str, tuple[str, Located]],
    promise_source: tuple[str, Located] | None = None,
) -> list[Problem]:
    """Errors: a channel or a lead time naming an undeclared node, tag or type. Warnings: unused node types."""
    problems: list[Problem] = []
    types = {node.type for node in rules.nodes.values()}
    tags = {tag for node in rules.nodes.values() for tag in node.tags}
    if promise_source is not None:
        file, section = promise_source
        lead: Located = section.get("lead_days") or Located()
        for node_type in lead:
            if node_type not in types:
                problems.append(Problem(file, lead.line_of(node_type), f"promise.lead_days.{node_type}",
                                        f"names node type {node_type!r}, which no node in the rules has"
                                        f"{_suggest(node_type, types)}"))
    for name, (file, entry) in sorted(channel_sources.items()):
        selector = entry["nodes"]
        for key, known, noun in (("ids", rules.nodes, "node"), ("exclude", rules.nodes, "node"),
                                 ("tags", tags, "tag"), ("types", types, "node type")):
            for value in selector.get(key) or ():
                if value not in known:
                    problems.append(Problem(file, selector.line_of(key), f"channels.{name}.nodes.{key}",
                                            f"names {noun} {value!r}, which no node in the rules has"
                                            f"{_suggest(value, known)}"))
        buffers: Located = entry.get("node_buffer") or Located()
        for node_type in buffers:
            if node_type not in types:
                problems.append(Problem(file, buffers.line_of(node_type), f"channels.{name}.node_buffer.{node_type}",
                                        f"no node has type {node_type!r}; this buffer holds nothing back",
                                        "warning"))
    fed = {node.type for node in rules.nodes.values() if rules.eligibility(node.id)}
    for node_type in sorted(types - fed):
        members = sorted(n.id for n in rules.nodes.values() if n.type == node_type)
        file, _, line = origins[f"node:{members[0]}"].rpartition(":")
        problems.append(Problem(file, int(line), f"nodes ({node_type})",
                                f"no channel can use nodes of type {node_type!r} ({len(members)}: "
                                f"{', '.join(members[:3])}{', ...' if len(members) > 3 else ''}); "
                                "their stock is tracked but never shown", "warning"))
    return problems


def _suggest(value: str, known: object) -> str:
    import difflib

    close = difflib.get_close_matches(value, sorted(known), n=1, cutoff=0.7)  # type: ignore[call-overload]
    return f" (did you mean {close[0]!r}?)" if close else ""
