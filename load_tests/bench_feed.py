"""Delta feed: latency from event to SSE, delivered deltas/s at saturation, SSE clients per API.

Local Tansu + Redis, ``avail flow`` (one worker) and ``avail api`` (one uvicorn worker)
as child processes, rules with one unthrottled channel ``fast`` fed by three DCs.

1. latency: one SSE client; events produced at ``--rate`` per second, each a receipt
   for a new SKU (so each makes exactly one delta); latency = SSE receipt − produce call.
2. saturation: a backlog of ``--burst`` receipts over 20,000 SKUs; deltas/s released by
   the throttle (stream timestamps) and received by one SSE client.
3. clients: N concurrent SSE connections (raw sockets, counting frames) while events
   arrive at ``--rate``; per N, whether every client got every delta and the p99 lag
   of a sampled client.
``python -m load_tests.bench_feed [--rate 200] [--burst 100000]``
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import orjson
from confluent_kafka import Producer

from atp.encoding import encode_event
from atp.events import Receipt
from engine_settings import FlowSettings
from load_tests.report import RESULTS
from local_servers import LOOPBACK, create_topics, free_port, start_redis, start_tansu, stop_process
from projection import Keys
from projection.connect import sync_client

KEY = "bench-key-0123456789abcdef"
KEYS = Keys("avail")  # the Redis prefix the flow is given (AVAIL_REDIS_PREFIX)
CHANNEL = "fast"
RULES = """\
nodes:
  - {id: dc-1, type: dc}
  - {id: dc-2, type: dc}
  - {id: dc-3, type: dc}
channels:
  fast:
    nodes: {types: [dc]}
"""


def receipt(sku: str, qty: int, at: int) -> bytes:
    return encode_event(Receipt(f"{sku}-{qty}-{at}", sku, "dc-1", qty, at))


def now_s() -> int:
    """µs at a whole second, as the events' ids repeat within one."""
    return int(time.time()) * 1_000_000


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))] if ordered else float("nan")


async def sse_client(url: str, sent: dict[str, float], received: dict[str, float], stop: asyncio.Event) -> None:
    async with httpx.AsyncClient(timeout=httpx.Timeout(10, read=None)) as client, client.stream(
        "GET", url, headers={"X-API-Key": KEY}) as answer:
        async for line in answer.aiter_lines():
            if line.startswith("data: "):
                sku = orjson.loads(line[6:])["sku"]
                received.setdefault(sku, time.perf_counter())
            if stop.is_set():
                return


async def raw_counter(port: int, path: str, counts: list[int], index: int, stop: asyncio.Event) -> None:
    reader, writer = await asyncio.open_connection(LOOPBACK, port)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: x\r\nX-API-Key: {KEY}\r\n\r\n".encode())
    await writer.drain()
    tail = b""
    while not stop.is_set():
        try:
            chunk = await asyncio.wait_for(reader.read(65536), 0.5)
        except TimeoutError:
            continue
        if not chunk:
            break
        data = tail + chunk
        counts[index] += data.count(b"event: delta")
        tail = data[-16:] if not data.endswith(b"\n") else b""
        if tail and b"event: delta" in tail:
            counts[index] -= 1
    writer.close()


