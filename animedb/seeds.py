"""The crawler's CSVs checked whole before dbt loads them: the file is UTF-8, every row has as many
cells as the header, and no key repeats (each seed's key is declared once, as `config.meta.key` in
the seeds' properties file, seeds/_seeds.yml, which assert_seed reads too).

dbt cannot check this itself: agate pads a short row with NULLs without a word, a bad byte ends in
a traceback that names no file, and a model's Jinja cannot read a raw file. So `animedb db dbt` runs
`check_project` before any command that may load seeds; a bare `dbt build` skips it.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from animedb.errors import first_line

if TYPE_CHECKING:
    from _csv import _reader

BOM = b"\xef\xbb\xbf"  # dbt skips one at the start of a seed, so the check does too


class SeedError(ValueError):
    """A seed dbt would load wrongly or not at all; the message is one line naming the file,
    the line and what to do."""


@dataclass(frozen=True)
class Problem:
    line: int
    text: str


@dataclass(frozen=True)
class SeedFile:
    """One CSV of the project: its path as the user knows it, and its declared key."""

    path: Path
    shown: str
    key: tuple[str, ...]
    declared_in: str


@dataclass(frozen=True)
class Checked:
    """A seed that passed, and how many data rows it has."""

    seed: SeedFile
    rows: int


def _load_yaml(path: Path) -> Any:
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise SeedError(f"{path}: cannot be read as YAML: {first_line(exc)}") from exc


def seed_folders(project_dir: Path) -> list[Path]:
    """The project's `seed-paths` (dbt's default, seeds/, when dbt_project.yml names none)."""
    project_file = project_dir / "dbt_project.yml"
    if not project_file.exists():
        raise SeedError(f"{project_file} does not exist: point --project-dir at a dbt project")
    config = _load_yaml(project_file)
    paths = config.get("seed-paths", ["seeds"]) if isinstance(config, dict) else ["seeds"]
    return [project_dir / str(p) for p in paths]


def count_rows(path: Path) -> int | None:
    """The data rows of a CSV (a quoted line break stays in its row), None when it is absent;
    undecodable bytes are counted, not refused (the check below names them)."""
    if not path.exists():
        return None
    with path.open(encoding="utf-8", errors="replace", newline="") as stream:
        return max(sum(1 for _ in csv.reader(stream)) - 1, 0)


def declared_keys(
    project_dir: Path, folders: list[Path] | None = None
) -> dict[str, tuple[tuple[str, ...], str]]:
    """Each seed's key and the properties file that declares it, by seed name."""
    keys: dict[str, tuple[tuple[str, ...], str]] = {}
    for folder in seed_folders(project_dir) if folders is None else folders:
        for properties in sorted([*folder.rglob("*.yml"), *folder.rglob("*.yaml")]):
            shown = _shown(properties, project_dir)
            document = _load_yaml(properties)
            entries = document.get("seeds") if isinstance(document, dict) else None
            for entry in entries or []:
                if not isinstance(entry, dict) or "name" not in entry:
                    continue
                config = entry.get("config")
                meta = config.get("meta") if isinstance(config, dict) else None
                key = meta.get("key") if isinstance(meta, dict) else None
                if key is None:
                    continue
                columns = [key] if isinstance(key, str) else key
                if not (
                    isinstance(columns, list)
                    and columns
                    and all(isinstance(c, str) and c for c in columns)
                ):
                    raise SeedError(
                        f"{shown}: the key of seed {entry['name']} (config.meta.key) must be a "
                        "column name or a list of column names"
                    )
                keys[str(entry["name"])] = (tuple(columns), shown)
    return keys


def seed_files(project_dir: Path) -> list[SeedFile]:
    """Every CSV dbt would load from the project, with the key declared for it (if any)."""
    folders = seed_folders(project_dir)
    keys = declared_keys(project_dir, folders)
    found = []
    for folder in folders:
        for path in sorted(folder.rglob("*.csv")):
            key, declared_in = keys.get(path.stem, ((), ""))
            found.append(SeedFile(path, _shown(path, project_dir), key, declared_in))
    return found


def _shown(path: Path, project_dir: Path) -> str:
    try:
        return str(path.relative_to(project_dir))
    except ValueError:
        return str(path)


