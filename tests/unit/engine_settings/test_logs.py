"""Logs: JSON or text lines through structlog's formatter, for our loggers and uvicorn's alike."""

from __future__ import annotations

import io
import json
import logging
import logging.config
import pickle
import re
from collections.abc import Iterator

import pytest
from pydantic import ValidationError

from availability_api import log_redaction
from engine_settings import ApiSettings, FlowSettings, LogSettings
from engine_settings.logs import UVICORN_LOGGERS, formatter, logging_config

ISO_UTC = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def logged(rendering: str, name: str, message: str, *args: object, **extra: object) -> str:
    """What one record logged on ``name`` renders as."""
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(formatter(rendering))  # type: ignore[arg-type]
    logger = logging.getLogger(name)
    logger.addHandler(handler)
    level, logger.level = logger.level, logging.DEBUG
    try:
        logger.info(message, *args, extra=extra or None)
    finally:
        logger.removeHandler(handler)
        logger.level = level
    return out.getvalue()


@pytest.fixture
def restored_logging() -> Iterator[None]:
    """Puts back the root's and uvicorn's loggers after a test applies a whole configuration."""
    names = ["", *UVICORN_LOGGERS]
    saved = {name: (logging.getLogger(name).handlers[:], logging.getLogger(name).level,
                    logging.getLogger(name).propagate) for name in names}
    yield
    for name, (handlers, level, propagate) in saved.items():
        logger = logging.getLogger(name)
        logger.handlers[:], logger.level, logger.propagate = handlers, level, propagate


class TestJson:
    def test_one_line_parses_with_time_level_logger_message_and_the_extra_fields_at_the_top(self) -> None:
        line = logged("json", "dataflows.kafka_io", "event decoded", event_id="e-1", topic="pos.sales",
                      partition=0, offset=7, sku="TV-55")
        assert line.endswith("\n") and line.count("\n") == 1
        record = json.loads(line)
        assert ISO_UTC.fullmatch(record.pop("timestamp"))
        assert record == {"level": "info", "logger": "dataflows.kafka_io", "message": "event decoded",
                          "event_id": "e-1", "topic": "pos.sales", "partition": 0, "offset": 7, "sku": "TV-55"}

    def test_a_printf_style_message_is_rendered_and_a_traceback_kept_in_one_line(self) -> None:
        assert json.loads(logged("json", "avail", "rules %s: %d nodes", "v1", 3))["message"] == "rules v1: 3 nodes"
        out = io.StringIO()
        handler = logging.StreamHandler(out)
        handler.setFormatter(formatter("json"))
        logger = logging.getLogger("tests.logs.failing")
        logger.addHandler(handler)
        try:
            raise ValueError("boom")
        except ValueError:
            logger.error("failed", exc_info=True)
        finally:
            logger.removeHandler(handler)
        (line,) = out.getvalue().splitlines()
        record = json.loads(line)
        assert record["level"] == "error" and "ValueError: boom" in record["exception"]

    def test_values_json_cannot_hold_are_written_as_their_repr(self) -> None:
        record = json.loads(logged("json", "avail", "odd", ids=("a", "b"), raw=b"\x00"))
        assert record["ids"] == ["a", "b"] and record["raw"] == "b'\\x00'"


class TestText:
    def test_a_line_for_people_with_the_fields_after_the_message(self) -> None:
        line = logged("text", "dataflows.redis_sink", "event written", event_id="e-1", sku="TV 55")
        assert re.fullmatch(
            rf'{ISO_UTC.pattern} INFO dataflows.redis_sink: event written event_id=e-1 sku="TV 55"\n', line), line


class TestSettings:
    def test_auto_is_text_on_a_terminal_and_json_otherwise(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.delenv("AVAIL_LOG_FORMAT", raising=False)
        settings = LogSettings()
        assert settings.log_format == "auto"
        assert settings.rendering(Terminal()) == "text"
        assert settings.rendering(io.StringIO()) == "json"
        assert LogSettings(log_format="json").rendering(Terminal()) == "json"

    @pytest.mark.parametrize("model", [LogSettings, FlowSettings, ApiSettings])
    def test_a_bad_format_is_refused_naming_the_variable_and_the_value(
        self, model: type[LogSettings], monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        monkeypatch.setenv("AVAIL_LOG_FORMAT", "xml")
        with pytest.raises(ValidationError) as refused:
            model()
        assert "AVAIL_LOG_FORMAT must be json, text or auto, got 'xml'" in str(refused.value)

    def test_a_bad_level_is_refused_naming_the_variable_and_the_value(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("AVAIL_LOG_LEVEL", "loud")
        with pytest.raises(ValidationError) as refused:
            LogSettings()
        assert "AVAIL_LOG_LEVEL must be one of DEBUG, INFO, WARNING, ERROR, CRITICAL, got 'loud'" in str(refused.value)

    def test_names_are_taken_in_any_case(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("AVAIL_LOG_FORMAT", "JSON")
        monkeypatch.setenv("AVAIL_LOG_LEVEL", "debug")
        settings = LogSettings()
        assert (settings.log_format, settings.log_level) == ("json", "DEBUG")

    @pytest.mark.parametrize(("level", "uvicorn"), [("DEBUG", "info"), ("INFO", "info"), ("ERROR", "error")])
    def test_uvicorn_logs_at_the_level_but_never_its_per_request_debug(self, level: str, uvicorn: str) -> None:
        assert LogSettings(log_level=level).uvicorn_level() == uvicorn


class TestConfiguration:
    def test_uvicorn_records_reach_the_one_handler_in_json(
        self, restored_logging: None, monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        config = logging_config(LogSettings(log_format="json", log_level="DEBUG"))
        out = io.StringIO()
        monkeypatch.setattr("sys.stderr", out)  # the handler's stream is resolved when applied
        logging.config.dictConfig(pickle.loads(pickle.dumps(config)))  # noqa: S301 - as a uvicorn worker gets it
        logging.config.dictConfig(config)  # uvicorn applies it again in the same process: still one handler
        logging.getLogger("uvicorn.error").info("Started server process [%d]", 42, extra={"color_message": "x"})
        logging.getLogger("dataflows.flow").debug("rules %s", "v1")
        first, second = (json.loads(line) for line in out.getvalue().splitlines())
        assert first["logger"] == "uvicorn.error" and first["message"] == "Started server process [42]"
        assert "color_message" not in first
        assert second == {**second, "level": "debug", "logger": "dataflows.flow", "message": "rules v1"}

    def test_query_strings_are_still_redacted_from_the_access_log(
        self, restored_logging: None, monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        out = io.StringIO()
        monkeypatch.setattr("sys.stderr", out)
        logging.config.dictConfig(logging_config(LogSettings(log_format="json")))
        log_redaction.install()
        access = logging.getLogger(log_redaction.ACCESS_LOGGER)
        access.setLevel(logging.INFO)  # uvicorn sets it; with --no-access-log it drops the records instead
        access.info('%s - "%s %s HTTP/%s" %d', "127.0.0.1:5", "GET", "/v1/x?api_key=s3cret", "1.1", 200)
        record = json.loads(out.getvalue())
        assert record["message"] == '127.0.0.1:5 - "GET /v1/x?api_key=*** HTTP/1.1" 200'
        assert "s3cret" not in out.getvalue()
