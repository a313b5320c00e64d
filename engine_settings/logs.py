"""Logs: one line per record on stderr, JSON or text (``AVAIL_LOG_FORMAT``), in every process.

Modules log through the standard library (``logging.getLogger(__name__)``) and pass
fields as ``extra={...}``; structlog's ``ProcessorFormatter`` renders every record,
uvicorn's and the libraries' included, with the fields as top-level keys. The setup is
a ``logging.config`` dictionary, so ``avail api`` hands the same one to uvicorn, which
applies it again in each of its worker processes.
"""

from __future__ import annotations

import json
import logging
import logging.config
import sys
from datetime import UTC, datetime
from typing import Any, Literal, TextIO

import structlog
from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from structlog.typing import EventDict, WrappedLogger

Rendering = Literal["json", "text"]
LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
UVICORN_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access", "uvicorn.asgi")
_LEFTOVERS = ("message", "asctime", "color_message")  # set by another formatter, or uvicorn's coloured copy
_FIRST = ("timestamp", "level", "logger", "message")
_RENDER_JSON = structlog.processors.JSONRenderer(default=repr, separators=(",", ":"))


class LogSettings(BaseSettings):
    """How every ``avail`` command logs: the format and the level."""

    model_config = SettingsConfigDict(env_prefix="AVAIL_", extra="ignore", hide_input_in_errors=True)

    log_format: Literal["auto", "json", "text"] = Field(
        "auto", description="json: one JSON object a line; text: for people; auto: text on a terminal, else json",
    )
    log_level: str = Field("INFO", description="DEBUG, INFO, WARNING, ERROR or CRITICAL")

    @field_validator("log_format", mode="before")
    @classmethod
    def _known_format(cls, value: object) -> str:
        name = str(value).strip().lower()
        if name not in ("auto", "json", "text"):
            raise ValueError(f"AVAIL_LOG_FORMAT must be json, text or auto, got {value!r}")
        return name

    @field_validator("log_level", mode="before")
    @classmethod
    def _known_level(cls, value: object) -> str:
        name = str(value).strip().upper()
        if name not in LEVELS:
            raise ValueError(f"AVAIL_LOG_LEVEL must be one of {', '.join(LEVELS)}, got {value!r}")
        return name

    def rendering(self, stream: TextIO | None = None) -> Rendering:
        """``auto`` resolved: text when ``stream`` (stderr) is a terminal."""
        if self.log_format != "auto":
            return self.log_format
        stream = sys.stderr if stream is None else stream
        try:
            return "text" if stream.isatty() else "json"
        except (AttributeError, ValueError):  # no stream, or a closed one
            return "json"

    def uvicorn_level(self) -> str:
        """The level of uvicorn's own loggers: the configured one, but never below info (its debug is per request)."""
        return self.log_level.lower() if logging.getLevelName(self.log_level) > logging.INFO else "info"


def logging_config(settings: LogSettings | None = None) -> dict[str, Any]:
    """The ``logging.config.dictConfig`` dictionary: every record to one stderr handler.

    Plain data, so uvicorn can pass it to its worker processes (``log_config``).
    """
    settings = settings if settings is not None else LogSettings()
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"avail": {"()": f"{__name__}.formatter", "rendering": settings.rendering()}},
        "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "avail", "stream": "ext://sys.stderr"}},
        "root": {"level": settings.log_level, "handlers": ["stderr"]},
        # uvicorn's records go through the root's handler, not handlers of their own
        "loggers": {name: {"handlers": [], "propagate": True} for name in UVICORN_LOGGERS},
    }


def configure_logging(settings: LogSettings | None = None) -> dict[str, Any]:
    """Applies ``logging_config`` in this process; returns it (for uvicorn)."""
    config = logging_config(settings)
    logging.config.dictConfig(config)
    return config


def formatter(rendering: Rendering = "json") -> structlog.stdlib.ProcessorFormatter:
    """The formatter of every record: time (ISO 8601, UTC), level, logger, message, then the ``extra`` fields."""
    return structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[
            _timestamp,
            structlog.stdlib.add_log_level,
            structlog.stdlib.add_logger_name,
            structlog.stdlib.ExtraAdder(),
            _drop_leftovers,
        ],
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            structlog.processors.EventRenamer("message"),
            _ordered,
            _render_text if rendering == "text" else _RENDER_JSON,
        ],
    )


def _timestamp(_: WrappedLogger, __: str, event: EventDict) -> EventDict:
    record: logging.LogRecord = event["_record"]  # when it was logged, not when it was formatted
    at = datetime.fromtimestamp(record.created, UTC)
    event["timestamp"] = at.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return event


def _drop_leftovers(_: WrappedLogger, __: str, event: EventDict) -> EventDict:
    for key in _LEFTOVERS:
        event.pop(key, None)
    return event


def _ordered(_: WrappedLogger, __: str, event: EventDict) -> EventDict:
    return {**{key: event.pop(key) for key in _FIRST if key in event}, **event}


def _render_text(_: WrappedLogger, __: str, event: EventDict) -> str:
    """``<time> <LEVEL> <logger>: <message> key=value ...``, then the traceback, if any."""
    exception = event.pop("exception", None)
    line = (f"{event.pop('timestamp', '')} {str(event.pop('level', '')).upper()} {event.pop('logger', '')}: "
            f"{event.pop('message', '')}")
    line += "".join(f" {key}={_text_value(value)}" for key, value in event.items())
    return f"{line}\n{exception}" if exception else line


def _text_value(value: Any) -> str:
    if isinstance(value, str) and value and not any(c.isspace() or c in "\"'=" for c in value):
        return value
    return json.dumps(value, default=repr)
