"""What every deployable reads from ``AVAIL_*``: where Redis is, how keys are named, how it logs."""

from __future__ import annotations

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import SettingsConfigDict

from engine_settings.logs import LogSettings
from projection.connect import check_url


class CommonSettings(LogSettings):
    """What both the flow and the API need: where Redis is, how keys are named, and the logs' format and level."""

    # A refused Redis URL may hold a password: messages name the setting, never echo the value.
    model_config = SettingsConfigDict(env_prefix="AVAIL_", extra="ignore", hide_input_in_errors=True)

    redis_url: SecretStr = SecretStr("redis://localhost:6379/0")
    redis_prefix: str = Field(
        "avail", pattern=r"^[A-Za-z0-9_.-]{1,32}$",
        description="first part of every Redis key; lets several engines share one Redis",
    )

    @field_validator("redis_url")
    @classmethod
    def _redis_url_parses(cls, url: SecretStr) -> SecretStr:
        try:
            check_url(url.get_secret_value())
        except ValueError as exc:
            raise ValueError(f"AVAIL_REDIS_URL {exc}") from None
        return url
