"""The layout shows the architecture: which package may import which (docs/engine.md, "Layout")."""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CLI = "avail"
# First-party packages each package may import (itself included). The CLI sits on top and may import anything.
ALLOWED: dict[str, set[str]] = {
    "atp": {"atp"},
    "projection": {"atp", "projection"},
    "engine_settings": {"atp", "projection", "engine_settings"},  # a Redis URL is checked by the client factory
    "rulebook": {"atp", "rulebook"},
    "local_servers": {"local_servers"},
    "demo_retailer": {"atp", "demo_retailer"},
    "dataflows": {"atp", "projection", "engine_settings", "rulebook", "dataflows"},
    # the API reads the rules files the flow runs to explain a number
    "availability_api": {"atp", "projection", "engine_settings", "rulebook", "availability_api"},
}
FIRST_PARTY = {*ALLOWED, CLI}
# The domain does no I/O: no files, sockets, processes, clocks or logs.
DOMAIN_THIRD_PARTY = {"msgspec", "mypy_extensions"}
IO_MODULES = {"asyncio", "http", "io", "logging", "os", "pathlib", "shutil", "socket", "sqlite3", "subprocess",
              "sys", "tempfile", "threading", "time", "urllib"}


def python_files(folder: str) -> Iterator[Path]:
    yield from sorted((ROOT / folder).rglob("*.py"))


def imported(path: Path) -> Iterator[tuple[int, str]]:
    """(line, top-level module) of every import in the file, function-level ones included."""
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name.partition(".")[0]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            yield node.lineno, node.module.partition(".")[0]


def where(path: Path, line: int) -> str:
    return f"{path.relative_to(ROOT)}:{line}"


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_package_imports_only_what_sits_below_it(package: str) -> None:
    wrong = [f"{where(path, line)} imports {module}" for path in python_files(package)
             for line, module in imported(path) if module in FIRST_PARTY and module not in ALLOWED[package]]
    assert not wrong, "\n".join(wrong)


def test_only_the_entry_point_and_the_cli_tests_import_the_cli_package() -> None:
    outside = [path for folder in (*ALLOWED, "load_tests", "examples", "tests") for path in python_files(folder)
               if not path.is_relative_to(ROOT / "tests" / "unit" / CLI)]
    wrong = [f"{where(path, line)} imports {CLI}" for path in outside
             for line, module in imported(path) if module == CLI]
    assert not wrong, "\n".join(wrong)
    entry = (ROOT / "pyproject.toml").read_text()
    assert f'{CLI} = "{CLI}.cli:main"' in entry


def test_the_domain_does_no_io() -> None:
    # atp/native.py picks the compiled or the source build of the domain's modules: import plumbing, no domain
    wrong = [f"{where(path, line)} imports {module}" for path in python_files("atp")
             if path != ROOT / "atp" / "native.py"
             for line, module in imported(path)
             if module in IO_MODULES or not (module in sys.stdlib_module_names or module in DOMAIN_THIRD_PARTY
                                              or module == "atp")]
    assert not wrong, "\n".join(wrong)


def test_every_package_is_checked() -> None:
    packages = {path.parent.name for path in ROOT.glob("*/__init__.py")} - {"tests", "load_tests", "examples"}
    assert packages == FIRST_PARTY


TIERS = {"integration": "integration", "e2e": "e2e", "reliability": "reliability"}  # folder -> marker


def module_marks(path: Path) -> set[str]:
    """The marker names in the module's ``pytestmark``."""
    for node in ast.parse(path.read_text(), str(path)).body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "pytestmark" for t in node.targets):
            return {n.attr for n in ast.walk(node.value) if isinstance(n, ast.Attribute) and n.attr != "mark"}
    return set()


@pytest.mark.parametrize("folder", sorted(TIERS))
def test_every_test_module_of_a_tier_carries_its_marker(folder: str) -> None:
    modules = sorted((ROOT / "tests" / folder).glob("test_*.py"))
    assert modules
    unmarked = [str(path.relative_to(ROOT)) for path in modules if TIERS[folder] not in module_marks(path)]
    assert not unmarked, f"without pytest.mark.{TIERS[folder]}: {unmarked}"


def test_the_image_and_the_package_carry_every_package() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert not [name for name in sorted(FIRST_PARTY) if f"COPY {name} ./{name}" not in dockerfile]
    assert not [name for name in sorted(FIRST_PARTY) if f'"{name}*"' not in pyproject]
