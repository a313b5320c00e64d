"""The ``avail`` command (contract section 6): up, flow, api, rules, rebuild, dlq."""

from __future__ import annotations

import argparse
import logging
import os
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import ValidationError

if TYPE_CHECKING:
    from engine_settings import CommonSettings

REDIS_HELP = "the engine's Redis URL (AVAIL_REDIS_URL; default: the running avail up's, from .avail/env)"


def _flow(args: argparse.Namespace) -> int:
    from dataflows.flow import RecoveryStoreMissing, run
    from engine_settings import FlowSettings
    from projection.connect import WrongRedisMode

    overrides: dict[str, object] = {}
    if args.recovery_dir is not None:
        overrides["recovery_dir"] = args.recovery_dir
    if args.snapshot_interval is not None:
        overrides["snapshot_interval_s"] = args.snapshot_interval
    settings = FlowSettings(**overrides)  # type: ignore[arg-type]
    addresses = args.addresses.split(";") if args.addresses else None
    refused = cluster_arguments_problem(addresses, args.process_id, args.workers)
    if refused:
        print(f"avail flow: {refused}", file=sys.stderr)
        return 2
    try:
        run(settings, workers=args.workers, process_id=args.process_id, addresses=addresses,
            recovery_partitions=args.recovery_partitions)
    except (WrongRedisMode, RecoveryStoreMissing) as exc:
        raise SystemExit(f"avail flow: {exc}") from None
    except BaseException as exc:  # Bytewax reports a lost peer as a Rust panic, outside Exception
        if type(exc).__name__ != "PanicException" or addresses is None:
            raise
        logging.getLogger("avail").error(
            "flow process %s: the cluster lost a peer (%s); exiting so that the cluster restarts as a unit from "
            "its recovery store", args.process_id, exc)
        return 1
    return 0


def cluster_arguments_problem(addresses: list[str] | None, process_id: int | None, workers: int) -> str | None:
    """What is wrong with a flow process's place in its cluster, before it connects to anything."""
    if workers < 1:
        return f"-w/--workers must be 1 or more, got {workers}"
    if addresses is None:
        return None if process_id in (None, 0) else \
            f"-i/--process-id {process_id} needs -a/--addresses listing every process of the cluster"
    malformed = [a for a in addresses if not re.fullmatch(r"[^:;\s]+:\d{1,5}", a)]
    if malformed:
        return f"-a/--addresses: every entry must be host:port, got {malformed[0]!r}"
    if len(set(addresses)) != len(addresses):
        return "-a/--addresses: an address is listed twice"
    if process_id is None:
        return f"-a/--addresses lists {len(addresses)} processes: give this one's index with -i/--process-id"
    if not 0 <= process_id < len(addresses):
        return (f"-i/--process-id {process_id} is not in the cluster of {len(addresses)} processes that "
                f"-a/--addresses lists (0 to {len(addresses) - 1})")
    return None


def _api(args: argparse.Namespace) -> int:
    import uvicorn

    from engine_settings import ApiSettings
    from engine_settings.logs import logging_config

    if args.insecure_no_auth:
        os.environ["AVAIL_INSECURE_NO_AUTH"] = "true"
    settings = ApiSettings()
    if settings.api_keys is None and not args.insecure_no_auth:
        print("avail api: AVAIL_API_KEYS is not set. Set it to a JSON object of key -> scopes, e.g.\n"
              '  AVAIL_API_KEYS=\'{"<a long random key>": ["read"]}\'\n'
              "or pass --insecure-no-auth for a local experiment (every route open).", file=sys.stderr)
        return 2
    # uvicorn applies the same logging setup again in each worker process it spawns
    uvicorn.run("availability_api.app:app_from_env", factory=True, host=args.host, port=args.port,
                workers=args.workers, log_level=settings.uvicorn_level(), access_log=False,
                log_config=logging_config(settings))
    return 0


