"""The bare baseline for the query benchmark: FastAPI answering a constant, no Redis, no auth."""

from fastapi import FastAPI, Response

BODY = (b'{"sku":"X","as_of":"2026-11-23T10:15:00.123Z","rules_version":"3f9c2a1b","channels":{"web":7},'
        b'"nodes":[{"node":"store-001","on_hand":5,"reserved":1,"in_transit":0,"unsellable":0,'
        b'"safety_stock":2,"atp":2}]}')

app = FastAPI()


@app.get("/v1/availability/{sku}")
async def availability(sku: str) -> Response:
    return Response(BODY, media_type="application/json")
