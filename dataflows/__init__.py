"""Bytewax wiring: Kafka in, per-SKU state from ``atp``, Redis and the dead-letter topic out."""

from atp.native import use_sources_unless_wanted

use_sources_unless_wanted()  # before any compiled module is imported (AVAIL_NATIVE=0)

# ruff: noqa: E402

from dataflows.flow import build_flow

__all__ = ["build_flow"]
