"""The crawl benchmark runs and prints its table (no timing is asserted).

The benchmark runs as the command `make bench-crawl` runs it, in a process of its own: the tests
do not import the benchmarks.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from animedb import REPO
from tests.crawler_helpers import LOCAL_PAGES, MAL


def bench_crawl(*args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "bench.bench_crawl", *args]
    return subprocess.run(
        command, cwd=REPO, capture_output=True, text=True, timeout=600, check=False
    )


@pytest.mark.slow
def test_bench_crawl_prints_a_table() -> None:
    urls = f"{MAL}/anime/900001/Singular_Labels,{MAL}/people/900201/Some_Person"
    result = bench_crawl(
        "--pages", str(LOCAL_PAGES), "--replay-urls", urls, "--rounds", "2", "--repeat", "1"
    )
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.splitlines()
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


def test_bench_refuses_missing_pages(tmp_path: Path) -> None:
    result = bench_crawl("--pages", str(tmp_path), "--replay-urls", f"{MAL}/anime/1/X")
    assert result.returncode == 1
    assert "saved pages not found" in result.stderr