def problems(
    data: bytes, key: Sequence[str] = (), declared_in: str = ""
) -> tuple[list[Problem], int]:
    """What is wrong with one seed's bytes, line by line (a quoted cell may span lines: a row
    is named by its first line), and how many data rows it has."""
    if data.startswith(BOM):
        data = data[len(BOM) :]
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        return [
            Problem(
                line,
                f"not UTF-8 (byte 0x{data[exc.start]:02x}): save the file as UTF-8, as the "
                "crawler writes it, or re-run the crawler",
            )
        ], 0
    if not text.strip():
        return [Problem(1, "the file is empty: dbt needs a header row; re-run the crawler")], 0

    # the csv module's default dialect (commas, double quotes) is the one agate, dbt's CSV
    # reader, uses for a seed that sets no `delimiter` (none of ours does)
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        return _row_problems(reader, key, declared_in)
    except csv.Error as exc:  # e.g. a cell beyond the csv module's size limit, as in agate
        return [Problem(reader.line_num, f"not readable as CSV ({exc}): fix the row")], 0


def _row_problems(
    reader: _reader, key: Sequence[str], declared_in: str
) -> tuple[list[Problem], int]:
    header = next(reader)
    found = _header_problems(header, key, declared_in)
    if found:
        return found, 0
    positions = [header.index(column) for column in key]
    first_seen: dict[tuple[str, ...], int] = {}
    previous_end = reader.line_num
    rows = 0
    for row in reader:
        line, previous_end = previous_end + 1, reader.line_num
        rows += 1
        if len(row) != len(header):
            found.append(Problem(line, _cells_problem(len(row), len(header))))
            continue
        if not positions:
            continue
        value = tuple(row[i] for i in positions)
        if value in first_seen:
            shown = ", ".join(v if v else "''" for v in value)
            found.append(
                Problem(
                    line,
                    f"key ({', '.join(key)}) = ({shown}) repeats line {first_seen[value]}: "
                    "each key must appear once; fix the file or re-run the crawler",
                )
            )
        else:
            first_seen[value] = line
    return found, rows


def _header_problems(header: list[str], key: Sequence[str], declared_in: str) -> list[Problem]:
    seen: set[str] = set()
    for number, name in enumerate(header, start=1):
        if not name.strip():
            return [Problem(1, f"header cell {number} has no column name: name it or drop it")]
        if name in seen:
            return [Problem(1, f"column {name} appears twice in the header: rename or drop one")]
        seen.add(name)
    missing = [column for column in key if column not in seen]
    if missing:
        return [
            Problem(
                1,
                f"the header has no column {', '.join(missing)}, which the key declared in "
                f"{declared_in} (config.meta.key) names: fix the header or the key",
            )
        ]
    return []


def _cells_problem(cells: int, expected: int) -> str:
    if cells == 0:
        return f"a blank line (0 cells, the header has {expected}): delete it"
    counted = f"{cells} cell" if cells == 1 else f"{cells} cells"
    if cells < expected:
        return (
            f"{counted}, the header has {expected}: dbt would load the {expected - cells} "
            "missing ones as NULL; fix the row (a cell holding a comma must be quoted) "
            "or re-run the crawler"
        )
    return (
        f"{counted}, the header has {expected}: a cell holding a comma must be quoted; "
        "fix the row or re-run the crawler"
    )


def check_file(seed: SeedFile) -> Checked:
    """One seed checked whole; SeedError names its first problem (and how many follow)."""
    try:
        data = seed.path.read_bytes()
    except OSError as exc:
        raise SeedError(f"{seed.shown}: cannot be read: {exc.strerror or exc}") from exc
    found, rows = problems(data, seed.key, seed.declared_in)
    if found:
        first = found[0]
        more = f" ({len(found) - 1} more in this file)" if len(found) > 1 else ""
        raise SeedError(f"{seed.shown} line {first.line}: {first.text}{more}")
    return Checked(seed, rows)


def check_project(project_dir: Path) -> list[Checked]:
    """Every seed of the dbt project in `project_dir`, checked; raises SeedError at the first
    bad file, before anything has been loaded."""
    return [check_file(seed) for seed in seed_files(project_dir)]
