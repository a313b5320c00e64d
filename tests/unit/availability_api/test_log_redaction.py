import logging

import pytest

from availability_api import log_redaction
from availability_api.log_redaction import redact_query

KEY_LIKE = "s3cret-key-0123456789abcdef"


@pytest.mark.parametrize(("target", "logged"), [
    ("/v1/availability/TV-55", "/v1/availability/TV-55"),
    (f"/v1/availability/TV-55?api_key={KEY_LIKE}", "/v1/availability/TV-55?api_key=***"),
    (f"/x?channel=web&key={KEY_LIKE}&flag", "/x?channel=***&key=***&flag"),
    ("/x?", "/x?"),
])
def test_query_values_are_replaced(target: str, logged: str) -> None:
    assert redact_query(target) == logged


def record(logger: str, msg: str, *args: object) -> logging.LogRecord:
    return logging.LogRecord(logger, logging.INFO, __file__, 1, msg, args, None)


def test_access_and_trace_logs_lose_the_query_values() -> None:
    log_redaction.install()
    log_redaction.install()  # a second app in the process adds no second filter
    access = logging.getLogger(log_redaction.ACCESS_LOGGER)
    assert sum(isinstance(f, log_redaction._RedactAccessLog) for f in access.filters) == 1

    line = record(log_redaction.ACCESS_LOGGER, '%s - "%s %s HTTP/%s" %d',
                  "127.0.0.1:5", "GET", f"/v1/availability/TV-55?api_key={KEY_LIKE}", "1.1", 401)
    assert access.filter(line)
    assert KEY_LIKE not in line.getMessage() and "api_key=***" in line.getMessage()

    trace = logging.getLogger(log_redaction.ASGI_TRACE_LOGGER)
    scope = {"type": "http", "path": "/x", "query_string": f"k={KEY_LIKE}".encode(), "headers": "<...>"}
    line = record(log_redaction.ASGI_TRACE_LOGGER, "%s [%d] Started scope=%s", "ASGI", 1, scope)
    assert trace.filter(line)
    assert KEY_LIKE not in line.getMessage()
    assert scope["query_string"] == f"k={KEY_LIKE}".encode(), "the live scope is left alone"
