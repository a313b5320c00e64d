"""What every deployable reads from ``AVAIL_*``: where Redis is and how keys are named."""

from __future__ import annotations

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class CommonSettings(BaseSettings):
    """What both the flow and the API need: where Redis is and how keys are named."""

    model_config = SettingsConfigDict(env_prefix="AVAIL_", extra="ignore")

    redis_url: SecretStr = SecretStr("redis://localhost:6379/0")
    redis_prefix: str = Field(
        "avail", pattern=r"^[A-Za-z0-9_.-]{1,32}$",
        description="first part of every Redis key; lets several engines share one Redis",
    )
