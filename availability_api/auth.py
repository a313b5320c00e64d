"""API keys and their scopes.

A key is looked up by comparing the SHA-256 digest of what was presented with the
digest of every configured key, each with ``hmac.compare_digest`` and without
stopping at a match, so the time taken says nothing about which key (if any) was
close. Keys are never logged; only their digests are kept in memory.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from pydantic import SecretStr

from availability_api.errors import Forbidden
from engine_settings import KeyGrant

READ = "read"
ADMIN = "admin"
CHANNEL_READ_PREFIX = "read:"


class AuthConfigError(ValueError):
    """The API cannot start with the key configuration it was given."""


NO_KEYS_MESSAGE = (
    "AVAIL_API_KEYS is not set: the API refuses to start without API keys. Set AVAIL_API_KEYS to a JSON "
    'object of key -> scopes, e.g. {"<a random key of 16+ characters>": ["read"]}, or start with '
    "--insecure-no-auth (AVAIL_INSECURE_NO_AUTH=true) to serve every route without a key, for development only."
)


@dataclass(frozen=True, slots=True)
class Principal:
    """The scopes of the key that made a request, its digest and its request limit."""

    scopes: frozenset[str]
    key_id: bytes = field(default=b"", compare=False, repr=False)
    """SHA-256 digest of the key; empty when authentication is off. Identifies the key, never reveals it."""
    rate_per_s: int | None = field(default=None, compare=False)
    """Requests a second this key may make across every API process; None: no limit."""

    @property
    def is_admin(self) -> bool:
        return ADMIN in self.scopes

    def may_read(self, channel: str | None) -> bool:
        """Whether this key may read one channel, or every channel when ``channel`` is None."""
        if ADMIN in self.scopes or READ in self.scopes:
            return True
        return channel is not None and CHANNEL_READ_PREFIX + channel in self.scopes

    def require_read(self, channel: str | None) -> None:
        """Raises ``Forbidden`` naming the scope that would be needed."""
        if self.may_read(channel):
            return
        if channel is None:
            raise Forbidden(
                "reading every channel needs the 'read' scope; this key may only read "
                + ", ".join(sorted(self.channels())) + " (ask with channel=<name>)",
            )
        raise Forbidden(f"reading channel {channel!r} needs the 'read' or 'read:{channel}' scope")

    def require_any(self, *scopes: str) -> None:
        if self.scopes.isdisjoint(scopes):
            raise Forbidden("this route needs one of the scopes: " + ", ".join(scopes))

    def channels(self) -> set[str]:
        return {s.removeprefix(CHANNEL_READ_PREFIX) for s in self.scopes if s.startswith(CHANNEL_READ_PREFIX)}


ANONYMOUS_ADMIN = Principal(frozenset({ADMIN}))
"""Who every request is when authentication is switched off."""


def _digest(key: bytes) -> bytes:
    return hashlib.sha256(key).digest()


class KeyRing:
    """Configured keys (as digests), their scopes and request limits."""

    def __init__(self, keys: Iterable[tuple[str, Iterable[str]] | tuple[str, Iterable[str], int | None]]) -> None:
        self._principals = tuple(
            Principal(frozenset(entry[1]), digest, entry[2] if len(entry) > 2 else None)  # noqa: PLR2004
            for entry in keys for digest in (_digest(entry[0].encode()),)
        )
        if not self._principals:
            raise AuthConfigError(NO_KEYS_MESSAGE)

    @classmethod
    def from_settings(cls, keys: Mapping[SecretStr, KeyGrant]) -> KeyRing:
        return cls((key.get_secret_value(), grant.scopes, grant.rate_per_s) for key, grant in keys.items())

    def __len__(self) -> int:
        return len(self._principals)

    def lookup(self, presented: str) -> Principal | None:
        """The principal of a presented key, or None; compares against every key, always."""
        # Header values reach us decoded as latin-1; this gives back the raw bytes sent.
        digest = _digest(presented.encode("latin-1", errors="replace"))
        found: Principal | None = None
        for principal in self._principals:
            if hmac.compare_digest(digest, principal.key_id) and found is None:
                found = principal
        return found
