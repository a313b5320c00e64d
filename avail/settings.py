"""Typed configuration from ``AVAIL_*`` environment variables, read once at startup."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from atp.events import Topic


class CommonSettings(BaseSettings):
    """What both the flow and the API need: where Redis is and how keys are named."""

    model_config = SettingsConfigDict(env_prefix="AVAIL_", extra="ignore")

    redis_url: SecretStr = SecretStr("redis://localhost:6379/0")
    redis_prefix: str = Field(
        "avail", pattern=r"^[A-Za-z0-9_.-]{1,32}$",
        description="first part of every Redis key; lets several engines share one Redis",
    )


class FlowSettings(CommonSettings):
    """The dataflow: Kafka in, Redis and the dead-letter topic out."""

    kafka_bootstrap: str = "localhost:9092"
    rules_dir: Path = Path("rules")
    topic_pos_sales: str = Topic.POS_SALES.value
    topic_ecom_reservations: str = Topic.ECOM_RESERVATIONS.value
    topic_wms_picks: str = Topic.WMS_PICKS.value
    topic_inventory_transfers: str = Topic.INVENTORY_TRANSFERS.value
    topic_returns: str = Topic.RETURNS.value
    topic_erp_inventory: str = Topic.ERP_INVENTORY.value
    topic_dlq: str = "availability.dlq"
    topic_deltas_prefix: str = Field("availability.deltas.", description="per-channel delta topics: prefix + channel")
    feed_retention: int = Field(1_000_000, ge=1000, description="deltas kept per channel stream for SSE resume")
    deltas_linger_ms: int = Field(
        5, ge=0, le=10_000, description="how long the delta topics' producer gathers deltas into one request")
    feed_window_margin_ms: float = Field(
        50.0, ge=0, description="the throttle's rate window is 1 s plus this, for delivery jitter")
    kafka_fetch_wait_max_ms: int = Field(100, ge=1, le=10_000, description="broker-side wait per fetch")
    kafka_batch_size: int = Field(1000, ge=1, le=100_000, description="messages per poll per partition")
    kafka_queued_max_kbytes: int = Field(8192, ge=64, description="librdkafka prefetch per partition")
    recovery_dir: Path | None = None
    snapshot_interval_s: float = Field(1.0, gt=0, description="epoch length and state snapshot interval")
    backup_interval_s: float = Field(0.0, ge=0, description="how long old snapshots are kept")
    state_log_sync: bool = Field(
        True, description="fsync each shard's state log record before its epoch commits (power-loss safe)")
    heartbeat_interval_s: float = Field(1.0, gt=0)
    rules_poll_interval_s: float = Field(1.0, gt=0, description="how often the rules directory is checked")

    def topic_roles(self) -> dict[str, Topic]:
        """Configured Kafka topic name → its role (which event types it may carry)."""
        roles = {
            self.topic_pos_sales: Topic.POS_SALES,
            self.topic_ecom_reservations: Topic.ECOM_RESERVATIONS,
            self.topic_wms_picks: Topic.WMS_PICKS,
            self.topic_inventory_transfers: Topic.INVENTORY_TRANSFERS,
            self.topic_returns: Topic.RETURNS,
            self.topic_erp_inventory: Topic.ERP_INVENTORY,
        }
        if len(roles) != len(Topic):
            raise ValueError("AVAIL_TOPIC_*: every inbound topic needs its own name")
        return roles


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
