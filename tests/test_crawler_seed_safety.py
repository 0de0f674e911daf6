"""No silent loss: a crawl that cannot replace the seeds leaves them byte for byte and says why.

Real `scrapy crawl` runs over the hand-written pages, against a copy of the committed seeds.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from scrapy_crawler.items import ITEM_CLASSES, Anime
from scrapy_crawler.pipelines import SeedTables
from scrapy_crawler.seeds import SeedChange, SeedsRefused, refusal, replace_seeds
from tests.crawler_helpers import (
    LOCAL_PAGES,
    LOCAL_START_URLS,
    MAL,
    SEEDS,
    crawl_local_pages,
    read_rows,
    run_crawl,
    same_files,
)

SEED_FILES = [f"{cls.seed()}.csv" for cls in ITEM_CLASSES]


def tree(root: Path) -> dict[str, bytes | None]:
    """Every file (its bytes) and folder (None) under `root`: a left-over staging folder shows."""
    return {
        str(path.relative_to(root)): path.read_bytes() if path.is_file() else None
        for path in sorted(root.rglob("*"))
    }


@pytest.fixture
def seeds(tmp_path: Path) -> Path:
    """A copy of the committed seeds: what a bad crawl must not destroy."""
    folder = tmp_path / "seeds"
    folder.mkdir()
    for name in SEED_FILES:
        shutil.copyfile(SEEDS / name, folder / name)
    return folder


@pytest.fixture(scope="module")
def fresh(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The hand-written pages crawled into a new folder: no seeds to compare with, so written."""
    out = tmp_path_factory.mktemp("fresh") / "seeds"
    result = crawl_local_pages(out)
    assert "seed files replaced: 12" in result.stdout
    return out


def assert_refused(
    result: subprocess.CompletedProcess[str], before: dict[str, bytes | None], root: Path
) -> list[str]:
    """Exit 1, no traceback, nothing changed under `root`; the summary's lines (stderr's end)."""
    assert result.returncode == 1, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    assert tree(root) == before
    assert "seed files replaced: none, the seeds were left as they were" in result.stdout
    lines = result.stderr.rstrip("\n").splitlines()
    start = max(i for i, line in enumerate(lines) if " left as it was: " in line)
    return lines[start:]


def assert_usage_error(result: subprocess.CompletedProcess[str], message: str) -> None:
    """Exit 2 and exactly one line on stderr, naming what is wrong."""
    assert result.returncode == 2, result.stderr[-3000:]
    assert result.stderr.splitlines() == [result.stderr.strip()], result.stderr
    assert result.stderr.startswith("scrapy crawl: ")
    assert message in result.stderr


NO_RECORDS = "left as it was: the crawl found no records; check start_urls, the replay folder"


def test_a_typo_in_a_start_url_keeps_the_seeds(seeds: Path, tmp_path: Path) -> None:
    before = tree(tmp_path)
    result = crawl_local_pages(
        seeds, start_urls=[f"{MAL}/anime/900001/Singular_Lables"], check=False
    )
    (summary,) = assert_refused(result, before, tmp_path)
    assert summary == (
        f"{seeds} {NO_RECORDS} or the network (the crawl report counts the pages parsed, "
        "broken and missing)"
    )
    assert "missing pages (replay): 1" in result.stdout


