"""The recovery store is created whole or not at all."""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
from datetime import timedelta
from pathlib import Path

import pytest
from bytewax.recovery import init_db_dir

from dataflows.flow import FORMAT_FILE, RecoveryFormatError, RecoveryStoreMissing, prepare_recovery


def parts(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.endswith(".sqlite3"))


def test_a_new_store_has_every_partition(tmp_path: Path) -> None:
    store = tmp_path / "recovery"
    prepare_recovery(store, 3, timedelta(0))
    assert parts(store) == ["part-0.sqlite3", "part-1.sqlite3", "part-2.sqlite3"]
    assert [p.name for p in tmp_path.iterdir()] == ["recovery"]  # no staging left behind


def test_an_existing_store_is_reused_untouched(tmp_path: Path) -> None:
    store = tmp_path / "recovery"
    prepare_recovery(store, 2, timedelta(0))
    before = {p.name: p.stat().st_mtime_ns for p in store.iterdir()}
    prepare_recovery(store, 2, timedelta(0))
    assert {p.name: p.stat().st_mtime_ns for p in store.iterdir()} == before


def test_an_empty_directory_gets_a_store(tmp_path: Path) -> None:
    store = tmp_path / "recovery"
    store.mkdir()
    prepare_recovery(store, 2, timedelta(0))
    assert parts(store) == ["part-0.sqlite3", "part-1.sqlite3"]


def test_a_half_made_staging_store_of_a_killed_start_is_not_used(tmp_path: Path) -> None:
    store = tmp_path / "recovery"
    staging = tmp_path / f"recovery.init-{os.getpid()}"
    staging.mkdir()
    (staging / "part-0.sqlite3").write_bytes(b"")  # what a kill inside the creation leaves
    prepare_recovery(store, 2, timedelta(0))
    assert parts(store) == ["part-0.sqlite3", "part-1.sqlite3"]
    assert (store / "part-0.sqlite3").stat().st_size > 0


def test_a_store_made_meanwhile_by_another_process_wins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = tmp_path / "recovery"
    other = tmp_path / "other"
    prepare_recovery(other, 2, timedelta(0))
    made = {p.name: p.read_bytes() for p in other.iterdir()}
    real_rename = Path.rename

    def rename_after_the_other(self: Path, target: Path) -> Path:  # the other process renamed first
        if not store.exists() or not any(store.iterdir()):
            real_rename(other, store)
        return real_rename(self, target)

    monkeypatch.setattr(Path, "rename", rename_after_the_other)
    prepare_recovery(store, 2, timedelta(0))
    monkeypatch.undo()
    assert {p.name: p.read_bytes() for p in store.iterdir()} == made
    assert sorted(p.name for p in tmp_path.iterdir()) == ["recovery"]


def test_a_store_with_per_sku_state_of_an_older_engine_is_refused_naming_the_fix(tmp_path: Path) -> None:
    store = tmp_path / "recovery"
    prepare_recovery(store, 2, timedelta(0))
    (store / FORMAT_FILE).unlink()  # what a store written before state shards looks like
    with contextlib.closing(sqlite3.connect(store / "part-1.sqlite3")) as db, db:
        db.execute("INSERT INTO snaps (step_id, state_key, snap_epoch, ser_change) VALUES (?, ?, 1, NULL)",
                   ("availability.apply", "SKU-1"))
    with pytest.raises(RecoveryFormatError, match="new, empty recovery directory"):
        prepare_recovery(store, 2, timedelta(0))


def test_a_store_made_by_the_bytewax_tool_is_accepted_and_marked(tmp_path: Path) -> None:
    store = tmp_path / "recovery"
    store.mkdir()
    init_db_dir(store, 2)  # type: ignore[no-untyped-call]
    prepare_recovery(store, 2, timedelta(0))
    assert (store / FORMAT_FILE).read_text().strip() == "shards-64+state-log-1"


def test_a_store_of_another_shard_count_is_refused(tmp_path: Path) -> None:
    store = tmp_path / "recovery"
    prepare_recovery(store, 2, timedelta(0))
    (store / FORMAT_FILE).write_text("shards-64\n")
    with pytest.raises(RecoveryFormatError, match="shards-64"):
        prepare_recovery(store, 2, timedelta(0))


def test_a_cluster_process_other_than_0_never_makes_a_store_of_its_own(tmp_path: Path) -> None:
    """A volume per process: each would make its own full set of partitions, and Bytewax would pick copies."""
    own_volume = tmp_path / "recovery"
    own_volume.mkdir()
    with pytest.raises(RecoveryStoreMissing) as refused:
        prepare_recovery(own_volume, 2, timedelta(0), creator=False, wait_s=0.3)
    message = str(refused.value)
    assert "AVAIL_RECOVERY_DIR" in message and "only process 0 of a cluster creates one" in message
    assert list(own_volume.iterdir()) == []


def test_a_cluster_process_other_than_0_waits_for_process_0_to_make_the_shared_store(tmp_path: Path) -> None:
    shared = tmp_path / "recovery"
    maker = threading.Timer(0.3, prepare_recovery, (shared, 2, timedelta(0)))
    maker.start()
    try:
        prepare_recovery(shared, 2, timedelta(0), creator=False, wait_s=10)
    finally:
        maker.join()
    assert sorted(p.name for p in shared.glob("part-*.sqlite3")) == ["part-0.sqlite3", "part-1.sqlite3"]
