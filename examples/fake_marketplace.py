"""A stand-in for a marketplace's inventory API, for trying the adapter locally.

``PUT /inventory/{sku}`` with ``{"quantity": n}`` stores a quantity; more than
``RATE`` calls per second answer 429 with ``Retry-After``, and about 1 call in
``FLAKY`` answers 503, like the real thing on a bad day. ``GET /inventory`` returns
everything stored. Run: ``uvicorn examples.fake_marketplace:app --port 9000``.
"""

from __future__ import annotations

import os
import random
import time

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse

RATE = float(os.environ.get("FAKE_MARKETPLACE_RATE", "100"))
FLAKY = int(os.environ.get("FAKE_MARKETPLACE_FLAKY", "50"))

app = FastAPI(title="fake marketplace")
inventory: dict[str, int] = {}
calls = {"accepted": 0, "throttled": 0, "failed": 0}
_bucket = {"tokens": RATE, "at": time.monotonic()}


def _take_token() -> bool:
    now = time.monotonic()
    _bucket["tokens"] = min(RATE, _bucket["tokens"] + (now - _bucket["at"]) * RATE)
    _bucket["at"] = now
    if _bucket["tokens"] < 1:
        return False
    _bucket["tokens"] -= 1
    return True


@app.put("/inventory/{sku:path}")
async def put_quantity(sku: str, request: Request) -> Response:
    if not _take_token():
        calls["throttled"] += 1
        return JSONResponse({"error": "rate limited"}, status_code=429, headers={"Retry-After": "1"})
    if FLAKY and random.randrange(FLAKY) == 0:  # noqa: S311 - simulated outages, not security
        calls["failed"] += 1
        return JSONResponse({"error": "try again"}, status_code=503)
    inventory[sku] = int((await request.json())["quantity"])
    calls["accepted"] += 1
    return Response(status_code=204)


@app.get("/inventory")
async def everything() -> dict[str, object]:
    return {"inventory": inventory, "calls": calls}
