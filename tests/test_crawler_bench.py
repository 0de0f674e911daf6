"""The crawl benchmark runs and prints its table (no timing is asserted)."""

from __future__ import annotations

import pytest

from bench import bench_crawl
from tests.crawler_helpers import LOCAL_PAGES, MAL


@pytest.mark.slow
def test_bench_crawl_prints_a_table(capsys: pytest.CaptureFixture[str]) -> None:
    urls = f"{MAL}/anime/900001/Singular_Labels,{MAL}/people/900201/Some_Person"
    argv = ["--pages", str(LOCAL_PAGES), "--replay-urls", urls, "--rounds", "2", "--repeat", "1"]
    assert bench_crawl.main(argv) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("Replay of 2 saved pages x 2 rounds")
    assert lines[1].split() == [
        "variant",
        "pages",
        "seconds",
        "pages/s",
        "steady",
        "pages/s",
        "peak",
        "MB",
    ]
    assert [line.split("  ")[0] for line in lines[3:]] == [
        "baseline (parsel)",
        "crawl (scrapy replay)",
        "ratio crawl/baseline",
    ]


def test_bench_refuses_missing_pages(tmp_path: object) -> None:
    with pytest.raises(SystemExit, match="saved pages not found"):
        bench_crawl.main(["--pages", str(tmp_path), "--replay-urls", f"{MAL}/anime/1/X"])
