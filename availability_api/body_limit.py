"""Request body size limit, as pure ASGI middleware (so it also sees chunked bodies).

A declared ``Content-Length`` over the limit is refused before the app runs, without
reading the body; one within it (or none, and no body) passes untouched. A chunked body
is counted while the app reads it, and reading past the limit raises ``BodyTooLarge``,
which the error handlers answer 413; the app never holds more than the limit plus one
chunk.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from availability_api.errors import BodyTooLarge, error_body

_CONTENT_LENGTH = b"content-length"
_TRANSFER_ENCODING = b"transfer-encoding"
_NO_BODY = 0


def _declared_length(scope: Scope) -> int | None:
    """The Content-Length; 0 when the request has no body at all; None when chunked (length unknown)."""
    length: int | None = _NO_BODY
    for name, value in scope["headers"]:
        if name == _TRANSFER_ENCODING:
            return None  # wins over a Content-Length, as it does for the server
        if name == _CONTENT_LENGTH:
            try:
                length = int(value)
            except ValueError:
                length = None  # the server refuses a malformed one before we are called; count anyway
    return length


class BodyLimitMiddleware:
    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _declared_length(scope)
        if declared is not None:
            # The server never hands on more than a declared length: no counting needed (GETs land here).
            if declared > self.max_bytes:
                await self._refuse(send)
            else:
                await self.app(scope, receive, send)
            return
        received = 0
        started = False

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise BodyTooLarge(self.max_bytes)
            return message

        async def noting_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counting_receive, noting_send)
        except BodyTooLarge:
            # Normally answered by the error handlers; this covers a read outside them.
            if started:
                raise
            await self._refuse(send)

    async def _refuse(self, send: Send) -> None:
        body = error_body("body_too_large", BodyTooLarge(self.max_bytes).detail, "body")
        await send({"type": "http.response.start", "status": 413, "headers": [
            (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
            (b"connection", b"close"),
        ]})
        await send({"type": "http.response.body", "body": body})