def produce_at_rate(producer: Producer, topic: str, prefix: str, rate: float, seconds: float,
                    sent: dict[str, float]) -> None:
    interval, due, i = 1.0 / rate, time.perf_counter(), 0
    end = due + seconds
    while due < end:
        now = time.perf_counter()
        if now < due:
            time.sleep(due - now)
        sku = f"{prefix}-{i:07d}"
        sent[sku] = time.perf_counter()
        producer.produce(topic, receipt(sku, 5, now_s()), sku.encode())
        producer.poll(0)
        i += 1
        due += interval
    producer.flush(10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rate", type=float, default=200.0)
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--burst", type=int, default=100_000)
    parser.add_argument("--clients", default="50,200,500,1000")
    parser.add_argument("--fetch-wait-ms", type=int, default=20)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-feed-"))
    broker, redis_server = start_tansu(log_dir=work), start_redis(log_dir=work)
    children: list[subprocess.Popen[bytes]] = []
    try:
        bootstrap, url = f"{LOOPBACK}:{broker.port}", f"redis://{LOOPBACK}:{redis_server.port}/0"
        settings = FlowSettings()
        topics = settings.topic_roles()
        create_topics(bootstrap, {**dict.fromkeys(topics, 1), "availability.dlq": 1, "availability.deltas.fast": 1})
        erp = next(name for name, role in topics.items() if role.value == "erp.inventory")
        (work / "rules").mkdir()
        (work / "rules" / "rules.yaml").write_text(RULES)
        port = free_port()
        env = {**os.environ, "AVAIL_KAFKA_BOOTSTRAP": bootstrap, "AVAIL_REDIS_URL": url,
               "AVAIL_REDIS_PREFIX": KEYS.prefix, "AVAIL_RULES_DIR": str(work / "rules"),
               "AVAIL_RECOVERY_DIR": str(work / "recovery"),
               "AVAIL_API_KEYS": orjson.dumps({KEY: ["read"]}).decode(), "AVAIL_LOG_LEVEL": "WARNING",
               "AVAIL_KAFKA_FETCH_WAIT_MAX_MS": str(args.fetch_wait_ms)}
        for command, name in ((["flow"], "flow"), (["api", "--port", str(port)], "api")):
            with (work / f"{name}.log").open("wb") as log:
                children.append(subprocess.Popen([sys.executable, "-m", "avail", *command], env=env,  # noqa: S603
                                                 stdout=log, stderr=subprocess.STDOUT))
        base = f"http://{LOOPBACK}:{port}"
        for _ in range(200):
            try:
                if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 0})
        result: dict[str, object] = {
            "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "python": platform.python_version()},
            "fetch_wait_max_ms": args.fetch_wait_ms,
        }

        # 1. latency, one client, not throttled
        async def latency_run() -> dict[str, float]:
            sent: dict[str, float] = {}
            received: dict[str, float] = {}
            stop = asyncio.Event()
            client = asyncio.create_task(sse_client(f"{base}/v1/channels/fast/deltas", sent, received, stop))
            await asyncio.sleep(1)
            await asyncio.to_thread(produce_at_rate, producer, erp, "LAT", args.rate, args.seconds, sent)
            await asyncio.sleep(3)
            stop.set()
            client.cancel()
            lags = [(received[s] - t) * 1000 for s, t in sent.items() if s in received]
            return {"offered_per_s": args.rate, "sent": len(sent), "received": len(lags),
                    "p50_ms": percentile(lags, 0.5), "p99_ms": percentile(lags, 0.99), "max_ms": max(lags)}

        result["latency"] = asyncio.run(latency_run())
        print("latency:", result["latency"])

        # 2. saturation: a burst backlog
        client_redis = sync_client(url)
        first_seq = int(client_redis.get(KEYS.feed_seq(CHANNEL)) or 0)
        skus = [f"SAT-{i:05d}" for i in range(20_000)]
        at = now_s()

        async def saturation_run() -> dict[str, float]:
            received: dict[str, float] = {}
            stop = asyncio.Event()
            client = asyncio.create_task(sse_client(f"{base}/v1/channels/fast/deltas", {}, received, stop))
            await asyncio.sleep(1)
            started = time.perf_counter()
            for i in range(args.burst):
                sku = skus[i % len(skus)]
                while True:
                    try:
                        producer.produce(erp, receipt(sku, 1 + i // len(skus), at), sku.encode())
                        break
                    except BufferError:
                        producer.poll(0.05)
            producer.flush(60)
            while time.perf_counter() - started < 300:
                last = int(client_redis.get(KEYS.feed_seq(CHANNEL)) or 0)
                await asyncio.sleep(1)
                if int(client_redis.get(KEYS.feed_seq(CHANNEL)) or 0) == last and last > first_seq:
                    break
            await asyncio.sleep(2)
            stop.set()
            client.cancel()
            entries = client_redis.xrange(KEYS.feed(CHANNEL), f"{first_seq + 1}-0", "+")
            times = [int(fields[b"t"]) for _, fields in entries]
            span = (times[-1] - times[0]) / 1e6 if len(times) > 1 else float("nan")
            return {"events": args.burst, "deltas": len(entries), "released_per_s": len(entries) / span,
                    "sse_received": len(received)}

        result["saturation"] = asyncio.run(saturation_run())
        print("saturation:", result["saturation"])

        # 3. many clients at the offered rate
        scale = []
        for n in [int(x) for x in args.clients.split(",")]:
            async def clients_run(n: int = n) -> dict[str, float]:
                counts = [0] * n
                stop = asyncio.Event()
                tasks = [asyncio.create_task(raw_counter(port, "/v1/channels/fast/deltas", counts, i, stop))
                         for i in range(n)]
                sent: dict[str, float] = {}
                received: dict[str, float] = {}
                sample = asyncio.create_task(sse_client(f"{base}/v1/channels/fast/deltas", sent, received, stop))
                await asyncio.sleep(2 + n / 200)
                await asyncio.to_thread(produce_at_rate, producer, erp, f"N{n}", args.rate, 10, sent)
                await asyncio.sleep(5)
                stop.set()
                await asyncio.gather(*tasks, return_exceptions=True)
                sample.cancel()
                lags = [(received[s] - t) * 1000 for s, t in sent.items() if s in received]
                complete = sum(1 for c in counts if c >= len(sent))
                return {"clients": n, "deltas": len(sent), "clients_complete": complete,
                        "median_received": statistics.median(counts), "sample_p99_ms": percentile(lags, 0.99)}

            row = asyncio.run(clients_run())
            print("clients:", row)
            scale.append(row)
        result["clients"] = scale
        RESULTS.mkdir(exist_ok=True)
        (RESULTS / "feed.json").write_bytes(orjson.dumps(result, option=orjson.OPT_INDENT_2))
    finally:
        for child in children:
            stop_process(child)
        broker.stop()
        redis_server.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
