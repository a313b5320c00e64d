"""One root for every error the domain raises."""

from __future__ import annotations


class AtpError(Exception):
    """Base of all availability-domain errors."""


class InvalidRule(AtpError):
    """A rule set that cannot be built: names the offending key path and why."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(path, reason)
        self.path = path
        self.reason = reason

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}"


class UnknownSku(AtpError):
    """A SKU the engine has never seen an event for."""

    def __init__(self, sku: str) -> None:
        super().__init__(sku)
        self.sku = sku

    def __str__(self) -> str:
        return f"unknown sku {self.sku!r}"
