"""The two builds of the core: compiled at install (mypyc), and the sources under ``AVAIL_NATIVE=0``."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from atp.native import COMPILED, SWITCH, stale, wanted

ROOT = Path(__file__).resolve().parents[2]
WHICH = (
    "import importlib, sys, atp.native as native\n"
    "files = [importlib.import_module(name).__file__ for name in native.COMPILED]\n"
    "print(native.build(), sorted({f.rsplit('.', 1)[1] for f in files}))\n"
)


def which(**env: str) -> str:
    environ = {k: v for k, v in os.environ.items() if k != SWITCH} | env
    done = subprocess.run([sys.executable, "-c", WHICH], cwd=ROOT, env=environ,  # noqa: S603
                          capture_output=True, text=True, check=True)
    return done.stdout.strip()


def compiled_here() -> bool:
    return any((ROOT / "atp").glob("state.*.so"))


def test_the_switch_off_runs_every_compiled_module_from_its_source() -> None:
    assert which(**{SWITCH: "0"}) == "pure ['py']"


def test_the_install_runs_the_compiled_core() -> None:
    if not compiled_here():
        if os.environ.get("AVAIL_REQUIRE_NATIVE") == "1":
            pytest.fail("no compiled core next to atp/state.py: the install did not run mypyc (setup.py)")
        pytest.skip("installed with AVAIL_NATIVE=0: nothing compiled")
    assert which() == "native ['so']"


@pytest.mark.parametrize(("value", "expected"), [
    ("1", True), ("", True), ("yes", True), ("0", False), ("false", False), ("OFF", False), (" no ", False),
])
def test_the_switch_reads_the_usual_spellings(value: str, expected: bool) -> None:
    assert wanted({SWITCH: value}) is expected
    assert wanted({}) is True


def test_every_compiled_module_has_its_source() -> None:
    assert all((ROOT / (name.replace(".", "/") + ".py")).is_file() for name in COMPILED)


def test_a_compiled_module_older_than_its_source_is_stale(tmp_path: Path) -> None:
    (tmp_path / "atp").mkdir()
    source, compiled = tmp_path / "atp" / "state.py", tmp_path / "atp" / "state.cpython-311-x86_64-linux-gnu.so"
    source.write_text("")
    compiled.write_bytes(b"")
    os.utime(source, (1_000, 1_000))
    os.utime(compiled, (2_000, 2_000))
    assert stale(tmp_path) == []
    os.utime(source, (3_000, 3_000))  # edited after the install
    assert stale(tmp_path) == ["atp.state"]


def test_a_stale_install_runs_the_sources_and_says_so(tmp_path: Path) -> None:
    if not compiled_here():
        pytest.skip("installed with AVAIL_NATIVE=0: nothing compiled")
    copy = tmp_path / "tree"
    for package in ("atp", "dataflows", "projection"):
        shutil.copytree(ROOT / package, copy / package)
    shared = next(ROOT.glob("*__mypyc*.so"))
    shutil.copy2(shared, copy / shared.name)
    (copy / "atp" / "state.py").touch()  # an edit since the install
    environ = {k: v for k, v in os.environ.items() if k != SWITCH}
    installed = subprocess.run([sys.executable, "-c", WHICH], cwd=copy, env=environ,  # noqa: S603
                               capture_output=True, text=True, check=True)
    assert installed.stdout.strip() == "native ['so']"  # no setup.py: installed files, their times mean nothing
    shutil.copy2(ROOT / "setup.py", copy / "setup.py")  # a source tree
    done = subprocess.run([sys.executable, "-c", WHICH], cwd=copy, env=environ,  # noqa: S603
                          capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "pure ['py']"
    assert "the compiled core is older than atp.state" in done.stderr


def test_compiled_values_stay_out_of_the_cycle_collector() -> None:
    """Made per event and per write, tracked they would be walked by every young collection (~8 % of the flow)."""
    import gc  # noqa: PLC0415

    from atp import native  # noqa: PLC0415
    from atp.events import Reserve, Sale  # noqa: PLC0415
    from atp.state import SkuState  # noqa: PLC0415
    from dataflows.messages import ChannelDelta, Inbound, RawMessage, SkuWrite  # noqa: PLC0415
    from dataflows.shards import Applied, ShardBatch  # noqa: PLC0415

    if native.build() != "native":
        pytest.skip("the pure-Python build keeps Python's classes, which the collector tracks")
    sale = Sale("e1", "sku-1", "store-1", 1, 0)
    inbound = Inbound(sale, RawMessage("pos.sales", 0, 0, None, b"{}"))
    made = [sale, Reserve("e2", "sku-1", "r1", "web", 1, 0), inbound, inbound.raw,
            SkuWrite("sku-1", 1, False), ChannelDelta("web", "sku-1", 1, 0, "v1", None),
            ShardBatch([inbound]), Applied(), SkuState("sku-1")]
    assert [type(value).__name__ for value in made if gc.is_tracked(value)] == []
