"""The README and docs/ hold up in a standalone clone: links resolve, commands match what ships."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"\]\(([^)\s]+)\)")


def anchors(path: Path) -> set[str]:
    """GitHub's anchors of the headings in a Markdown file."""
    headings = re.findall(r"^#+ (.+)$", path.read_text(), re.M)
    return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-") for h in headings}


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda p: p.name)
def test_every_relative_link_resolves_inside_the_repository(document: Path) -> None:
    broken = []
    for target in LINK.findall(document.read_text()):
        if re.match(r"[a-z]+:", target) or target.startswith("#"):
            continue
        path, _, anchor = target.partition("#")
        resolved = (document.parent / path).resolve()
        if not resolved.is_relative_to(ROOT) or not resolved.exists():
            broken.append(target)
        elif anchor and resolved.suffix == ".md" and anchor not in anchors(resolved):
            broken.append(target)
    assert not broken, f"{document.name}: {broken}"


def test_the_contract_ships_with_the_repository() -> None:
    assert "](docs/contract.md)" in (ROOT / "README.md").read_text()
    assert (ROOT / "docs" / "contract.md").read_text().count("## ") >= 8


def test_the_readme_compose_example_starts_the_demo_its_skus_come_from() -> None:
    readme, compose = (ROOT / "README.md").read_text(), (ROOT / "docker-compose.yml").read_text()
    assert "docker compose --profile demo up --build" in readme
    assert "profiles: [demo]" in compose
