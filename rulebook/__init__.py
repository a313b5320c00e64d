"""The merchandisers' rules directory (contract section 3): YAML with line numbers, schema, checks, loader.

The one place that reads rule files: the flow, the API (explanations) and the ``avail``
commands all load through it, and ``atp`` gets typed rule objects, never a file.
"""

from rulebook.loader import (
    CheckedRules,
    RulesError,
    check_rules,
    check_sources,
    load_rules,
    published_rules,
    read_sources,
    rule_files,
)
from rulebook.located_yaml import Problem
from rulebook.schema import json_schema

__all__ = [
    "CheckedRules",
    "Problem",
    "RulesError",
    "check_rules",
    "check_sources",
    "json_schema",
    "load_rules",
    "published_rules",
    "read_sources",
    "rule_files",
]
