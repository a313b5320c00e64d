"""Reference adapter: keeps a marketplace's stock levels equal to one channel's numbers.

1. Bootstrap: page through ``GET /v1/channels/{channel}/snapshot`` and push every SKU;
   the first page's ``delta_cursor`` is where the feed continues.
2. Follow: ``GET /v1/channels/{channel}/deltas`` (Server-Sent Events) from that cursor,
   pushing each delta; after a disconnect, reconnect with ``Last-Event-ID`` (the last
   seq pushed), so nothing is missed and nothing pushed twice.
3. If the engine answers 410 ``feed_position_trimmed`` (the adapter was away longer
   than the feed's retention), bootstrap again.

The seq of the last delta pushed is saved in ``--state-file`` after each push, so a
restarted adapter resumes where it stopped. Pushes retry on 429 (honouring
``Retry-After``), 5xx and network errors with capped exponential backoff: a number is
never skipped. The engine already paces the feed by the channel's ``publish`` rules, so
set those to the marketplace's limits.

Run: ``python examples/marketplace_adapter.py --api http://127.0.0.1:8000 --key KEY
--channel amazon --marketplace http://127.0.0.1:9000 --state-file amazon.seq``
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

log = logging.getLogger("adapter")


class FeedTrimmed(Exception):
    """The saved position is older than the engine keeps: bootstrap again."""


class Adapter:
    def __init__(self, api: str, key: str, channel: str, marketplace: str, state_file: Path | None) -> None:
        self.engine = httpx.Client(base_url=api, headers={"X-API-Key": key}, timeout=httpx.Timeout(10, read=60))
        self.market = httpx.Client(base_url=marketplace, timeout=10)
        self.channel, self.state_file = channel, state_file
        self.last_seq: int | None = None
        if state_file is not None and state_file.exists():
            self.last_seq = int(state_file.read_text())

    def run(self) -> None:
        while True:
            if self.last_seq is None:
                self.bootstrap()
            try:
                self.follow()
            except FeedTrimmed:
                log.warning("position %s is no longer retained; bootstrapping again", self.last_seq)
                self.last_seq = None
            except (httpx.TransportError, httpx.RemoteProtocolError) as exc:
                log.warning("feed interrupted (%s); resuming after seq %s", exc, self.last_seq)
                time.sleep(1)

    def bootstrap(self) -> None:
        cursor: str | None = None
        delta_cursor: int | None = None
        pushed = 0
        while True:
            params = {"limit": "1000", **({"cursor": cursor} if cursor else {})}
            page = self.engine.get(f"/v1/channels/{self.channel}/snapshot", params=params)
            page.raise_for_status()
            body = page.json()
            if delta_cursor is None:
                delta_cursor = int(body["delta_cursor"])
            for item in body["items"]:
                self.push(item["sku"], item["available"])
                pushed += 1
            cursor = body["next_cursor"]
            if cursor is None:
                break
        log.info("bootstrapped %d SKUs; following the feed after seq %d", pushed, delta_cursor)
        self.save(delta_cursor)

    def follow(self) -> None:
        headers = {"Last-Event-ID": str(self.last_seq)}
        with self.engine.stream("GET", f"/v1/channels/{self.channel}/deltas", headers=headers) as answer:
            if answer.status_code == 410:
                raise FeedTrimmed
            answer.raise_for_status()
            for event_id, data in sse_events(answer.iter_lines()):
                delta = json.loads(data)
                self.push(delta["sku"], delta["available"])
                self.save(int(event_id))

    def push(self, sku: str, quantity: int) -> None:
        delay = 0.1
        while True:
            try:
                answer = self.market.put(f"/inventory/{sku}", json={"quantity": quantity})
                if answer.status_code < 300:
                    return
                if answer.status_code == 429:
                    delay = max(delay, float(answer.headers.get("Retry-After", delay)))
                elif answer.status_code < 500:
                    answer.raise_for_status()  # a 4xx other than 429 is a bug worth stopping for
            except httpx.TransportError as exc:
                log.warning("marketplace unreachable (%s)", exc)
            time.sleep(delay)
            delay = min(delay * 2, 30.0)

    def save(self, seq: int) -> None:
        self.last_seq = seq
        if self.state_file is not None:
            temporary = self.state_file.with_suffix(".tmp")
            temporary.write_text(str(seq))
            temporary.replace(self.state_file)


def sse_events(lines: Iterator[str]) -> Iterator[tuple[str, str]]:
    """(id, data) of each ``delta`` event; comments (heartbeats) and other events skipped."""
    event_id, event, data = "", "message", []
    for line in lines:
        if not line:
            if data and event == "delta":
                yield event_id, "\n".join(data)
            event, data = "message", []
        elif line.startswith(":"):
            continue
        else:
            name, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if name == "id":
                event_id = value
            elif name == "event":
                event = value
            elif name == "data":
                data.append(value)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--api", required=True, help="the availability API, e.g. http://127.0.0.1:8000")
    parser.add_argument("--key", required=True, help="an API key with read:<channel> (or read)")
    parser.add_argument("--channel", required=True)
    parser.add_argument("--marketplace", required=True, help="the marketplace's inventory API base URL")
    parser.add_argument("--state-file", type=Path, default=None, help="where the last pushed seq is kept")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        Adapter(args.api, args.key, args.channel, args.marketplace, args.state_file).run()
    except KeyboardInterrupt:
        return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