def test_an_empty_replay_folder_keeps_the_seeds(seeds: Path, tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    before = tree(tmp_path)
    result = run_crawl(
        seeds, "-a", f"replay={tmp_path / 'empty'}", start_urls=LOCAL_START_URLS, check=False
    )
    (summary,) = assert_refused(result, before, tmp_path)
    assert summary.startswith(f"{seeds} {NO_RECORDS}")
    assert f"missing pages (replay): {len(LOCAL_START_URLS)}" in result.stdout


def test_a_replay_folder_of_garbage_keeps_the_seeds(seeds: Path, tmp_path: Path) -> None:
    garbage = [
        b"",
        b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR",
        b"<html><head><title>Down for maintenance</title></head><body>Soon</body></html>",
        b'{"error": "too many requests"}',
    ]
    folder = tmp_path / "garbage"
    folder.mkdir()
    for i, page in enumerate(sorted(LOCAL_PAGES.glob("*.html"))):
        (folder / page.name).write_bytes(garbage[i % len(garbage)])
    before = tree(tmp_path)
    result = run_crawl(seeds, "-a", f"replay={folder}", start_urls=LOCAL_START_URLS, check=False)
    (summary,) = assert_refused(result, before, tmp_path)
    assert summary.startswith(f"{seeds} {NO_RECORDS}")
    assert "pages parsed by type: 0" in result.stdout


def test_a_crawl_that_would_shrink_the_seeds_is_refused(
    seeds: Path, tmp_path: Path, fresh: Path
) -> None:
    before = tree(tmp_path)
    result = crawl_local_pages(seeds, check=False)
    header, *files = assert_refused(result, before, tmp_path)
    counts = {
        f"{cls.seed()}.csv": (len(read_rows(SEEDS, cls.table)), len(read_rows(fresh, cls.table)))
        for cls in ITEM_CLASSES
    }
    shrinking = {name: c for name, c in counts.items() if c[1] * 2 < c[0]}
    assert len(shrinking) >= 5  # 1,195 anime down to a dozen, and more
    assert header == (
        f"{seeds} left as it was: {len(shrinking)} seed files would lose more than half their "
        "rows (rows before -> after); pass -a allow_shrink=true if that is intended"
    )
    listed = {}
    for line in files:
        match = re.fullmatch(r"  (\S+)\s+(\d+) ->\s+(\d+)", line)
        assert match, line
        listed[match.group(1)] = (int(match.group(2)), int(match.group(3)))
    assert listed == shrinking


def test_allow_shrink_replaces_the_seeds(seeds: Path, tmp_path: Path, fresh: Path) -> None:
    result = crawl_local_pages(seeds, "-a", "allow_shrink=true")
    assert "seed files replaced: 12" in result.stdout
    same_files(seeds, fresh)
    assert sorted(path.name for path in tmp_path.iterdir()) == ["seeds"]  # no staging left
    # The same crawl again changes no row count: no argument needed.
    crawl_local_pages(seeds, start_urls=LOCAL_START_URLS[::-1])
    same_files(seeds, fresh)


def test_a_crawl_that_did_not_finish_keeps_the_seeds(tmp_path: Path, fresh: Path) -> None:
    seeds = tmp_path / "seeds"
    shutil.copytree(fresh, seeds)
    before = tree(tmp_path)
    result = crawl_local_pages(seeds, settings={"CLOSESPIDER_PAGECOUNT": "2"}, check=False)
    assert assert_refused(result, before, tmp_path) == [
        f"{seeds} left as it was: the crawl did not finish (closespider_pagecount); "
        "run it again to the end"
    ]


@contextmanager
def mode_read_only(folder: Path) -> Iterator[None]:
    """`folder` read-only by its mode bits (which root ignores) while the block runs."""
    folder.chmod(0o555)
    try:
        yield
    finally:
        folder.chmod(0o755)


@pytest.fixture
def read_only(seeds: Path) -> Iterator[list[str]]:
    """Makes `seeds` read-only for the crawl; yields the prefix the crawl command must run under.

    Root writes whatever the mode bits say, so as root the folder is bind-mounted read-only in a
    mount namespace of the crawl's own (a read-only file system to root too).
    """
    if os.geteuid() != 0:
        with mode_read_only(seeds):
            yield []
        return
    if shutil.which("unshare") is None or subprocess.run(["unshare", "--mount", "true"]).returncode:
        pytest.skip("running as root, and no mount namespace for a read-only bind mount")
    script = 'mount --bind "$0" "$0" && mount -o remount,bind,ro "$0" "$0" && exec "$@"'
    yield ["unshare", "--mount", "--propagation", "private", "sh", "-c", script, str(seeds)]


def test_a_read_only_output_folder_is_one_line(
    seeds: Path, tmp_path: Path, read_only: list[str]
) -> None:
    before = tree(tmp_path)
    result = crawl_local_pages(seeds, check=False, prefix=read_only)
    assert_usage_error(
        result, f"out: cannot write to {seeds} ({seeds} is not writable); choose another -a out=DIR"
    )
    assert tree(tmp_path) == before


def test_an_output_path_that_is_a_file_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "seeds").write_bytes(b"not a folder\n")
    before = tree(tmp_path)
    out = tmp_path / "seeds" / "mal"
    result = crawl_local_pages(out, check=False)
    assert_usage_error(result, f"out: cannot write to {out} ({tmp_path / 'seeds'} is a file")
    assert tree(tmp_path) == before


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-a", "max_anime=many"], "max_anime must be a whole number (0 = no limit), got 'many'"),
        (["-a", "max_anime=-1"], "max_anime must be 0 (no limit) or more, got -1"),
        (["-a", "allow_shrink=maybe"], "allow_shrink must be true or false, got 'maybe'"),
        (["-a", "max_anmie=5"], "unknown spider argument 'max_anmie'; the arguments are "),
        (["-a", "replay=no/such/folder"], "replay folder not found: no/such/folder; give -a"),
        (["-a", f"replay={LOCAL_PAGES / 'README.md'}"], "replay folder is a file: "),
        (
            ["-a", f"start_urls={MAL}/animelist/someone"],
            f"start_urls: {MAL}/animelist/someone is not a MyAnimeList page the spider knows",
        ),
        (
            ["-a", "start_urls=https://example.org/anime/1"],
            "start_urls: https://example.org/anime/1 is not a MyAnimeList page",
        ),
        (["-a", "start_urls"], "Invalid -a value, use -a NAME=VALUE"),
        (["-a", f"save={LOCAL_PAGES / 'README.md'}"], "save: cannot write to "),
    ],
    ids=[
        "not-a-number",
        "negative",
        "not-a-flag",
        "unknown-name",
        "no-replay-folder",
        "replay-is-a-file",
        "unknown-page",
        "other-site",
        "no-value",
        "save-is-a-file",
    ],
)
def test_a_bad_argument_is_one_line(
    seeds: Path, tmp_path: Path, args: list[str], message: str
) -> None:
    before = tree(tmp_path)
    assert_usage_error(run_crawl(seeds, *args, check=False), message)
    assert tree(tmp_path) == before


