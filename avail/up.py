"""``avail up``: the whole engine on one machine, with nothing else installed.

Uses the broker and Redis from ``AVAIL_KAFKA_BOOTSTRAP``/``AVAIL_REDIS_URL`` when set,
otherwise starts a local Tansu broker and redis-server on free loopback ports. Runs
the flow and the API as child processes, and stops everything it started by PID.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import orjson

from avail.engine_home import HeldHome, HomeInUse, hold
from engine_settings import FlowSettings
from local_servers import LOOPBACK, LocalServer, create_topics, free_port, start_redis, start_tansu
from rulebook import RulesError, load_rules


def _port_is_free(port: int) -> bool:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does: TIME_WAIT is no obstacle
        try:
            s.bind((LOOPBACK, port))
        except OSError:
            return False
    return True


def _spawn(args: list[str], env: dict[str, str], log_path: Path, home: HeldHome) -> LocalServer:
    with log_path.open("ab") as log:
        process = subprocess.Popen(  # noqa: S603 - our own interpreter and module
            [sys.executable, "-m", "avail", *args], env=env, stdout=log, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True,
            pass_fds=(home.fd,),  # the home stays locked while a child lives, even if this process is killed
        )
    return LocalServer(args[0], 0, process, log_path, signal.SIGTERM)


def _wait_healthy(url: str, api: LocalServer, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if api.process.poll() is not None:
            raise RuntimeError(f"the API exited with code {api.process.returncode}; see {api.log_path}")
        with contextlib.suppress(OSError):
            with urllib.request.urlopen(f"{url}/healthz", timeout=1) as answer:  # noqa: S310 - our loopback URL
                if answer.status == 200:
                    return
        time.sleep(0.2)
    raise RuntimeError(f"the API did not answer on {url} within {timeout:.0f} s; see {api.log_path}")


def up(*, demo: bool, port: int, rate: float, partitions: int, home: Path) -> int:
    """Runs until interrupted; returns the exit code."""
    try:
        with hold(home) as held:
            return _up(held, demo=demo, port=port, rate=rate, partitions=partitions)
    except HomeInUse as exc:
        print(f"avail up: {exc}", file=sys.stderr)
        return 1


def _up(held: HeldHome, *, demo: bool, port: int, rate: float, partitions: int) -> int:
    home = held.path
    logs = home / "logs"
    logs.mkdir(exist_ok=True)
    started: list[LocalServer] = []
    stop_demo = threading.Event()
    demo_thread: threading.Thread | None = None
    try:
        configured = FlowSettings()
        try:
            rules = load_rules(configured.rules_dir)
        except RulesError as exc:
            print(f"avail up: the rules are invalid: {exc}", file=sys.stderr)
            return 1
        embedded_broker = "AVAIL_KAFKA_BOOTSTRAP" not in os.environ
        if embedded_broker:
            broker = start_tansu(log_dir=logs)
            started.append(broker)
            bootstrap = f"{LOOPBACK}:{broker.port}"
        else:
            bootstrap = configured.kafka_bootstrap
        if "AVAIL_REDIS_URL" not in os.environ:
            redis_server = start_redis(log_dir=logs)
            started.append(redis_server)
            redis_url = f"redis://{LOOPBACK}:{redis_server.port}/0"
        else:
            redis_url = configured.redis_url.get_secret_value()
        topics = configured.topic_roles()
        deltas = {configured.topic_deltas_prefix + channel: partitions for channel in rules.channels}
        create_topics(bootstrap, {**dict.fromkeys(topics, partitions), configured.topic_dlq: 1, **deltas})
        recovery = home / "recovery"
        if embedded_broker:
            # a fresh memory-only broker: offsets in an old recovery store would point past its end
            shutil.rmtree(recovery, ignore_errors=True)
        key = None
        api_keys = os.environ.get("AVAIL_API_KEYS")
        if not api_keys:
            key = secrets.token_urlsafe(24)
            api_keys = orjson.dumps({key: ["admin"]}).decode()
        if not _port_is_free(port):
            port = free_port()
        env = {
            **os.environ, "AVAIL_KAFKA_BOOTSTRAP": bootstrap, "AVAIL_REDIS_URL": redis_url,
            "AVAIL_RECOVERY_DIR": str(recovery.resolve()), "AVAIL_API_KEYS": api_keys,
            "AVAIL_RULES_DIR": str(configured.rules_dir.resolve()),
        }
        flow = _spawn(["flow"], env, logs / "flow.log", held)
        started.append(flow)
        api = _spawn(["api", "--host", LOOPBACK, "--port", str(port)], env, logs / "api.log", held)
        started.append(api)
        url = f"http://{LOOPBACK}:{port}"
        _wait_healthy(url, api)
        addresses = {"AVAIL_KAFKA_BOOTSTRAP": bootstrap, "AVAIL_REDIS_URL": redis_url,
                     "AVAIL_REDIS_PREFIX": configured.redis_prefix, "AVAIL_API_URL": url}
        held.describe(api=url)
        env_file = held.write_addresses(addresses)
        example_sku = "<sku>"
        if demo:
            from demo_retailer import DemoRetailer, run_demo

            retailer = DemoRetailer([(node.id, node.type) for node in rules.nodes.values()], poison_ratio=0.002)
            example_sku = retailer.catalog.skus[0]
            demo_thread = threading.Thread(
                target=run_demo, name="demo", daemon=True,
                kwargs={"bootstrap": bootstrap, "topics": {role.value: name for name, role in topics.items()},
                        "rate": rate, "stop": stop_demo, "retailer": retailer},
            )
            demo_thread.start()
        _banner(url, key, addresses, env_file, rules.version, demo, rate, logs, example_sku)
        return _supervise([flow, api])
    except KeyboardInterrupt:
        return 0
    finally:
        stop_demo.set()
        if demo_thread is not None:
            demo_thread.join(timeout=5)
        for server in reversed(started):
            server.stop()


def _supervise(children: list[LocalServer]) -> int:
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    while not stop.wait(0.5):
        for child in children:
            if child.process.poll() is not None:
                print(f"avail up: {child.name} exited with code {child.process.returncode}; see {child.log_path}",
                      file=sys.stderr)
                return 1
    print("avail up: stopping", flush=True)
    return 0


def _banner(url: str, key: str | None, addresses: dict[str, str], env_file: Path, rules_version: str,
            demo: bool, rate: float, logs: Path, example_sku: str) -> None:
    shown_key = key if key is not None else "<a key from AVAIL_API_KEYS>"
    lines = [
        "",
        f"avail is up: API {url}  (docs {url}/docs)",
        f"  API key (admin, development only): {shown_key}",
        f"  broker {addresses['AVAIL_KAFKA_BOOTSTRAP']}   redis {addresses['AVAIL_REDIS_URL']}   rules {rules_version}",
        f"  demo feed: {f'{rate:.0f} events/s' if demo else 'off (use --demo)'}   logs: {logs}/",
        "",
        f"Other avail commands run in this folder use these addresses ({env_file}); elsewhere:",
        *(f"  export {name}={value}" for name, value in addresses.items()),
        "",
        "Try:",
        f"  curl -s -H 'X-API-Key: {shown_key}' '{url}/v1/channels/web/snapshot?limit=5'",
        f"  curl -s -H 'X-API-Key: {shown_key}' '{url}/v1/availability/{example_sku}?channel=web'",
        "",
        "Ctrl-C stops everything.",
    ]
    print("\n".join(lines), flush=True)
