"""Every rules message a merchandiser can meet, on real files."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
import yaml

from atp.rules import Promise
from rulebook import RulesError, check_rules, check_sources, load_rules
from rulebook.schema import RULES, json_schema, walk_keys

REPO = Path(__file__).resolve().parents[3]

NODES = """\
nodes:
  - {id: dc-east, type: dc}
  - {id: store-001, type: store, tags: [ship_from_store, pickup]}
"""

CHANNELS = """\
channels:
  web:
    nodes: {types: [dc], tags: [ship_from_store]}
    node_buffer: {store: 1}
  amazon:
    nodes: {types: [dc]}
    percent: 80
    buffer: 2
    min_available: 3
"""


def write(directory: Path, **files: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (directory / f"{name}.yaml").write_text(text)
    return directory


def messages(directory: Path) -> list[str]:
    return [str(p) for p in check_rules(directory).problems]


class TestValidRules:
    def test_files_merge_into_one_rule_set(self, tmp_path: Path) -> None:
        rules = load_rules(write(tmp_path, nodes=NODES, channels=CHANNELS,
                                 safety="safety_stock:\n  default: 2\n  rules:\n"
                                        "    - {match: {sku: 'TV-*', node_type: store}, units: 1}\n"))
        assert set(rules.nodes) == {"dc-east", "store-001"}
        assert set(rules.channels) == {"web", "amazon"}
        assert rules.safety_stock("TV-55", "store-001") == 1
        assert rules.safety_stock("PHONE", "store-001") == 2

    def test_the_example_rule_set_is_valid_and_warning_free(self) -> None:
        checked = check_rules(REPO / "rules")
        assert checked.rules is not None and checked.problems == []


class TestValueMessages:
    def test_percent_out_of_range_names_file_line_and_key(self, tmp_path: Path) -> None:
        text = CHANNELS.replace("percent: 80", "percent: 120")
        directory = write(tmp_path / "rules", nodes=NODES, channels=text)
        line = text.splitlines().index("    percent: 120") + 1
        assert messages(directory) == [
            f"{directory}/channels.yaml:{line} channels.amazon.percent: must be between 0 and 100, got 120",
        ]

    @pytest.mark.parametrize(("value", "message"), [
        ("'2'", "must be a whole number, got '2'"),
        ("2.5", "must be a whole number, got 2.5"),
        ("yes", "must be a whole number, got true"),
        ("-1", "must be 0 or more, got -1"),
    ])
    def test_buffer_must_be_a_whole_number_of_units(self, tmp_path: Path, value: str, message: str) -> None:
        directory = write(tmp_path, nodes=NODES, channels=CHANNELS.replace("buffer: 2", f"buffer: {value}"))
        assert messages(directory) == [f"{directory}/channels.yaml:8 channels.amazon.buffer: {message}"]

    def test_max_below_min_available_is_refused_at_its_line(self, tmp_path: Path) -> None:
        directory = write(tmp_path, nodes=NODES,
                          channels=CHANNELS + "    max_available: 2\n")
        assert messages(directory) == [
            f"{directory}/channels.yaml:10 channels.amazon.max_available: must be at least min_available (3), got 2",
        ]

    def test_node_ids_follow_the_event_charset(self, tmp_path: Path) -> None:
        directory = write(tmp_path, nodes=NODES.replace("dc-east", "dc east"), channels=CHANNELS)
        assert messages(directory)[0] == (
            f"{directory}/nodes.yaml:2 nodes[0].id: must be 1 to 64 characters of A-Z a-z 0-9 . _ - : /, "
            "got 'dc east'"
        )


class TestShapeMessages:
    def test_a_channel_name_must_be_usable_as_a_kafka_topic(self, tmp_path: Path) -> None:
        directory = write(tmp_path, nodes=NODES, channels=CHANNELS.replace("  amazon:", "  amazon:eu:"))
        assert messages(directory) == [
            f"{directory}/channels.yaml:5 channels.amazon:eu: a channel name must be 1 to 64 characters of "
            "A-Z a-z 0-9 . _ -",
        ]

    def test_unknown_key_suggests_the_one_meant(self, tmp_path: Path) -> None:
        directory = write(tmp_path, nodes=NODES, channels=CHANNELS.replace("min_available", "min_avaliable"))
        assert messages(directory) == [
            f"{directory}/channels.yaml:9 channels.amazon.min_avaliable: unknown key; did you mean "
            "'min_available'? expected one of nodes, node_buffer, percent, buffer, min_available, max_available, "
            "publish, future_supply",
        ]

    def test_required_keys_are_named(self, tmp_path: Path) -> None:
        directory = write(tmp_path, nodes="nodes:\n  - {id: dc-east}\n",
                          channels="channels:\n  web:\n    percent: 50\n")
        assert messages(directory) == [
            f"{directory}/channels.yaml:3 channels.web.nodes: is required",
            f"{directory}/nodes.yaml:2 nodes[0].type: is required",
        ]

    def test_an_empty_match_would_match_everything_and_is_refused(self, tmp_path: Path) -> None:
        directory = write(tmp_path, nodes=NODES, channels=CHANNELS,
                          safety="safety_stock:\n  rules:\n    - {match: {}, units: 3}\n")
        assert messages(directory) == [
            f"{directory}/safety.yaml:3 safety_stock.rules[0].match: needs at least one of node, node_type, sku, tag",
        ]

    def test_a_key_given_twice_in_one_mapping(self, tmp_path: Path) -> None:
        directory = write(tmp_path, nodes=NODES, channels=CHANNELS + "    percent: 60\n")
        assert messages(directory) == [f"{directory}/channels.yaml:10 percent: key given twice (first at line 7)"]

    def test_broken_yaml_gives_the_line(self, tmp_path: Path) -> None:
        directory = write(tmp_path, nodes=NODES, channels="channels:\n  web:\n    nodes: {types: [dc]\n")
        (found,) = messages(directory)
        assert found.startswith(f"{directory}/channels.yaml:4: not valid YAML: ")

    def test_yaml_tags_that_build_objects_are_refused(self, tmp_path: Path) -> None:
        directory = write(tmp_path, nodes=NODES + "x: !!python/object/apply:os.system ['true']\n")
        (found,) = messages(directory)
        assert "not valid YAML" in found and "python/object" in found

    def test_not_a_directory_and_an_empty_one(self, tmp_path: Path) -> None:
        assert messages(tmp_path / "missing") == [f"{tmp_path / 'missing'}: is not a directory"]
        assert messages(tmp_path) == [f"{tmp_path}: holds no .yaml rules files"]


class TestAcrossFiles:
    def test_a_channel_defined_in_two_files_names_both_places(self, tmp_path: Path) -> None:
        directory = write(tmp_path, nodes=NODES, a=CHANNELS, b="channels:\n  amazon:\n    nodes: {types: [dc]}\n")
        assert messages(directory) == [
            f"{directory}/b.yaml:2 channels.amazon: channel 'amazon' is already defined at {directory}/a.yaml:5",
        ]

    def test_a_node_defined_in_two_files_names_both_places(self, tmp_path: Path) -> None:
        directory = write(tmp_path, a=NODES, b="nodes:\n  - {id: dc-east, type: dc}\n", c=CHANNELS)
        assert messages(directory) == [
            f"{directory}/b.yaml:2 nodes[0].id: node 'dc-east' is already defined at {directory}/a.yaml:2",
        ]

    def test_safety_stock_default_set_twice(self, tmp_path: Path) -> None:
        directory = write(tmp_path, a=NODES + "safety_stock: {default: 1}\n", b="safety_stock:\n  default: 2\n",
                          c=CHANNELS)
        assert messages(directory) == [
            f"{directory}/b.yaml:2 safety_stock.default: already set at {directory}/a.yaml:4",
        ]

    def test_a_channel_naming_an_undeclared_node_or_tag(self, tmp_path: Path) -> None:
        text = CHANNELS.replace("tags: [ship_from_store]", "tags: [ship_from_stor], ids: [dc-eats, dc-north]")
        directory = write(tmp_path, nodes=NODES, channels=text)
        assert [str(p) for p in check_rules(directory).errors] == [
            f"{directory}/channels.yaml:3 channels.web.nodes.ids: names node 'dc-eats', which no node in the "
            "rules has (did you mean 'dc-east'?)",
            f"{directory}/channels.yaml:3 channels.web.nodes.ids: names node 'dc-north', which no node in the "
            "rules has",
            f"{directory}/channels.yaml:3 channels.web.nodes.tags: names tag 'ship_from_stor', which no node in "
            "the rules has (did you mean 'ship_from_store'?)",
        ]

    def test_a_node_type_no_channel_uses_is_a_warning(self, tmp_path: Path) -> None:
        directory = write(tmp_path, nodes=NODES + "  - {id: outlet-1, type: outlet}\n", channels=CHANNELS)
        checked = check_rules(directory)
        assert checked.rules is not None
        assert [str(p) for p in checked.problems] == [
            f"{directory}/nodes.yaml:4 nodes (outlet): warning: no channel can use nodes of type 'outlet' "
            "(1: outlet-1); their stock is tracked but never shown",
        ]

    def test_errors_stop_loading(self, tmp_path: Path) -> None:
        directory = write(tmp_path, nodes=NODES, channels=CHANNELS.replace("percent: 80", "percent: 120"))
        with pytest.raises(RulesError, match="must be between 0 and 100"):
            load_rules(directory)


PROMISE = """\
promise:
  horizon_days: 14
  lead_days: {dc: 2, store: 0}
