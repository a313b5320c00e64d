"""Every ``avail`` command logs through one setup; ``avail api`` hands it to uvicorn and its workers."""

from __future__ import annotations

from typing import Any

import pytest

from avail.cli import _api, main, parser


def test_a_bad_log_format_stops_any_command_naming_the_variable_and_the_value(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("AVAIL_LOG_FORMAT", "xml")
    assert main(["rules", "schema"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("avail: invalid configuration") and "AVAIL_LOG_FORMAT" in err and "'xml'" in err


@pytest.mark.parametrize("workers", [1, 2])
def test_the_api_gives_uvicorn_the_logging_setup_for_every_worker(
    workers: int, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AVAIL_LOG_FORMAT", "json")
    monkeypatch.setenv("AVAIL_LOG_LEVEL", "DEBUG")
    monkeypatch.setenv("AVAIL_API_KEYS", '{"a-key-of-sixteen-chars": ["read"]}')
    ran: dict[str, Any] = {}
    monkeypatch.setattr("uvicorn.run", lambda *args, **kwargs: ran.update(kwargs))
    assert _api(parser().parse_args(["api", "--workers", str(workers)])) == 0
    config = ran["log_config"]
    assert config["formatters"]["avail"] == {"()": "engine_settings.logs.formatter", "rendering": "json"}
    assert config["root"] == {"level": "DEBUG", "handlers": ["stderr"]}
    assert ran["workers"] == workers and ran["log_level"] == "info"
