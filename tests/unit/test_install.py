"""What a fresh machine installs: the engine alone for `make up`, the tools on top for `make test`."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DEV_ONLY = ("pytest", "hypothesis", "ruff", "schemathesis", "matplotlib", "numpy", "atheris")
# mypy is in the runtime lock on purpose: its mypyc compiles the core at install (setup.py)


def planned(target: str, tmp_path: Path) -> str:
    """What ``make TARGET`` would run on a machine without a venv (``make -n``: nothing runs)."""
    make = shutil.which("make")
    if make is None:
        pytest.skip("no make on this machine")
    done = subprocess.run([make, "-n", target, f"VENV={tmp_path / 'venv'}"], cwd=ROOT,  # noqa: S603
                          capture_output=True, text=True, check=True)
    return done.stdout


def locked(path: Path) -> set[str]:
    return {m[1].lower() for m in re.finditer(r"^([A-Za-z0-9_.-]+)==", path.read_text(), re.M)}


def test_make_up_installs_the_runtime_lock_only(tmp_path: Path) -> None:
    plan = planned("up", tmp_path)
    assert "-r requirements.lock" in plan and "requirements-dev.lock" not in plan
    assert "--require-hashes" in plan


def test_make_test_adds_the_dev_lock(tmp_path: Path) -> None:
    plan = planned("test", tmp_path)
    assert plan.index("-r requirements.lock") < plan.index("-r requirements-dev.lock") < plan.index("-m pytest")


def test_the_runtime_lock_holds_no_test_or_dev_tool_and_agrees_with_the_dev_lock() -> None:
    runtime, dev = locked(ROOT / "requirements.lock"), locked(ROOT / "requirements-dev.lock")
    assert not [name for name in DEV_ONLY if name in runtime]
    pins = re.compile(r"^([A-Za-z0-9_.-]+==\S+)", re.M)
    runtime_pins = set(pins.findall((ROOT / "requirements.lock").read_text()))
    assert runtime_pins <= set(pins.findall((ROOT / "requirements-dev.lock").read_text())), "same versions"
    assert runtime < dev