"""


class TestPromiseAndFutureSupply:
    def test_the_promise_section_and_future_supply_load(self, tmp_path: Path) -> None:
        channels = CHANNELS.replace("    node_buffer: {store: 1}\n",
                                    "    node_buffer: {store: 1}\n    future_supply: true\n")
        rules = load_rules(write(tmp_path, nodes=NODES, channels=channels, promise=PROMISE))
        assert rules.promise == Promise(horizon_days=14, lead_days={"dc": 2, "store": 0})
        assert rules.lead_days("dc-east") == 2
        assert rules.channels["web"].future_supply is True
        assert rules.channels["amazon"].future_supply is False
        assert rules.future_supply_channels == ("web",)

    def test_without_them_the_defaults_apply(self, tmp_path: Path) -> None:
        rules = load_rules(write(tmp_path, nodes=NODES, channels=CHANNELS))
        assert rules.promise == Promise(horizon_days=30, lead_days={})
        assert rules.future_supply_channels == ()

    def test_an_empty_promise_section_means_the_defaults(self, tmp_path: Path) -> None:
        assert load_rules(write(tmp_path, nodes=NODES, channels=CHANNELS, promise="promise: {}\n")).promise == Promise()

    def test_the_example_rules_keep_their_version(self) -> None:
        assert load_rules(REPO / "rules").version == "b0fa4b5e"  # as README.md and docs/feeds.md show

    def test_defaults_written_out_keep_the_version(self, tmp_path: Path) -> None:
        plain = load_rules(write(tmp_path / "plain", nodes=NODES, channels=CHANNELS)).version
        written_out = write(tmp_path / "written", nodes=NODES,
                            channels=CHANNELS.replace("    percent: 80\n",
                                                      "    percent: 80\n    future_supply: false\n"),
                            promise="promise:\n  horizon_days: 30\n  lead_days: {dc: 0}\n")
        assert load_rules(written_out).version == plain

    @pytest.mark.parametrize("changed", [
        pytest.param({"promise": "promise: {horizon_days: 31}\n"}, id="horizon"),
        pytest.param({"promise": "promise: {lead_days: {store: 1}}\n"}, id="lead days"),
        pytest.param({"channels": CHANNELS + "    future_supply: true\n"}, id="future supply"),
    ])
    def test_a_changed_setting_changes_the_version(self, tmp_path: Path, changed: dict[str, str]) -> None:
        before = load_rules(write(tmp_path / "before", nodes=NODES, channels=CHANNELS)).version
        after = load_rules(write(tmp_path / "after", **{"nodes": NODES, "channels": CHANNELS, **changed})).version
        assert after != before

    @pytest.mark.parametrize(("line", "message"), [
        ("  horizon_days: 0", "promise.horizon_days: must be between 1 and 180, got 0"),
        ("  horizon_days: 181", "promise.horizon_days: must be between 1 and 180, got 181"),
        ("  horizon_days: '30'", "promise.horizon_days: must be a whole number, got '30'"),
        ("  horizon_days: 7.5", "promise.horizon_days: must be a whole number, got 7.5"),
        ("  horizon_days: true", "promise.horizon_days: must be a whole number, got true"),
        ("  horizon_days:", "promise.horizon_days: must be a whole number, got nothing"),
        ("  lead_days: [dc]", "promise.lead_days: must be a mapping of a node type to settings, got a list"),
        ("  horizon: 30", "promise.horizon: unknown key; did you mean 'horizon_days'? expected one of "
                          "horizon_days, lead_days"),
    ])
    def test_bad_promise_settings_name_file_line_and_key(self, tmp_path: Path, line: str, message: str) -> None:
        directory = write(tmp_path, nodes=NODES, channels=CHANNELS, promise=f"# lead times\npromise:\n{line}\n")
        assert messages(directory) == [f"{directory}/promise.yaml:3 {message}"]

    @pytest.mark.parametrize(("value", "message"), [
        ("-1", "must be between 0 and 365, got -1"),
        ("366", "must be between 0 and 365, got 366"),
        ("'1'", "must be a whole number, got '1'"),
    ])
    def test_bad_lead_days_name_the_node_type(self, tmp_path: Path, value: str, message: str) -> None:
        directory = write(tmp_path, nodes=NODES, channels=CHANNELS,
                          promise=f"promise:\n  lead_days:\n    store: 1\n    dc: {value}\n")
        assert messages(directory) == [f"{directory}/promise.yaml:4 promise.lead_days.dc: {message}"]

    def test_a_lead_time_for_a_node_type_no_node_has_is_refused(self, tmp_path: Path) -> None:
        directory = write(tmp_path, nodes=NODES, channels=CHANNELS,
                          promise="promise:\n  lead_days:\n    dcs: 1\n    outlet: 2\n")
        assert messages(directory) == [
            f"{directory}/promise.yaml:3 promise.lead_days.dcs: names node type 'dcs', which no node in the rules "
            "has (did you mean 'dc'?)",
            f"{directory}/promise.yaml:4 promise.lead_days.outlet: names node type 'outlet', which no node in the "
            "rules has",
        ]

    @pytest.mark.parametrize(("value", "shown"), [("'yes'", "'yes'"), ("1", "1"), ("", "nothing")])
    def test_future_supply_must_be_true_or_false(self, tmp_path: Path, value: str, shown: str) -> None:
        directory = write(tmp_path, nodes=NODES, channels=CHANNELS + f"    future_supply: {value}\n")
        assert messages(directory) == [
            f"{directory}/channels.yaml:10 channels.amazon.future_supply: must be true or false, got {shown}",
        ]

    def test_the_promise_section_in_two_files_names_both_places(self, tmp_path: Path) -> None:
        directory = write(tmp_path, nodes=NODES, channels=CHANNELS, a=PROMISE,
                          b="# later\npromise: {horizon_days: 7}\n")
        assert messages(directory) == [f"{directory}/b.yaml:2 promise: already set at {directory}/a.yaml:1"]

    def test_a_refused_promise_change_keeps_nothing_of_it_and_says_where(self) -> None:
        # what a hot reload does with the changed files: check them all again
        good = {"rules/nodes.yaml": NODES, "rules/channels.yaml": CHANNELS, "rules/promise.yaml": PROMISE}
        assert check_sources(good).rules is not None
        refused = PROMISE.replace("horizon_days: 14", "horizon_days: 365")
        changed = check_sources({**good, "rules/promise.yaml": refused})
        assert changed.rules is None
        assert [str(p) for p in changed.problems] == [
            "rules/promise.yaml:2 promise.horizon_days: must be between 1 and 180, got 365",
        ]


class TestSchemaStaysInSync:
    def test_the_shipped_schema_is_the_generated_one(self) -> None:
        shipped = json.loads((REPO / "rules" / "schema.json").read_text())
        assert shipped == json_schema(), "run: avail rules schema > rules/schema.json"

    def test_the_schema_describes_every_key_the_loader_accepts(self) -> None:
        def schema_keys(node: dict[str, object], path: str = "") -> set[str]:
            found: set[str] = set()
            for name, child in node.get("properties", {}).items():  # type: ignore[attr-defined]
                child_path = f"{path}.{name}" if path else name
                found |= {child_path} | schema_keys(child, child_path)
            if isinstance(node.get("items"), dict):
                found |= schema_keys(node["items"], f"{path}[]")  # type: ignore[arg-type]
            if isinstance(node.get("additionalProperties"), dict):
                found |= schema_keys(node["additionalProperties"], f"{path}.*")  # type: ignore[arg-type]
            return found

        assert schema_keys(json_schema()) == set(walk_keys(RULES))

    @pytest.mark.parametrize("document", [
        {"channels": {"amazon": {"nodes": {"types": ["dc"]}, "percent": 120}}},
        {"channels": {"amazon": {"nodes": {"types": ["dc"]}, "min_avaliable": 3}}},
        {"channels": {"amazon": {"percent": 50}}},
        {"channels": {"amazon": {"nodes": {}}}},
        {"nodes": [{"id": "dc east", "type": "dc"}]},
        {"nodes": [{"id": "dc-east"}]},
        {"safety_stock": {"rules": [{"match": {}, "units": 1}]}},
        {"safety_stock": {"default": -1}},
        {"channels": {"web": {"nodes": {"types": ["dc"]}, "publish": {"max_per_second": 0}}}},
        {"channels": {"web/eu": {"nodes": {"types": ["dc"]}}}},
        {"channels": {"web": {"nodes": {"types": ["dc"]}, "future_supply": "true"}}},
        {"promise": {"horizon_days": 0}},
        {"promise": {"horizon_days": 181}},
        {"promise": {"lead_days": {"dc": -1}}},
        {"promise": {"lead_days": {"dc": 366}}},
        {"promise": {"lead_days": {"dc east": 1}}},
        {"promise": {"horizon": 30}},
        {"promise": None},
    ])
    def test_loader_and_schema_refuse_the_same_documents(self, tmp_path: Path, document: dict[str, object]) -> None:
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(document, json_schema())
        directory = write(tmp_path, nodes=NODES, extra=yaml.safe_dump(document))
        assert check_rules(directory).errors

    def test_the_example_rules_pass_the_schema(self) -> None:
        for file in sorted((REPO / "rules").glob("*.yaml")):
            jsonschema.validate(yaml.safe_load(file.read_text()), json_schema())


class TestRulesCheckCommand:
    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "avail", "rules", "check", *args],  # noqa: S603
                              capture_output=True, text=True, check=False, cwd=REPO)

    def test_errors_exit_1_with_the_messages(self, tmp_path: Path) -> None:
        directory = write(tmp_path, nodes=NODES, channels=CHANNELS.replace("percent: 80", "percent: 120"))
        done = self.run(str(directory))
        assert done.returncode == 1
        assert "channels.yaml:7 channels.amazon.percent: must be between 0 and 100, got 120" in done.stderr

    def test_valid_rules_print_a_summary(self) -> None:
        done = self.run("rules")
        assert done.returncode == 0, done.stderr
        assert "nodes: 3 dc, 48 store" in done.stdout
        assert "channel web: 19 nodes (3 dc, 16 store)" in done.stdout
        assert "promise: horizon 30 days, lead days dc 1; future supply on web" in done.stdout

    def test_the_summary_names_the_horizon_and_the_channels_with_future_supply(self, tmp_path: Path) -> None:
        directory = write(tmp_path, nodes=NODES, channels=CHANNELS + "    future_supply: true\n", promise=PROMISE)
        done = self.run(str(directory))
        assert done.returncode == 0, done.stderr
        assert "promise: horizon 14 days, lead days dc 2; future supply on amazon" in done.stdout
        assert "channel amazon: 1 nodes (1 dc); 80%, buffer 2, min 3, future supply" in done.stdout
