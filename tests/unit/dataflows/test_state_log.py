"""Shard state logs: resume reads what the recovery store names and cuts the rest."""

from __future__ import annotations

from pathlib import Path

import pytest

from dataflows.state_log import Compaction, LogPosition, SkuRecord, StateLog, StateLogError


def record(sku: str, version: int) -> SkuRecord:
    return sku, version, "g1", ("C", (f"change-{sku}-{version}",))


def files(directory: Path) -> list[str]:
    return sorted(path.name for path in directory.iterdir())


class TestResume:
    def test_records_up_to_the_named_length_come_back_in_order(self, tmp_path: Path) -> None:
        shard = StateLog(tmp_path).fresh("s001")
        shard.append([record("A", 1), record("B", 1)])
        position = shard.append([record("A", 2)])

        _, epochs = StateLog(tmp_path).resume(position)

        assert epochs == [[record("A", 1), record("B", 1)], [record("A", 2)]]

    def test_records_of_an_epoch_that_never_committed_are_cut(self, tmp_path: Path) -> None:
        shard = StateLog(tmp_path).fresh("s001")
        committed = shard.append([record("A", 1)])
        shard.append([record("A", 2)])  # written, but the crash came before Bytewax committed it

        resumed, epochs = StateLog(tmp_path).resume(committed)
        after = resumed.append([record("A", 3)])

        _, again = StateLog(tmp_path).resume(after)
        assert again == [[record("A", 1)], [record("A", 3)]]

    def test_a_log_shorter_than_named_is_refused_with_the_fix(self, tmp_path: Path) -> None:
        position = StateLog(tmp_path).fresh("s001").append([record("A", 1)])

        with pytest.raises(StateLogError, match="new recovery directory"):
            StateLog(tmp_path).resume(position._replace(length=position.length + 10))

    def test_a_missing_log_is_refused(self, tmp_path: Path) -> None:
        with pytest.raises(StateLogError, match="missing"):
            StateLog(tmp_path).resume(LogPosition("s001", 4, 100))

    def test_a_damaged_record_is_refused(self, tmp_path: Path) -> None:
        position = StateLog(tmp_path).fresh("s001").append([record("A", 1)])
        path = tmp_path / files(tmp_path)[0]
        data = bytearray(path.read_bytes())
        data[-3] ^= 0xFF
        path.write_bytes(bytes(data))

        with pytest.raises(StateLogError, match="damaged record at byte 0"):
            StateLog(tmp_path).resume(position)

    def test_a_fresh_shard_drops_leftovers_of_uncommitted_epochs(self, tmp_path: Path) -> None:
        StateLog(tmp_path).fresh("s001").append([record("A", 1)])
        StateLog(tmp_path).fresh("s002").append([record("B", 1)])

        position = StateLog(tmp_path).fresh("s001").append([record("C", 1)])

        _, epochs = StateLog(tmp_path).resume(position)
        assert epochs == [[record("C", 1)]]
        assert files(tmp_path) == ["s001.000001.log", "s002.000001.log"]


class TestCompaction:
    def test_a_rewrite_starts_a_generation_and_keeps_only_the_one_before(self, tmp_path: Path) -> None:
        log = StateLog(tmp_path, compaction=Compaction(ratio=0, min_bytes=0, min_age_s=0))
        shard = log.fresh("s001")
        shard.append([record("A", 1)])
        shard.rewrite([record("A", 2)])
        position = shard.rewrite([record("A", 3)])

        assert files(tmp_path) == ["s001.000002.log", "s001.000003.log"]
        _, epochs = log.resume(position)
        assert epochs == [[record("A", 3)]]
        assert files(tmp_path) == ["s001.000003.log"]  # the resumed generation is the only one needed

    def test_a_log_is_rewritten_once_it_outgrows_its_whole_content(self, tmp_path: Path) -> None:
        log = StateLog(tmp_path, compaction=Compaction(ratio=3, min_bytes=0, min_age_s=0))
        shard = log.fresh("s001")
        shard.rewrite([record("A", 1)])
        assert not shard.wants_compaction()

        shard.append([record("A", 2)])
        shard.append([record("A", 3)])

        assert shard.wants_compaction()

    def test_a_young_generation_is_not_rewritten(self, tmp_path: Path) -> None:
        shard = StateLog(tmp_path, compaction=Compaction(ratio=0, min_bytes=0, min_age_s=60)).fresh("s001")
        shard.append([record("A", 1)])

        assert not shard.wants_compaction()