def _rules_check(args: argparse.Namespace) -> int:
    from rulebook import check_rules

    checked = check_rules(args.directory)
    for problem in checked.problems:
        print(problem, file=sys.stderr if problem.severity == "error" else sys.stdout)
    rules = checked.rules
    if rules is None:
        print(f"{args.directory}: {len(checked.errors)} error(s); the rules were not loaded", file=sys.stderr)
        return 1
    types: dict[str, int] = {}
    for node in rules.nodes.values():
        types[node.type] = types.get(node.type, 0) + 1
    print(f"{args.directory}: valid, rules_version {rules.version}"
          + (f", {len(checked.warnings)} warning(s)" if checked.warnings else ""))
    print("nodes: " + ", ".join(f"{count} {node_type}" for node_type, count in sorted(types.items())))
    print(f"safety stock: default {rules.safety_stock_default}, {len(rules.safety_stock_rules)} rule(s)")
    if rules.future_supply_channels or not rules.promise.is_default:
        lead = ", ".join(f"{t} {d}" for t, d in sorted(rules.promise.lead_days.items()) if d)
        print(f"promise: horizon {rules.promise.horizon_days} days" + (f", lead days {lead}" if lead else "")
              + f"; future supply on {', '.join(rules.future_supply_channels) or 'no channel'}")
    for name, channel in sorted(rules.channels.items()):
        feeding = [node for node in rules.nodes.values() if name in dict(rules.eligibility(node.id))]
        by_type: dict[str, int] = {}
        for fed in feeding:
            by_type[fed.type] = by_type.get(fed.type, 0) + 1
        detail = ", ".join(f"{count} {t}" for t, count in sorted(by_type.items())) or "none"
        knobs = [f"{channel.percent}%" if channel.percent != 100 else "",
                 f"buffer {channel.buffer}" if channel.buffer else "",
                 f"min {channel.min_available}" if channel.min_available else "",
                 f"max {channel.max_available}" if channel.max_available is not None else "",
                 "future supply" if channel.future_supply else ""]
        shown = ", ".join(k for k in knobs if k)
        print(f"channel {name}: {len(feeding)} nodes ({detail})" + (f"; {shown}" if shown else ""))
    return 0


def _common_settings(args: argparse.Namespace) -> CommonSettings:
    from engine_settings import CommonSettings

    return CommonSettings(**({"redis_url": args.redis} if args.redis else {}))


def _rules_preview(args: argparse.Namespace) -> int:
    import json

    from avail.reach import engine_redis
    from avail.rules_preview import preview
    from rulebook import check_rules

    checked = check_rules(args.directory)
    for problem in checked.problems:
        print(problem, file=sys.stderr)
    if checked.rules is None:
        return 1
    from avail.progress import progress_bar

    client, keys = engine_redis(_common_settings(args))
    try:
        with progress_bar("comparing", "SKU", int(client.zcard(keys.skus))) as bar:
            result = preview(client, keys, checked.rules, top=args.top, progress=bar.update)
    finally:
        client.close()
    if args.json:
        print(json.dumps(result.to_json(), indent=2))
    else:
        print("\n".join(result.lines()))
    return 0


def _explain(args: argparse.Namespace) -> int:
    import json

    from avail.explain import explanation, lines
    from avail.reach import engine_redis

    client, keys = engine_redis(_common_settings(args))
    try:
        document = explanation(client, keys, args.sku, args.channel)
    finally:
        client.close()
    print(json.dumps(document, indent=2) if args.json else "\n".join(lines(document)))
    return 0


def _rules_schema(args: argparse.Namespace) -> int:
    import json

    from rulebook.schema import json_schema

    print(json.dumps(json_schema(), indent=2))
    return 0


def _rebuild(args: argparse.Namespace) -> int:
    from avail.progress import progress_bar
    from avail.reach import engine_redis
    from avail.rebuild import rebuild

    client, keys = engine_redis(_common_settings(args))
    out: list[str] = []
    try:
        with progress_bar("flow processes confirmed", "process") as bar:
            code = rebuild(client, keys, None if args.no_wait else args.timeout, out, progress=bar)
    finally:
        client.close()
    print("\n".join(out))
    return code


