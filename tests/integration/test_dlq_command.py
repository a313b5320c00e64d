"""``avail dlq`` as an operator runs it, against the real broker and flow: list, export, fix, republish."""

from __future__ import annotations

import subprocess
import sys
import uuid
from pathlib import Path

import orjson
import pytest

from atp.encoding import rfc3339
from atp.events import Disposition, Receipt, Return, Sale, Topic
from tests.integration.test_flow import HOUR, converges, now_us
from tests.support.engine import Engine, flow_log, wait_for

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def redis_url(any_redis_url: str) -> str:
    """This module runs on one Redis and again on a Redis Cluster."""
    return any_redis_url


def avail(engine: Engine, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603 - our own interpreter and arguments
        [sys.executable, "-m", "avail", "dlq", *args], env=engine.env(), capture_output=True, text=True, timeout=90,
        check=False,
    )


def by_code(listing: str) -> dict[str, int]:
    """The counts block of ``avail dlq list``."""
    block = listing.split("by code:\n", 1)[1].split("\n")
    rows = [line.split() for line in block if line.startswith("  ") and len(line.split()) == 2]
    return {code: int(count) for count, code in rows}


def test_rejects_are_listed_by_code_exported_fixed_and_republished(engine: Engine, tmp_path: Path) -> None:
    sku, at = f"TV-{uuid.uuid4().hex[:8]}", rfc3339(now_us() - HOUR)
    sale = {"type": "sale", "event_id": f"{sku}-s", "sku": sku, "node": "dc-east", "qty": 0, "occurred_at": at}
    ret = {"type": "return", "event_id": f"{sku}-r", "sku": sku, "node": "dc-east", "qty": 2,
           "disposition": "restock", "occurred_at": "yesterday"}
    receipt = {"type": "receipt", "event_id": f"{sku}-p", "sku": sku, "node": "dc-east", "qty": 10, "occurred_at": at}
    bad = [
        (Topic.POS_SALES, orjson.dumps(sale)),  # qty_out_of_range
        (Topic.RETURNS, orjson.dumps(ret)),  # bad_timestamp
        (Topic.POS_SALES, orjson.dumps(receipt)),  # wrong_topic: a receipt belongs on erp.inventory
        (Topic.WMS_PICKS, b"this is not json"),
        (Topic.WMS_PICKS, b"\xff\xfe binary"),
    ]
    for role, value in bad:
        engine.produce_raw(role, value, sku.encode())
    engine.producer.flush(10)
    assert len(engine.dead_letters(at_least=len(bad))) >= len(bad), flow_log(engine)

    listed = avail(engine, "list", "--limit", "50")
    assert listed.returncode == 0, listed.stderr
    assert by_code(listed.stdout) == {"qty_out_of_range": 1, "bad_timestamp": 1, "wrong_topic": 1, "not_json": 1,
                                      "not_utf8": 1}, listed.stdout
    assert f"{engine.topics[Topic.WMS_PICKS]}[" in listed.stdout and "'this is not json' (16 bytes)" in listed.stdout
    only = avail(engine, "list", "--code", "bad_timestamp")
    assert "newest 1 with code bad_timestamp" in only.stdout and "occurred_at must be an RFC 3339" in only.stdout

    exported = tmp_path / "rejects.jsonl"
    done = avail(engine, "export", "-o", str(exported))
    assert done.returncode == 0 and "wrote 5 line(s)" in done.stderr, done.stderr
    order = ["qty_out_of_range", "bad_timestamp", "wrong_topic", "not_json", "not_utf8"]  # the DLQ's order varies
    lines = sorted((orjson.loads(line) for line in exported.read_text().splitlines()),
                   key=lambda line: order.index(line["error"]))
    assert [line["error"] for line in lines] == order
    assert lines[0]["key"] == sku and orjson.loads(lines[0]["value"]) == sale
    assert "value_base64" in lines[4]

    # the operator fixes three lines, leaves the two hopeless ones, and checks first
    lines[0]["value"] = lines[0]["value"].replace('"qty":0', '"qty":3')
    lines[1]["value"] = lines[1]["value"].replace("yesterday", at)
    lines[2]["topic"] = engine.topics[Topic.ERP_INVENTORY]
    exported.write_bytes(b"".join(orjson.dumps(line) + b"\n" for line in lines))
    dry = avail(engine, "republish", str(exported), "--dry-run")
    assert dry.returncode == 1, dry.stdout + dry.stderr
    assert "would publish 3 event(s); refused 2 line(s)" in dry.stdout
    assert "rejects.jsonl:line 4: refused: not_json" in dry.stderr and "line 5: refused: not_utf8" in dry.stderr

    rejected_before = {k: v for k, v in engine.stats().items() if k.startswith("rejected:")}
    published = avail(engine, "republish", str(exported))
    assert published.returncode == 1, published.stdout + published.stderr
    assert f"published line 1: {engine.topics[Topic.POS_SALES]} key '{sku}': sale '{sku}-s'" in published.stdout
    assert "published 3 event(s); refused 2 line(s)" in published.stdout

    fixed = [Sale(f"{sku}-s", sku, "dc-east", 3, 0), Return(f"{sku}-r", sku, "dc-east", 2, Disposition.RESTOCK, 0),
             Receipt(f"{sku}-p", sku, "dc-east", 10, 0)]  # times do not matter without a snapshot
    got, want = converges(engine, sku, fixed)
    assert got == want, flow_log(engine)
    assert got.positions["dc-east"][0] == 10 - 3 + 2
    after = wait_for(engine.stats, lambda s: s.get("applied", 0) > 0)
    assert {k: v for k, v in after.items() if k.startswith("rejected:")} == rejected_before
