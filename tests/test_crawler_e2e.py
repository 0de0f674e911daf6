"""End-to-end replay crawls: the committed seeds, the hand-written pages, determinism."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from scrapy_crawler.httpcache import MISSING_STAT, REPLAYED_STAT
from tests.crawler_helpers import (
    LOCAL_START_URLS,
    MAL,
    SEED_TABLES,
    SEEDS,
    crawl_local_pages,
    read_rows,
    replay_urls,
    require_shared,
    run_crawl,
    same_files,
    stat,
)


@pytest.fixture(scope="module")
def shared_crawl(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`make crawl-replay` into a temporary folder."""
    pages = require_shared()
    out = tmp_path_factory.mktemp("shared") / "seeds"
    run_crawl(out, "-a", f"replay={pages}", start_urls=replay_urls())
    return out


@pytest.mark.shared
def test_committed_seeds_are_the_replay_crawl_of_the_shared_pages(shared_crawl: Path) -> None:
    assert sorted(p.name for p in shared_crawl.iterdir()) == sorted(
        f"mal_{table}.csv" for table in SEED_TABLES
    )
    for table in SEED_TABLES:
        name = f"mal_{table}.csv"
        assert (SEEDS / name).read_bytes() == (shared_crawl / name).read_bytes(), (
            f"seeds/{name} differs from a fresh replay crawl: run `make crawl-replay`"
        )


@pytest.mark.shared
@pytest.mark.slow
def test_shared_crawl_is_deterministic(shared_crawl: Path, tmp_path: Path) -> None:
    """Another page order (start URLs reversed, one request at a time): the same bytes."""
    run_crawl(
        tmp_path / "again",
        "-a",
        f"replay={require_shared()}",
        start_urls=replay_urls()[::-1],
        settings={"CONCURRENT_REQUESTS": "1"},
    )
    same_files(shared_crawl, tmp_path / "again")


@pytest.fixture(scope="module")
def local_crawl(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[Path, subprocess.CompletedProcess[str]]:
    out = tmp_path_factory.mktemp("local") / "seeds"
    result = crawl_local_pages(out)
    return out, result


def test_local_crawl_writes_every_seed(
    local_crawl: tuple[Path, subprocess.CompletedProcess[str]],
) -> None:
    out, _ = local_crawl
    for table in SEED_TABLES:
        text = (out / f"mal_{table}.csv").read_text(encoding="utf-8")
        assert text.endswith("\n") and "\r" not in text
    anime = {row["anime_id"]: row for row in read_rows(out, "anime")}
    # The detail page wins over the season card, the person page and the studio page.
    first = anime["900001"]
    assert (first["members"], first["score"], first["source"]) == ("124000", "7.45", "Light novel")
    assert (first["season"], first["season_year"], first["aired_to"]) == (
        "spring",
        "2030",
        "2030-06-22",
    )
    # Where the detail page says nothing (here a list page's value is all there is), cells merge.
    plural = anime["900002"]
    assert (plural["season"], plural["season_year"], plural["members"]) == ("fall", "2029", "1000")
    assert (plural["episodes"], plural["score"], plural["rank"]) == ("", "", "")
    assert anime["900003"]["title"] == "Shoujo 'Kakumei' Ütena"
    assert "900011" not in anime  # its score is out of range: dropped
    assert anime["900010"]["type"] == "TV Special"

    voices = read_rows(out, "anime_voice_actors")
    assert [(v["character_id"], v["person_id"], v["language"]) for v in voices] == [
        ("900501", "900601", "Japanese"),
        ("900501", "900602", "German"),
        # The person page's row without a language gave way to the characters page's.
        ("900502", "900201", "Japanese"),
        ("900502", "900603", "Spanish"),
        ("900503", "900201", ""),
    ]
    creators = read_rows(out, "anime_original_creators")
    assert [(c["anime_id"], c["person_id"], c["role"]) for c in creators] == [
        ("900001", "900701", "Original Creator"),
        ("900009", "900201", "Original Creator"),
    ]
    companies = read_rows(out, "anime_companies")
    assert {"anime_id": "900011", "company_id": "900301", "role": "studio"} in companies
    assert read_rows(out, "manga_authors") == [
        {"manga_id": "900101", "person_id": "900701", "role": "Story"},
        {"manga_id": "900101", "person_id": "900703", "role": "Art"},
    ]
    assert read_rows(out, "anime_adaptations") == [
        {"anime_id": "900001", "manga_id": "900101"},
        {"anime_id": "900002", "manga_id": "900102"},
    ]
    kinds = {g["genre_id"]: g["kind"] for g in read_rows(out, "genres")}
    assert kinds == {
        "1": "genre",
        "2": "genre",
        "9": "explicit_genre",
        "27": "demographic",
        "50": "theme",
        "60": "theme",
    }


def test_local_crawl_report_and_stats(
    local_crawl: tuple[Path, subprocess.CompletedProcess[str]],
) -> None:
    _, result = local_crawl
    report = result.stdout
    assert "MyAnimeList crawl report (finished)" in report
    assert "pages parsed by type: 12" in report
    assert "broken pages by kind: 4" in report
    for kind in ("empty", "truncated", "not_html", "error_page"):
        assert stat(result.stderr, f"page/broken/{kind}") == 1
    assert "dropped records by reason: 1" in report
    assert "anime/out_of_range_score" in report
    assert stat(result.stderr, "drop/anime/out_of_range_score") == 1
    assert "records by kind:" in report and "anime_voice_actors" in report
    # The missing start page and every followed page without a file: counted, crawl finished.
    assert stat(result.stderr, MISSING_STAT) >= 1
    assert f"missing pages (replay): {stat(result.stderr, MISSING_STAT)}" in report
    assert "Spider closed (finished)" in result.stderr
    assert "robots.txt" not in result.stderr  # replay never asks for it


def test_local_crawl_is_deterministic(
    local_crawl: tuple[Path, subprocess.CompletedProcess[str]], tmp_path: Path
) -> None:
    out, _ = local_crawl
    crawl_local_pages(
        tmp_path / "again",
        start_urls=LOCAL_START_URLS[::-1],
        settings={"CONCURRENT_REQUESTS": "1"},
    )
    same_files(out, tmp_path / "again")


def test_max_anime_limits_the_anime_followed(tmp_path: Path) -> None:
    result = crawl_local_pages(
        tmp_path / "out", "-a", "max_anime=1", start_urls=[f"{MAL}/anime/season/2030/spring"]
    )
    # One anime followed (detail + characters + its manga), the other two only listed.
    assert stat(result.stderr, "follow/anime_over_limit") == 2
    assert stat(result.stderr, REPLAYED_STAT) == 4
    assert len(read_rows(tmp_path / "out", "anime")) == 3


def test_replay_of_a_missing_folder_fails_instead_of_going_live(tmp_path: Path) -> None:
    with pytest.raises(AssertionError, match="replay folder not found"):
        run_crawl(tmp_path / "out", "-a", f"replay={tmp_path / 'nowhere'}")
    assert not (tmp_path / "out").exists()
