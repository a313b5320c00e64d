"""Bytewax wiring: Kafka in, per-SKU state from ``atp``, Redis and the dead-letter topic out."""

from dataflows.flow import build_flow

__all__ = ["build_flow"]
