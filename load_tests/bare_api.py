"""The bare baseline for the query benchmark: FastAPI answering constants, no Redis, no auth.

``GET /v1/availability/{sku}`` answers one SKU's document; ``POST
/v1/availability/batch`` reads the request body (as the real route must) and answers a
constant batch of ``BATCH_ITEMS`` documents of about the size the engine sends for
100 SKUs on one channel.
"""

import orjson
from fastapi import FastAPI, Request, Response

BODY = (b'{"sku":"X","as_of":"2026-11-23T10:15:00.123Z","rules_version":"3f9c2a1b","channels":{"web":7},'
        b'"nodes":[{"node":"store-001","on_hand":5,"reserved":1,"in_transit":0,"unsellable":0,'
        b'"safety_stock":2,"atp":2}]}')

BATCH_ITEMS = 100
_NODE = {"node": "store-001", "on_hand": 149, "reserved": 0, "in_transit": 0, "unsellable": 0, "safety_stock": 1,
         "atp": 148}
BATCH_BODY = orjson.dumps({"results": [
    {"sku": f"SKU-{i:06d}", "known": True, "as_of": "2026-11-23T10:15:00.123Z", "rules_version": "3f9c2a1b",
     "channels": {"web": 148}, "nodes": [_NODE | {"node": node} for node in ("dc-central", "dc-east", "dc-west",
                                                                              "store-037", "store-042")]}
    for i in range(BATCH_ITEMS)
], "stale": False})
"""About what the engine answers for 100 SKUs on one channel (3 DCs and 1 or 2 stores feeding it): about 65 KB."""

app = FastAPI()


@app.post("/v1/availability/batch")
async def batch(request: Request) -> Response:
    await request.body()
    return Response(BATCH_BODY, media_type="application/json")


@app.get("/v1/availability/{sku}")
async def availability(sku: str) -> Response:
    return Response(BODY, media_type="application/json")
