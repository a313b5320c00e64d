import pytest

from availability_api.errors import InvalidPosition, PositionAhead, PositionTrimmed
from availability_api.sse import (
    KEEPALIVE,
    FeedBounds,
    Position,
    comment,
    delta_frame,
    parse_seq,
    requested_position,
    start_after,
)

DELTA = '{"channel":"web","sku":"TV-55","available":7,"previous":9,"as_of":"2026-11-23T10:15:00.123Z",' \
        '"rules_version":"3f9c2a1b","seq":42}'


class TestFrames:
    def test_a_delta_is_id_event_data_and_a_blank_line(self) -> None:
        assert delta_frame(42, DELTA) == f"id: 42\nevent: delta\ndata: {DELTA}\n\n".encode()

    def test_data_spanning_lines_gets_a_data_line_each(self) -> None:
        assert delta_frame(1, '{\n"a":1\r\n}') == b'id: 1\nevent: delta\ndata: {\ndata: "a":1\ndata: }\n\n'

    def test_non_ascii_is_utf8(self) -> None:
        assert delta_frame(3, '{"sku":"caf\u00e9"}').endswith('data: {"sku":"caf\u00e9"}\n\n'.encode())

    def test_comments_stay_on_one_line(self) -> None:
        assert comment("connected, from seq 0") == b": connected, from seq 0\n\n"
        assert comment("two\nlines\rhere") == b": two lines here\n\n"
        assert KEEPALIVE == b": keepalive\n\n"


class TestParseSeq:
    @pytest.mark.parametrize(("text", "seq"), [("0", 0), ("42", 42), ("0042", 42), (str(2**63 - 1), 2**63 - 1)])
    def test_whole_numbers(self, text: str, seq: int) -> None:
        assert parse_seq(text, "after") == seq

    @pytest.mark.parametrize("text", ["", "-1", "+1", "1.5", "1e3", "abc", " 1", "\u0661", str(2**63), "9" * 20])
    def test_anything_else_names_the_field(self, text: str) -> None:
        with pytest.raises(InvalidPosition) as refused:
            parse_seq(text, "after")
        error = refused.value
        assert (error.status_code, error.code, error.field) == (422, "invalid_position", "after")


class TestRequestedPosition:
    def test_neither_means_from_now(self) -> None:
        assert requested_position(None, None) is None

    def test_after_alone(self) -> None:
        assert requested_position(None, "7") == Position(7, "after")

    def test_last_event_id_wins_over_after(self) -> None:
        assert requested_position("9", "7") == Position(9, "Last-Event-ID")

    def test_both_must_be_well_formed(self) -> None:
        with pytest.raises(InvalidPosition) as refused:
            requested_position("9", "x")
        assert refused.value.field == "after"
        with pytest.raises(InvalidPosition) as refused:
            requested_position("x", "7")
        assert refused.value.field == "Last-Event-ID"


class TestStartAfter:
    BOUNDS = FeedBounds(last_seq=150, oldest_seq=101)

    def test_from_now_is_the_last_seq(self) -> None:
        assert start_after(None, self.BOUNDS, "web") == 150

    @pytest.mark.parametrize("seq", [100, 120, 150])
    def test_any_position_whose_next_seq_is_retained(self, seq: int) -> None:
        assert start_after(Position(seq, "after"), self.BOUNDS, "web") == seq

    @pytest.mark.parametrize("seq", [0, 10, 99])
    def test_a_trimmed_position_answers_410_naming_the_oldest_and_the_snapshot(self, seq: int) -> None:
        with pytest.raises(PositionTrimmed) as gone:
            start_after(Position(seq, "Last-Event-ID"), self.BOUNDS, "web")
        error = gone.value
        assert (error.status_code, error.code, error.field) == (410, "feed_position_trimmed", "Last-Event-ID")
        assert "oldest retained is 101" in error.message
        assert "/v1/channels/web/snapshot" in error.message and "delta_cursor" in error.message

    def test_a_position_not_given_out_answers_422(self) -> None:
        with pytest.raises(PositionAhead) as ahead:
            start_after(Position(151, "after"), self.BOUNDS, "web")
        assert (ahead.value.status_code, ahead.value.code, ahead.value.field) == (422, "feed_position_ahead", "after")
        assert "at 150" in ahead.value.message

    def test_an_empty_feed_serves_from_zero(self) -> None:
        bounds = FeedBounds(last_seq=0, oldest_seq=None)
        assert start_after(Position(0, "after"), bounds, "web") == 0
        assert start_after(None, bounds, "web") == 0

    def test_a_feed_trimmed_to_nothing_serves_only_from_its_last_seq(self) -> None:
        bounds = FeedBounds(last_seq=150, oldest_seq=None)
        assert bounds.first_available == 151
        assert start_after(Position(150, "after"), bounds, "web") == 150
        with pytest.raises(PositionTrimmed, match="oldest retained is 151"):
            start_after(Position(149, "after"), bounds, "web")
