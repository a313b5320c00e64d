import base64
import string

import pytest
from hypothesis import given
from hypothesis import strategies as st

from availability_api.documents import (
    SnapshotCursor,
    decode_snapshot_cursor,
    encode_cursor,
    encode_snapshot_cursor,
    snapshot_page,
)
from availability_api.errors import InvalidCursor

SKU_CHARS = string.ascii_letters + string.digits + "._:/-"


class TestSnapshotCursor:
    @given(st.integers(0, 2**63 - 1), st.text(SKU_CHARS, min_size=1, max_size=64))
    def test_round_trips_the_delta_seq_and_the_sku(self, seq: int, sku: str) -> None:
        cursor = encode_snapshot_cursor(SnapshotCursor(seq, sku))
        assert len(cursor) <= 200  # the query parameter's limit
        assert all(c in string.ascii_letters + string.digits + "-_." for c in cursor)
        assert decode_snapshot_cursor(cursor) == SnapshotCursor(seq, sku)

    @given(st.text(SKU_CHARS, min_size=1, max_size=64))
    def test_a_cursor_of_the_old_format_is_refused(self, sku: str) -> None:
        with pytest.raises(InvalidCursor):
            decode_snapshot_cursor(encode_cursor(sku))

    @pytest.mark.parametrize("cursor", [
        "", ".", "12.", ".VFYtNTU", "-1.VFYtNTU", "012.VFYtNTU", "1e3.VFYtNTU", "1.2.VFYtNTU", "1 .VFYtNTU",
        "1." + base64.urlsafe_b64encode(b"bad sku").decode().rstrip("="), "9" * 20 + ".VFYtNTU",
    ])
    def test_refuses_what_it_could_not_have_made(self, cursor: str) -> None:
        with pytest.raises(InvalidCursor) as refused:
            decode_snapshot_cursor(cursor)
        assert (refused.value.status_code, refused.value.field) == (422, "cursor")


class TestSnapshotPage:
    def test_carries_the_delta_cursor(self) -> None:
        page = snapshot_page("web", "v1", ["A", "B"], ["4", None], "7.Qg", "7", 12)
        assert page == {"channel": "web", "rules_version": "v1",
                        "items": [{"sku": "A", "available": 4}, {"sku": "B", "available": 0}],
                        "next_cursor": "7.Qg", "delta_cursor": "7", "pending_deltas": 12}
