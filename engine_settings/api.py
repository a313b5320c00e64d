"""The query API's settings (``avail api``), read once at startup from ``AVAIL_*``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import Field, SecretStr, field_validator

from engine_settings.base import CommonSettings

SCOPES_HINT = "use read, read:<channel> or admin"


@dataclass(frozen=True, slots=True)
class KeyGrant:
    """What one API key may do: its scopes, and its request limit shared by every API process (None: none)."""

    scopes: tuple[str, ...]
    rate_per_s: int | None = None


def _grant(position: int, value: Any) -> KeyGrant:
    """One ``AVAIL_API_KEYS`` value; errors name the key by its place, never by the key."""
    where = f"key #{position}"
    if isinstance(value, KeyGrant):
        return value
    if isinstance(value, dict):
        unknown = sorted(set(value) - {"scopes", "rate_per_s"})
        if unknown:
            raise ValueError(f"{where}: unknown field {unknown[0]!r}; a key takes scopes and rate_per_s")
        if "scopes" not in value:
            raise ValueError(f"{where}: scopes is missing")
        rate = value.get("rate_per_s")
        if rate is not None and (type(rate) is not int or rate < 1):
            raise ValueError(f"{where}: rate_per_s must be a whole number of requests a second, 1 or more "
                             f"(leave it out for no limit), got {rate!r}")
        scopes = value["scopes"]
    else:
        scopes, rate = value, None
    if not isinstance(scopes, list) or not all(isinstance(scope, str) for scope in scopes):
        raise ValueError(f"{where}: scopes must be a list of strings ({SCOPES_HINT})")
    for scope in scopes:
        if scope not in ("read", "admin") and not scope.startswith("read:"):
            raise ValueError(f"{where}: unknown scope {scope!r}: {SCOPES_HINT}")
    return KeyGrant(tuple(scopes), rate)


class ApiSettings(CommonSettings):
    """The query API."""

    api_keys: dict[SecretStr, KeyGrant] | None = Field(
        None, description='JSON object: key → scopes (read, read:<channel>, admin), or key → {"scopes": [...], '
        '"rate_per_s": N} for a request limit shared by every API process (none without rate_per_s)',
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
    rate_limit_per_s: str | None = Field(None, description="gone: set rate_per_s per key in AVAIL_API_KEYS")
    rate_limit_burst: str | None = Field(None, description="gone: set rate_per_s per key in AVAIL_API_KEYS")
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
    read_cache_stale_grace_s: float = Field(
        0.1, ge=0, le=1,
        description="longest a cached SKU that requests use is still served after Redis reported it changed, "
        "while it is read again at once (0: dropped at once, and requests wait for the read)",
    )
    read_cache_max_entries: int = Field(
        20_000, ge=1, le=10_000_000, description="SKU hashes the read cache holds per API process (oldest dropped)",
    )

    @field_validator("api_keys", mode="before")
    @classmethod
    def _grants(cls, keys: Any) -> dict[str, KeyGrant] | None:
        if keys is None:
            return None
        if not isinstance(keys, dict):
            raise ValueError('must be a JSON object of key -> scopes or {"scopes": [...], "rate_per_s": N}')
        grants = {}
        for position, (key, value) in enumerate(keys.items(), start=1):
            secret = key.get_secret_value() if isinstance(key, SecretStr) else str(key)
            if len(secret) < 16:  # noqa: PLR2004
                raise ValueError(f"key #{position}: every API key must be at least 16 characters")
            grants[secret] = _grant(position, value)
        return grants

    @field_validator("rate_limit_per_s", "rate_limit_burst")
    @classmethod
    def _gone(cls, value: str | None) -> None:
        if value is not None:
            raise ValueError('no longer read: request limits are per key and shared by every API process; set '
                             '"rate_per_s" on the key in AVAIL_API_KEYS, e.g. {"<key>": {"scopes": ["read"], '
                             '"rate_per_s": 50}}')