def change(before: int | None, after: int) -> SeedChange:
    return SeedChange(table="anime", file="mal_anime.csv", before=before, after=after)


def test_the_shrink_rule() -> None:
    def refused(before: int | None, after: int, **kwargs: bool) -> bool:
        folder = Path("seeds")
        allow = kwargs.get("allow_shrink", False)
        changes = [change(before, after)]
        return refusal(folder, changes, finish_reason="finished", allow_shrink=allow) is not None

    assert not refused(10, 5)  # half the rows kept: fine
    assert refused(10, 4)
    assert refused(1, 0)
    assert not refused(10, 4, allow_shrink=True)
    assert not refused(None, 3)  # a new seed file
    assert not refused(0, 1)
    assert refused(None, 0)  # no records at all
    assert refused(0, 0, allow_shrink=True)


@contextmanager
def unwritable(folder: Path) -> Iterator[None]:
    """`folder` read-only for this process: its mode bits, or as root the immutable attribute."""
    if os.geteuid() != 0:
        with mode_read_only(folder):
            yield
        return
    if shutil.which("chattr") is None or subprocess.run(["chattr", "+i", str(folder)]).returncode:
        pytest.skip("running as root, and chattr +i is not available here")
    try:
        yield
    finally:
        subprocess.run(["chattr", "-i", str(folder)], check=True)


def test_a_folder_that_turns_read_only_keeps_the_seeds(tmp_path: Path) -> None:
    """Past the check before the crawl, writing fails cleanly too: staged, then refused."""
    seeds = tmp_path / "seeds"
    shutil.copytree(SEEDS, seeds)
    tables = SeedTables()
    for anime_id in range(1, 2000):
        tables.add(Anime(anime_id=anime_id, title=f"Title {anime_id}"))
    before = tree(tmp_path)
    with unwritable(seeds), pytest.raises(SeedsRefused) as refused:
        replace_seeds(tables, seeds, finish_reason="finished", allow_shrink=True)
    assert str(refused.value).startswith(f"{seeds} left as it was: cannot write the seeds (")
    assert tree(tmp_path) == before  # and the staging folder beside it is gone


def test_a_folder_in_place_of_a_seed_keeps_the_seeds(tmp_path: Path) -> None:
    seeds = tmp_path / "seeds"
    seeds.mkdir()
    (seeds / "mal_anime.csv").write_bytes(b"anime_id,title\n1,Old\n")
    (seeds / "mal_people.csv").mkdir()
    before = tree(tmp_path)
    tables = SeedTables()
    tables.add(Anime(anime_id=6, title="Trigun"))
    with pytest.raises(SeedsRefused, match=r"left as it was: cannot read its seeds \(.*mal_people"):
        replace_seeds(tables, seeds, finish_reason="finished", allow_shrink=False)
    assert tree(tmp_path) == before
