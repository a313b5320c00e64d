"""What crosses processes pickles to an equal value, on the compiled core as on the sources.

Bytewax pickles the items a cluster moves between workers (a poll's events by shard, a
shard's writes and deltas, dead letters) and the state log pickles its records; a class
compiled with mypyc needs ``serializable=True`` for that (``atp.native``).
"""

from __future__ import annotations

import pickle

import pytest

from atp.events import (
    Adjustment,
    Disposition,
    InventorySnapshot,
    Pick,
    Receipt,
    Release,
    Reserve,
    Return,
    Sale,
    SaleVoid,
    SupplyCancelled,
    SupplyExpected,
    TransferCancelled,
    TransferReceived,
    TransferShipped,
)
from atp.outcomes import ChannelChange, Incident, IncidentKind, Outcome, Status
from atp.positions import NodePosition
from atp.rejections import RejectCode, Rejection
from atp.rules import RuleSet
from atp.state import SkuState
from dataflows.kafka_io import DecodedBatch
from dataflows.messages import (
    Backlog,
    ChannelDelta,
    Counts,
    DeadLetter,
    Heartbeat,
    Inbound,
    RawMessage,
    SkuWrite,
)
from dataflows.messages import Release as FeedRelease
from dataflows.shards import Applied, ShardBatch

AT = 1_795_000_000_000_000
EVENTS = [
    Sale("e1", "TV", "s1", 2, AT), SaleVoid("e2", "TV", "s1", 1, AT), Pick("e3", "TV", "dc", 1, AT, "r1"),
    Receipt("e4", "TV", "dc", 5, AT, "PO-1"), Return("e5", "TV", "s1", 1, Disposition.RESTOCK, AT),
    Adjustment("e6", "TV", "dc", -1, "count", AT), InventorySnapshot("e7", "TV", "dc", 40, AT),
    Reserve("e8", "TV", "r1", "web", 2, AT, "dc", AT + 60), Release("e9", "TV", "r1", AT),
    TransferShipped("e10", "TV", "t1", "dc", "s1", 3, AT, AT + 86_400_000_000),
    TransferReceived("e11", "TV", "t1", "dc", "s1", 2, AT), TransferCancelled("e12", "TV", "t1", "dc", "s1", 1, AT),
    SupplyExpected("e13", "TV", "PO-1", "dc", 30, AT + 5, AT), SupplyCancelled("e14", "TV", "PO-1", AT),
]
RAW = RawMessage("pos.sales", 1, 42, b"TV", b"{}")
REJECTION = Rejection(RejectCode.INVALID_VALUE, "qty must be positive", "qty")
INCIDENT = Incident(IncidentKind.OVERSELL, "TV", "e8", 2, 1, 1, AT, channel="web", node="dc")
VALUES = [
    *EVENTS, RAW, Inbound(EVENTS[0], RAW), ShardBatch([Inbound(e, RAW) for e in EVENTS]), REJECTION,
    DeadLetter(RAW, REJECTION), INCIDENT, NodePosition("dc", 5, 1, 0, 0, 2, 2), ChannelChange("web", 3, 4),
    Outcome("TV", Status.APPLIED, (NodePosition("dc", 5, 1, 0, 0, 2, 2),), (ChannelChange("web", 3, 4),), AT,
            "v1", REJECTION, ("x",), (INCIDENT,)),
    SkuWrite("TV", 7, True, {"dc": "5,1,0,0,2,2"}, {"web": 3}, AT, "v1", {"applied": 2}, {"web": 1}, ["old"],
             True, "dc,30,20780", [INCIDENT], ("e1",)),
    ChannelDelta("web", "TV", 3, AT, "v1", "e1"), FeedRelease(ChannelDelta("web", "TV", 3, AT, "v1"), AT),
    Backlog("web", 10, 2, 1), Counts({"applied": 1}), Heartbeat("w0", AT, (("pos.sales", 0, 3),)),
    Applied([SkuWrite("TV", 7, False)], [ChannelDelta("web", "TV", 3, AT, "v1")], [DeadLetter(RAW, REJECTION)],
            {"applied": 1}),
    DecodedBatch({"07": ShardBatch([Inbound(EVENTS[1], RAW)])}, [DeadLetter(RAW, REJECTION)]),
]


@pytest.mark.parametrize("value", VALUES, ids=[f"{i:02d}-{type(v).__name__}" for i, v in enumerate(VALUES)])
def test_a_value_that_crosses_processes_pickles_to_an_equal_one(value: object) -> None:
    copy = pickle.loads(pickle.dumps(value, protocol=5))  # noqa: S301 - our own bytes
    assert type(copy) is type(value)
    assert copy == value


def test_a_skus_state_pickles_whole() -> None:
    state = SkuState("TV")
    state.apply_many(EVENTS, now=AT, rules=RuleSet())
    copy = pickle.loads(pickle.dumps(state, protocol=5))  # noqa: S301
    assert copy.flat() == state.flat()