def _up(args: argparse.Namespace) -> int:
    from avail.engine_home import home_folder
    from avail.up import up

    return up(demo=args.demo, port=args.port, rate=args.rate, partitions=args.partitions,
              home=args.home or home_folder())


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="avail", description="Real-time inventory availability engine.")
    root.add_argument("--version", action="version", version=f"avail {_version()}")
    commands = root.add_subparsers(dest="command", required=True)

    up = commands.add_parser("up", help="broker, Redis, flow and API on this machine")
    up.add_argument("--demo", action="store_true", help="also feed a synthetic retailer's events")
    up.add_argument("--port", type=int, default=8000, help="API port (default 8000, or a free one if taken)")
    up.add_argument("--rate", type=float, default=500.0, help="demo events per second (default 500)")
    up.add_argument("--partitions", type=int, default=2, help="partitions per inbound topic it creates")
    up.add_argument("--home", type=Path, default=None,
                    help="lock, addresses, logs and recovery store (AVAIL_HOME, default .avail); one engine per folder")
    up.set_defaults(handler=_up)

    flow = commands.add_parser("flow", help="the dataflow alone, against the configured Kafka and Redis")
    flow.add_argument("-w", "--workers", type=int, default=1, help="worker threads in this process")
    flow.add_argument("-i", "--process-id", type=int, default=None, help="this process's index in a cluster")
    flow.add_argument("-a", "--addresses", default=None, help="host:port of every process, separated by ';'")
    flow.add_argument("-r", "--recovery-dir", type=Path, default=None, help="recovery store (AVAIL_RECOVERY_DIR)")
    flow.add_argument("-s", "--snapshot-interval", type=float, default=None,
                      help="seconds between state snapshots (AVAIL_SNAPSHOT_INTERVAL_S, default 1)")
    flow.add_argument("--recovery-partitions", type=int, default=4,
                      help="partitions of a new recovery store, fixed once created (default 4)")
    flow.set_defaults(handler=_flow)

    api = commands.add_parser("api", help="the query API alone")
    api.add_argument("--host", default="127.0.0.1")
    api.add_argument("--port", type=int, default=8000)
    api.add_argument("--workers", type=int, default=1)
    api.add_argument("--insecure-no-auth", action="store_true", help="no API keys: every route open (local only)")
    api.set_defaults(handler=_api)

    rebuild = commands.add_parser(
        "rebuild", help="every running flow process rewrites all of its SKUs into Redis from its state",
        description="Sets a new Redis data generation. Every flow process rewrites all of its SKUs, their "
                    "channel numbers and the rules into Redis from its own state, as it does by itself when "
                    "Redis comes back empty. Use it after restoring Redis from an old backup or deleting keys.")
    rebuild.add_argument("--timeout", type=float, default=120.0,
                         help="seconds to wait for every live flow process to confirm (default 120)")
    rebuild.add_argument("--no-wait", action="store_true", help="ask and return at once")
    rebuild.add_argument("--redis", help=REDIS_HELP)
    rebuild.set_defaults(handler=_rebuild)

    explain = commands.add_parser("explain", help="how a channel's number of a SKU was computed, step by step")
    explain.add_argument("sku")
    explain.add_argument("--channel", required=True, help="the channel to explain")
    explain.add_argument("--json", action="store_true", help="the API's JSON answer")
    explain.add_argument("--redis", help=REDIS_HELP)
    explain.set_defaults(handler=_explain)

    rules = commands.add_parser("rules", help="work with a rules directory")
    rules_commands = rules.add_subparsers(dest="rules_command", required=True)
    check = rules_commands.add_parser("check", help="validate a rules directory; exit 1 on error")
    check.add_argument("directory", type=Path)
    check.set_defaults(handler=_rules_check)
    proposed = rules_commands.add_parser(
        "preview", help="what proposed rules would change, against the live numbers in Redis (writes nothing)")
    proposed.add_argument("directory", type=Path)
    proposed.add_argument("--top", type=int, default=10,
                          help="largest changes listed per channel, of numbers and of schedules (default 10)")
    proposed.add_argument("--json", action="store_true", help="machine-readable, with every change")
    proposed.add_argument("--redis", help=REDIS_HELP)
    proposed.set_defaults(handler=_rules_preview)
    schema = rules_commands.add_parser("schema", help="print the JSON Schema of a rules file (for editors)")
    schema.set_defaults(handler=_rules_schema)

    from avail.dlq import register as register_dlq

    register_dlq(commands)
    return root


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("avail")
    except PackageNotFoundError:
        return "(not installed)"


def main(argv: Sequence[str] | None = None) -> int:
    from avail.engine_home import home_folder, use_addresses
    from avail.reach import Unreachable
    from engine_settings import configure_logging

    try:
        configure_logging()
    except ValidationError as exc:
        print(f"avail: invalid configuration:\n{exc}", file=sys.stderr)
        return 2
    args = parser().parse_args(argv)
    if args.command != "up":
        use_addresses(home_folder())  # a running `avail up` in this folder: its broker and Redis
    try:
        return int(args.handler(args))
    except ValidationError as exc:
        print(f"avail: invalid configuration:\n{exc}", file=sys.stderr)
        return 2
    except Unreachable as exc:
        command = " ".join(filter(None, (args.command, getattr(args, "rules_command", None),
                                         getattr(args, "dlq_command", None))))
        print(f"avail {command}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
