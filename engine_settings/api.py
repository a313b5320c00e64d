"""The query API's settings (``avail api``), read once at startup from ``AVAIL_*``."""

from __future__ import annotations

from pydantic import Field, SecretStr, field_validator

from engine_settings.base import CommonSettings


class ApiSettings(CommonSettings):
    """The query API."""

    api_keys: dict[SecretStr, list[str]] | None = Field(
        None, description="JSON object: key → scopes (read, read:<channel>, admin)",
    )
    stale_after_s: float = Field(
        10.0, gt=0, description="flow heartbeat age after which /readyz fails and answers are flagged flow_down",
    )
    insecure_no_auth: bool = Field(
        False, description="serve every route without an API key (development only; logged loudly)",
    )
    redis_timeout_s: float = Field(
        1.0, gt=0, description="Redis connect/read timeout and pool wait; past it a request answers 503",
    )
    redis_max_connections: int = Field(64, ge=1, le=10_000, description="Redis connections per API process")
    sse_heartbeat_s: float = Field(
        15.0, gt=0, le=3600, description="a delta stream idle this long gets a keepalive comment",
    )
    sse_client_buffer: int = Field(
        10_000, ge=1, le=1_000_000,
        description="deltas buffered for one SSE client; past it the client is disconnected and resumes later",
    )
    rate_limit_per_s: float = Field(
        2000.0, ge=0, description="requests per second per API key and API process (token bucket); 0: no limit",
    )
    rate_limit_burst: int | None = Field(
        None, ge=1, description="requests one key may make at once before the rate applies; unset: one second's worth",
    )
    max_body_bytes: int = Field(
        256 * 1024, ge=1024, le=64 * 1024 * 1024, description="largest request body; a larger one answers 413",
    )
    input_idle_after_s: float = Field(
        300.0, gt=0, description="no event applied for this long flags answers stale (input_idle)",
    )
    max_lag_s: float = Field(
        60.0, gt=0, description="events applied this long after they occurred flag answers stale (lagging)",
    )
    read_cache_ttl_s: float = Field(
        2.0, ge=0, le=3600,
        description="longest a SKU read is served from this process's cache (kept correct by Redis "
        "invalidation; this only bounds a missed one); 0 switches the read cache off",
    )
    read_cache_max_entries: int = Field(
        20_000, ge=1, le=10_000_000, description="SKU hashes the read cache holds per API process (oldest dropped)",
    )

    @field_validator("api_keys")
    @classmethod
    def _scopes_are_known(cls, keys: dict[SecretStr, list[str]] | None) -> dict[SecretStr, list[str]] | None:
        for key, scopes in (keys or {}).items():
            if len(key.get_secret_value()) < 16:
                raise ValueError("every API key must be at least 16 characters")
            for scope in scopes:
                if scope not in ("read", "admin") and not scope.startswith("read:"):
                    raise ValueError(f"unknown scope {scope!r}: use read, read:<channel> or admin")
        return keys
