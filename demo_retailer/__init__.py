"""A synthetic retailer: its catalogue, its stock book and the contract events it emits, fed to Kafka."""

from demo_retailer.feed import run_demo
from demo_retailer.retailer import MIX, DemoRetailer

__all__ = ["MIX", "DemoRetailer", "run_demo"]
