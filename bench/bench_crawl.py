"""Replay throughput and peak memory of the crawler, against parsing the same pages with parsel.

    python -m bench.bench_crawl --pages ../shared/fixtures/myanimelist [--replay-urls URL,URL,...]

Both sides run in child processes so each one's peak RSS (ru_maxrss) is its own:
  baseline  read every page file and parse it with parsel (one XPath pass over its links)
  crawl     `scrapy crawl myanimelist -a replay=...`: Scrapy, extraction, validation, CSV writing
Each side handles the page set `--rounds` times in one process (the crawl with its duplicate
filter off) and once; the difference gives the steady rate without process start-up. Every
measurement is repeated `--repeat` times and the median time kept.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from animedb import REPO
from scrapy_crawler.urls import recorded_start_urls


@dataclass(frozen=True)
class Run:
    """One child process: how many pages, how long, how much memory at peak."""

    pages: int
    seconds: float
    peak_mb: float


def page_files(pages: Path, urls: list[str]) -> list[Path]:
    """The saved page of each start URL (what a replay crawl of those URLs reads)."""
    from scrapy_crawler.urls import url_to_filename

    files = [pages / url_to_filename(url) for url in urls]
    missing = [str(path) for path in files if not path.is_file()]
    if missing:
        raise SystemExit(f"bench: saved pages not found: {', '.join(missing)}")
    return files


def baseline_child(pages: Path, urls: list[str], rounds: int) -> None:
    """The baseline's work: read and parse every page, `rounds` times."""
    from parsel import Selector

    files = page_files(pages, urls)
    links = 0
    for _ in range(rounds):
        for path in files:
            selector = Selector(text=path.read_bytes().decode("utf-8", errors="replace"))
            links += len(selector.xpath("//a/@href").getall())
    print(links)


def _measure(command: list[str], pages: int, timeout: float = 900.0) -> Run:
    """Run a child to completion; its wall time and its own peak resident set size."""
    with tempfile.TemporaryFile() as log:
        started = time.perf_counter()
        child = subprocess.Popen(command, cwd=REPO, stdout=subprocess.DEVNULL, stderr=log)
        watchdog = threading.Timer(timeout, child.kill)  # a stuck child fails the bench
        watchdog.start()
        try:
            # wait4 gives this child's own rusage (RUSAGE_CHILDREN would mix all children).
            _, status, usage = os.wait4(child.pid, 0)
        finally:
            watchdog.cancel()
        seconds = time.perf_counter() - started
        child.returncode = os.waitstatus_to_exitcode(status)  # reaped here, not by Popen
        if child.returncode != 0:
            log.seek(0)
            stderr = log.read().decode("utf-8", errors="replace")
            raise SystemExit(f"bench: {' '.join(command[:5])} ... failed:\n{stderr[-3000:]}")
    return Run(pages=pages, seconds=seconds, peak_mb=usage.ru_maxrss / 1024)


def baseline_command(pages: Path, urls: list[str], rounds: int) -> list[str]:
    return [
        sys.executable,
        "-m",
        "bench.bench_crawl",
        "--baseline-child",
        "--pages",
        str(pages),
        "--replay-urls",
        ",".join(urls),
        "--rounds",
        str(rounds),
    ]


def crawl_command(pages: Path, urls: list[str], rounds: int, out: Path) -> list[str]:
    return [
        sys.executable,
        "-m",
        "scrapy",
        "crawl",
        "myanimelist",
        "-a",
        f"replay={pages}",
        "-a",
        "start_urls=" + ",".join(urls * rounds),
        "-a",
        f"out={out}",
        # Replaying the same pages again is the point here.
        "-s",
        "DUPEFILTER_CLASS=scrapy.dupefilters.BaseDupeFilter",
        "-s",
        "LOG_LEVEL=WARNING",
    ]


def best_of(command: list[str], pages: int, repeat: int) -> Run:
    """The median time and the highest peak over `repeat` runs."""
    runs = [_measure(command, pages) for _ in range(repeat)]
    return Run(
        pages=pages,
        seconds=statistics.median(run.seconds for run in runs),
        peak_mb=max(run.peak_mb for run in runs),
    )


@dataclass(frozen=True)
class Summary:
    """One variant's row: the many-rounds run, its rates and its peak memory."""

    pages: int
    seconds: float
    rate: float
    steady: float
    peak_mb: float

    @classmethod
    def of(cls, one: Run, many: Run) -> Summary:
        return cls(
            pages=many.pages,
            seconds=many.seconds,
            rate=many.pages / many.seconds,
            steady=steady_rate(one, many),
            peak_mb=max(one.peak_mb, many.peak_mb),
        )


def steady_rate(one: Run, many: Run) -> float:
    """Pages per second once the process is up: the extra pages over the extra time."""
    extra = many.seconds - one.seconds
    return (many.pages - one.pages) / extra if extra > 0 else float("inf")


def table(rows: list[tuple[str, ...]]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = []
    for number, row in enumerate(rows):
        cells = [
            cell.ljust(w) if i == 0 else cell.rjust(w)
            for i, (cell, w) in enumerate(zip(row, widths, strict=True))
        ]
        lines.append("  ".join(cells))
        if number == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--pages", type=Path, required=True, help="folder of saved pages")
    parser.add_argument(
        "--replay-urls",
        default=",".join(recorded_start_urls()),
        help="comma-separated start URLs (default: scrapy_crawler/replay_urls.txt)",
    )
    parser.add_argument("--rounds", type=int, default=10, help="page-set passes per process")
    parser.add_argument("--repeat", type=int, default=3, help="runs per measurement")
    parser.add_argument("--baseline-child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    urls = [url for url in args.replay_urls.split(",") if url]
    if args.baseline_child:
        baseline_child(args.pages, urls, args.rounds)
        return 0
    if args.rounds < 2 or args.repeat < 1:
        parser.error("--rounds must be at least 2 and --repeat at least 1")
    pages = args.pages.resolve()
    count = len(page_files(pages, urls))

    with tempfile.TemporaryDirectory(prefix="bench_crawl_") as scratch:
        out = Path(scratch)
        measured: dict[str, tuple[Run, Run]] = {}
        for name, build in (
            ("baseline (parsel)", lambda r: baseline_command(pages, urls, r)),
            ("crawl (scrapy replay)", lambda r: crawl_command(pages, urls, r, out / "seeds")),
        ):
            one = best_of(build(1), count, args.repeat)
            many = best_of(build(args.rounds), count * args.rounds, args.repeat)
            measured[name] = (one, many)

    summaries = {name: Summary.of(one, many) for name, (one, many) in measured.items()}
    base, crawl = summaries.values()
    rows: list[tuple[str, ...]] = [
        ("variant", "pages", "seconds", "pages/s", "steady pages/s", "peak MB")
    ]
    for name, summary in summaries.items():
        rows.append(
            (
                name,
                str(summary.pages),
                f"{summary.seconds:.2f}",
                f"{summary.rate:.1f}",
                f"{summary.steady:.1f}",
                f"{summary.peak_mb:.0f}",
            )
        )
    rows.append(
        (
            "ratio crawl/baseline",
            "",
            f"{crawl.seconds / base.seconds:.2f}",
            f"{crawl.rate / base.rate:.3f}",
            f"{crawl.steady / base.steady:.3f}",
            f"{crawl.peak_mb / base.peak_mb:.2f}",
        )
    )
    print(
        f"Replay of {count} saved pages x {args.rounds} rounds, median of {args.repeat} runs "
        f"(steady = without process start-up, from 1 vs {args.rounds} rounds)"
    )
    print(table(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
