import hashlib
import hmac

import pytest
from pydantic import SecretStr

from availability_api import auth
from availability_api.auth import ANONYMOUS_ADMIN, AuthConfigError, KeyRing, Principal
from availability_api.errors import Forbidden
from engine_settings import KeyGrant

KEY_A = "a-key-of-sixteen-chars"
KEY_B = "b-key-of-sixteen-chars"
KEY_C = "c-key-of-sixteen-chars"


def principal(*scopes: str) -> Principal:
    return Principal(frozenset(scopes))


class TestScopes:
    def test_read_reads_every_channel_and_all_at_once(self) -> None:
        reader = principal("read")
        assert reader.may_read(None) and reader.may_read("web") and reader.may_read("amazon")

    def test_admin_reads_everything(self) -> None:
        assert principal("admin").may_read(None) and principal("admin").may_read("web")
        assert ANONYMOUS_ADMIN.is_admin

    def test_channel_scope_reads_only_that_channel_and_never_all(self) -> None:
        amazon = principal("read:amazon")
        assert amazon.may_read("amazon")
        assert not amazon.may_read("web")
        assert not amazon.may_read(None)

    def test_forbidden_names_the_scope_needed(self) -> None:
        amazon = principal("read:amazon")
        with pytest.raises(Forbidden, match="'read' or 'read:web'"):
            amazon.require_read("web")
        with pytest.raises(Forbidden, match="'read' scope.*amazon"):
            amazon.require_read(None)
        amazon.require_read("amazon")

    def test_require_any(self) -> None:
        principal("read").require_any("read", "admin")
        with pytest.raises(Forbidden, match="read, admin"):
            principal("read:web").require_any("read", "admin")


class TestKeyRing:
    def test_finds_the_scopes_of_a_configured_key(self) -> None:
        ring = KeyRing([(KEY_A, ["read"]), (KEY_B, ["read:web", "admin"])])
        assert ring.lookup(KEY_B) == principal("read:web", "admin")
        assert ring.lookup(KEY_A) == principal("read")

    def test_unknown_prefix_and_extended_keys_are_refused(self) -> None:
        ring = KeyRing([(KEY_A, ["read"])])
        assert ring.lookup("nope") is None
        assert ring.lookup(KEY_A[:-1]) is None
        assert ring.lookup(KEY_A + "x") is None
        assert ring.lookup("") is None

    @pytest.mark.parametrize("presented", [KEY_A, KEY_C, "wrong-key-entirely"])
    def test_compares_against_every_key_wherever_the_match_is(
        self, monkeypatch: pytest.MonkeyPatch, presented: str,
    ) -> None:
        calls: list[tuple[bytes, bytes]] = []
        real = hmac.compare_digest

        def counting(a: bytes, b: bytes) -> bool:
            calls.append((a, b))
            return real(a, b)

        monkeypatch.setattr(auth.hmac, "compare_digest", counting)
        ring = KeyRing([(KEY_A, ["read"]), (KEY_B, ["read"]), (KEY_C, ["admin"])])
        ring.lookup(presented)
        assert len(calls) == 3
        assert all(len(a) == len(b) == 32 for a, b in calls), "compares fixed-length digests, not raw keys"
        assert {a for a, _ in calls} == {hashlib.sha256(presented.encode()).digest()}
        assert [b for _, b in calls] == [hashlib.sha256(k.encode()).digest() for k in (KEY_A, KEY_B, KEY_C)]

    def test_a_match_is_only_ever_found_through_compare_digest(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setattr(auth.hmac, "compare_digest", lambda a, b: False)
        assert KeyRing([(KEY_A, ["read"])]).lookup(KEY_A) is None

    def test_the_principal_carries_the_keys_digest_never_the_key(self) -> None:
        found = KeyRing([(KEY_A, ["read"]), (KEY_B, ["read"])]).lookup(KEY_B)
        assert found is not None
        assert found.key_id == hashlib.sha256(KEY_B.encode()).digest()
        assert KEY_B not in repr(found) and found.key_id.hex() not in repr(found)

    def test_keeps_no_raw_key(self) -> None:
        ring = KeyRing([(KEY_A, ["read"])])
        assert KEY_A not in repr(vars(ring) if hasattr(ring, "__dict__") else ring._principals)
        assert KEY_A.encode() not in b"".join(principal.key_id for principal in ring._principals)

    def test_non_ascii_key_matches_its_utf8_bytes_as_a_header_carries_them(self) -> None:
        ring = KeyRing([("clé-secrète-assez-longue", ["read"])])
        as_header = "clé-secrète-assez-longue".encode().decode("latin-1")
        assert ring.lookup(as_header) == principal("read")

    def test_from_settings_unwraps_secrets_and_keeps_each_keys_rate(self) -> None:
        ring = KeyRing.from_settings({SecretStr(KEY_A): KeyGrant(("read",)), SecretStr(KEY_B): KeyGrant(("read",), 50)})
        a, b = ring.lookup(KEY_A), ring.lookup(KEY_B)
        assert len(ring) == 2 and a == b == principal("read")  # noqa: PLR2004
        assert a is not None and b is not None and (a.rate_per_s, b.rate_per_s) == (None, 50)

    def test_no_keys_refuses_with_the_way_out(self) -> None:
        with pytest.raises(AuthConfigError, match="AVAIL_API_KEYS") as refused:
            KeyRing([])
        assert "--insecure-no-auth" in str(refused.value)
