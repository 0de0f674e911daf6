"""The front door holds: every relative link of README.md and docs/ leads to a file of the
repository, every `animedb` command the README shows exists (its `--help` exits 0), every
`make` target it names is the Makefile's, and the README stays a page a newcomer reads."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

from animedb import REPO
from animedb_cli.main import main

PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md")), REPO / "infra" / "README.md"]
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
COMMAND = re.compile(r"animedb((?: [a-z][a-z-]*)+)")
MAKE = re.compile(r"(?:`|^)make ([a-z][a-z-]*)", re.MULTILINE)  # in code, not in prose


def _relative_links(page: Path) -> list[str]:
    return [
        link
        for link in LINK.findall(page.read_text(encoding="utf-8"))
        if not re.match(r"^[a-z]+:", link) and not link.startswith("#")
    ]


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(REPO)))
def test_every_relative_link_resolves(page: Path) -> None:
    broken = [
        link
        for link in _relative_links(page)
        if not (page.parent / link.partition("#")[0]).resolve().exists()
    ]
    assert not broken, f"{page.relative_to(REPO)} links to what is not there: {broken}"


def _readme_commands() -> list[tuple[str, ...]]:
    """Each `animedb` command of the README, as its words up to the first argument."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    found = {tuple(m.group(1).split()) for m in COMMAND.finditer(text)}
    return sorted(found)


def test_the_readme_shows_the_commands_of_the_data_flow() -> None:
    commands = {c[0] for c in _readme_commands()}
    assert {"crawl", "db", "generate", "export", "demo"} <= commands


@pytest.mark.parametrize("words", _readme_commands(), ids=" ".join)
def test_every_command_the_readme_shows_exists(words: tuple[str, ...]) -> None:
    # the words up to one that is not a subcommand (an argument such as `run` of `generate`
    # is one; `ARGS` or a path is not matched at all)
    result = CliRunner().invoke(main, [*words, "--help"])
    assert result.exit_code == 0, (words, result.output)
    assert "Usage:" in result.output


def test_every_make_target_the_docs_name_exists() -> None:
    makefile = (REPO / "Makefile").read_text(encoding="utf-8")
    targets = set(re.findall(r"^([a-z][a-z-]*):", makefile, re.MULTILINE))
    named = {
        target
        for page in PAGES
        for target in MAKE.findall(page.read_text(encoding="utf-8"))
        if target != "bench-"
    }
    assert named - targets == set()


def test_the_readme_is_a_front_door() -> None:
    lines = (REPO / "README.md").read_text(encoding="utf-8").splitlines()
    assert len(lines) <= 130, len(lines)
    headings = [line for line in lines if line.startswith("## ")]
    order = ["## Prerequisites", "## Two commands", "## Commands", "## Folders"]
    assert [h for h in headings if h in order] == order
    assert "ANIMEDB_TEST_PG_BIN" in "\n".join(lines)


def test_the_design_is_the_repositorys_own() -> None:
    """Code and docs cite docs/design.md, not a file outside the repository."""
    tracked = subprocess.run(
        ["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout.split()
    citing = [
        name
        for name in tracked
        if name.endswith((".py", ".sql", ".yml", ".md", "Makefile"))
        and name != "tests/test_docs.py"
        and "DESIGN.md" in (REPO / name).read_text(encoding="utf-8", errors="replace")
    ]
    assert citing == []
    assert (REPO / "docs" / "design.md").is_file()
