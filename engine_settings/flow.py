"""The dataflow's settings (``avail flow``), read once at startup from ``AVAIL_*``."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from atp.events import Topic
from engine_settings.base import CommonSettings


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
    topic_erp_supply: str = Topic.ERP_SUPPLY.value
    topic_dlq: str = "availability.dlq"
    topic_deltas_prefix: str = Field("availability.deltas.", description="per-channel delta topics: prefix + channel")
    feed_retention: int = Field(1_000_000, ge=1000, description="deltas kept per channel stream for SSE resume")
    deltas_linger_ms: int = Field(
        5, ge=0, le=10_000, description="how long the delta topics' producer gathers deltas into one request")
    feed_window_margin_ms: float = Field(
        50.0, ge=0, description="the throttle's rate window is 1 s plus this, for delivery jitter")
    kafka_fetch_wait_max_ms: int = Field(100, ge=1, le=10_000, description="broker-side wait per fetch")
    kafka_batch_size: int = Field(
        5000, ge=1, le=100_000, description="messages per poll per partition (up to what is prefetched)")
    kafka_queued_max_kbytes: int = Field(
        1024, ge=64, description="librdkafka prefetch per partition (8 MiB held ~10 MB more RSS, no faster)")
    recovery_dir: Path | None = None
    snapshot_interval_s: float = Field(1.0, gt=0, description="epoch length and state snapshot interval")
    backup_interval_s: float = Field(0.0, ge=0, description="how long old snapshots are kept")
    state_log_sync: bool = Field(
        True, description="fsync each shard's state log record before its epoch commits (power-loss safe)")
    redis_background_writes: bool = Field(
        True, description="write SKUs to Redis on a thread beside each worker, finished before their epoch commits")
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
            self.topic_erp_supply: Topic.ERP_SUPPLY,
        }
        if len(roles) != len(Topic):
            raise ValueError("AVAIL_TOPIC_*: every inbound topic needs its own name")
        return roles
