"""The body limit as plain ASGI: chunks in, messages out, no server."""

import asyncio

import orjson
from starlette.types import Message, Receive, Scope, Send

from availability_api.body_limit import BodyLimitMiddleware

CHUNKED = [(b"transfer-encoding", b"chunked")]


def scope(headers: list[tuple[bytes, bytes]]) -> Scope:
    return {"type": "http", "method": "POST", "path": "/", "headers": headers}


async def read_all(scope: Scope, receive: Receive, send: Send) -> None:
    size = 0
    while True:
        message = await receive()
        size += len(message.get("body", b""))
        if not message.get("more_body"):
            break
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": str(size).encode()})


def run(app_scope: Scope, chunks: list[bytes], limit: int = 10) -> tuple[list[Message], int]:
    pending = list(chunks)
    handed = 0

    async def receive() -> Message:
        nonlocal handed
        body = pending.pop(0)
        handed += 1
        return {"type": "http.request", "body": body, "more_body": bool(pending)}

    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    asyncio.run(BodyLimitMiddleware(read_all, limit)(app_scope, receive, send))
    return sent, handed


def test_a_body_within_the_limit_reaches_the_app() -> None:
    sent, _ = run(scope(CHUNKED), [b"12345", b"67890"])
    assert sent[0]["status"] == 200 and sent[1]["body"] == b"10"
    sent, _ = run(scope([(b"content-length", b"10")]), [b"12345", b"67890"])
    assert sent[0]["status"] == 200 and sent[1]["body"] == b"10"


def test_a_chunked_body_past_the_limit_answers_413_json_without_reading_on() -> None:
    sent, handed = run(scope(CHUNKED), [b"12345", b"67890", b"x", b"never read"])
    assert sent[0]["status"] == 413
    assert orjson.loads(sent[1]["body"])["error"] | {"message": ""} == {
        "code": "body_too_large", "message": "", "field": "body"}
    assert handed == 3


def test_a_declared_length_past_the_limit_answers_413_before_the_app_reads() -> None:
    sent, handed = run(scope([(b"content-length", b"11")]), [b"x" * 11])
    assert sent[0]["status"] == 413
    assert (b"connection", b"close") in sent[0]["headers"]
    assert handed == 0


def test_transfer_encoding_wins_over_a_content_length() -> None:
    sent, _ = run(scope([(b"content-length", b"3"), *CHUNKED]), [b"12345", b"67890", b"x"])
    assert sent[0]["status"] == 413
