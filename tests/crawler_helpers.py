"""Helpers for the crawler tests: page folders, responses built from files, crawls in a subprocess.

`FakeSiteHandler` is a Scrapy download handler that answers "live" requests from a folder, so
live-mode features (saving, robots.txt, retries with backoff) are tested without any network.
"""

from __future__ import annotations

import csv
import json
import re
import subprocess
import sys
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TypeVar

import pytest
from scrapy import Request
from scrapy.core.downloader.handlers.base import BaseDownloadHandler
from scrapy.crawler import Crawler
from scrapy.http import HtmlResponse, Response, TextResponse

from animedb import REPO
from scrapy_crawler.items import Anime, Record
from scrapy_crawler.parsers import Parsed, parse_page
from scrapy_crawler.pipelines import validation_error
from scrapy_crawler.urls import recorded_start_urls, url_to_filename

R = TypeVar("R", bound=Record)

SHARED_PAGES = (REPO / ".." / "shared" / "fixtures" / "myanimelist").resolve()
LOCAL_PAGES = Path(__file__).resolve().parent / "crawler_pages"
SEEDS = REPO / "seeds"
MAL = "https://myanimelist.net"

# The seed files a crawl writes, in the order of the contract (each is mal_<table>.csv).
SEED_TABLES = (
    "anime",
    "genres",
    "anime_genres",
    "companies",
    "anime_companies",
    "people",
    "characters",
    "anime_voice_actors",
    "anime_original_creators",
    "manga",
    "manga_authors",
    "anime_adaptations",
)

# The start URLs of a replay crawl of the hand-written pages (tests/crawler_pages/README.md).
LOCAL_START_URLS = [
    f"{MAL}/anime/season/2030/spring",
    f"{MAL}/topanime.php",
    f"{MAL}/anime/producer/900301/Some_Studio",
    f"{MAL}/people/900201/Some_Person",
    f"{MAL}/anime/900002/Plural_Labels",
    f"{MAL}/anime/900003/Missing_Sections",
    f"{MAL}/anime/900004/Single_Date",
    f"{MAL}/anime/900005/Partial_Dates",
    f"{MAL}/anime/900011/Bad_Score",
    f"{MAL}/anime/900901/Empty",
    f"{MAL}/anime/900902/Truncated",
    f"{MAL}/anime/900903/Json",
    f"{MAL}/anime/900904/Not_Found",
    f"{MAL}/anime/900999/Missing",
]


def replay_urls() -> list[str]:
    """The seven start URLs of `make crawl-replay` and the demo, from their one list."""
    urls = recorded_start_urls()
    assert len(urls) == 7, urls
    return urls


def require_shared() -> Path:
    """The shared real pages, or skip the test with the reason."""
    if not SHARED_PAGES.is_dir():
        pytest.skip(f"shared MyAnimeList fixtures not found at {SHARED_PAGES}")
    return SHARED_PAGES


def shared_response(url: str) -> TextResponse:
    """A response for `url` built from the shared recorded page (skips when absent)."""
    path = require_shared() / url_to_filename(url)
    if not path.is_file():
        pytest.skip(f"shared MyAnimeList page not found: {path}")
    return page_response(url, path.read_bytes())


def local_response(url: str, content_type: str = "text/html; charset=utf-8") -> Response:
    """A response for `url` built from the hand-written page of the same replay name."""
    return page_response(url, (LOCAL_PAGES / url_to_filename(url)).read_bytes(), content_type)


def page_response(
    url: str, body: bytes, content_type: str = "text/html; charset=utf-8", status: int = 200
) -> HtmlResponse:
    return HtmlResponse(
        url=url,
        body=body,
        status=status,
        headers={"Content-Type": content_type},
        request=Request(url),
    )


def run_crawl(
    out: Path,
    *args: str,
    settings: dict[str, Any] | None = None,
    start_urls: list[str] | None = None,
    check: bool = True,
    prefix: Sequence[str] = (),
) -> subprocess.CompletedProcess[str]:
    """`scrapy crawl myanimelist` in a subprocess (a Twisted reactor runs once per process).

    `check`: assert that it exits 0; `prefix`: a command that runs the crawl (e.g. `unshare`).
    """
    command = [*prefix, sys.executable, "-m", "scrapy", "crawl", "myanimelist", "-a", f"out={out}"]
    if start_urls:
        command += ["-a", "start_urls=" + ",".join(start_urls)]
    command += list(args)
    for name, value in (settings or {}).items():
        text = value if isinstance(value, str) else json.dumps(value)
        command += ["-s", f"{name}={text}"]
    result = subprocess.run(
        command, cwd=REPO, capture_output=True, text=True, timeout=180, check=False
    )
    if check:
        assert result.returncode == 0, result.stderr[-4000:]
    return result


def crawl_local_pages(
    out: Path,
    *args: str,
    start_urls: list[str] | None = None,
    settings: dict[str, Any] | None = None,
    check: bool = True,
    prefix: Sequence[str] = (),
) -> subprocess.CompletedProcess[str]:
    """`run_crawl` replaying the hand-written pages, from LOCAL_START_URLS unless told others."""
    return run_crawl(
        out,
        "-a",
        f"replay={LOCAL_PAGES}",
        *args,
        settings=settings,
        start_urls=LOCAL_START_URLS if start_urls is None else start_urls,
        check=check,
        prefix=prefix,
    )


def read_rows(folder: Path, table: str) -> list[dict[str, str]]:
    """The rows of the seed mal_<table>.csv in `folder`."""
    with (folder / f"mal_{table}.csv").open(encoding="utf-8", newline="") as stream:
        return list(csv.DictReader(stream))


def final_stats(stderr: str) -> str:
    """The "Dumping Scrapy stats" block of a crawl log."""
    return stderr[stderr.rfind("Dumping Scrapy stats") :]


def stat(stderr: str, key: str) -> int:
    """One integer stat from the final stats dump of a crawl log (0 when absent)."""
    match = re.search(rf"'{re.escape(key)}': (\d+)", final_stats(stderr))
    return int(match.group(1)) if match else 0


class FakeSiteHandler(BaseDownloadHandler):
    """Answers http(s) requests from the folder FAKE_SITE_DIR, by replay file name.

    FAKE_SITE_SCRIPT maps a file name to the statuses to answer before the page itself, e.g.
    {"anime_6_Trigun.html": [429]}; FAKE_SITE_LOG collects one requested URL per line.
    A page that is not in the folder is answered with a 404.
    """

    def __init__(self, crawler: Crawler) -> None:
        super().__init__(crawler)
        settings = crawler.settings
        self.folder = Path(settings["FAKE_SITE_DIR"])
        self.script: dict[str, list[int]] = defaultdict(list, settings.getdict("FAKE_SITE_SCRIPT"))
        self.log = Path(settings["FAKE_SITE_LOG"]) if settings.get("FAKE_SITE_LOG") else None

    async def download_request(self, request: Request) -> Response:
        if self.log is not None:
            with self.log.open("a", encoding="utf-8") as stream:
                stream.write(request.url + "\n")
        if request.url.endswith("/robots.txt"):
            body = (self.folder / "robots.txt").read_bytes()
            return Response(request.url, body=body, headers={"Content-Type": "text/plain"})
        name = url_to_filename(request.url)
        if self.script[name]:
            status = self.script[name].pop(0)
            # A 429 says when to come back; a 5xx leaves the wait to the backoff rule.
            headers = {"Content-Type": "text/html"} | (
                {"Retry-After": "0"} if status == 429 else {}
            )
            return HtmlResponse(
                request.url,
                status=status,
                headers=headers,
                body=b"<html><head><title>Too Many Requests</title></head></html>",
                request=request,
            )
        path = self.folder / name
        if not path.is_file():
            return HtmlResponse(
                request.url,
                status=404,
                headers={"Content-Type": "text/html"},
                body=b"<html><head><title>404 Not Found - MyAnimeList.net</title></head></html>",
                request=request,
            )
        return HtmlResponse(
            request.url,
            status=200,
            headers={"Content-Type": "text/html; charset=utf-8"},
            body=path.read_bytes(),
            request=request,
        )


def fake_site_settings(folder: Path, log: Path, script: dict[str, list[int]]) -> dict[str, Any]:
    """Settings that route every download to `FakeSiteHandler`, politeness off for speed."""
    handler = "tests.crawler_helpers.FakeSiteHandler"
    return {
        "DOWNLOAD_HANDLERS": {"http": handler, "https": handler},
        "FAKE_SITE_DIR": str(folder),
        "FAKE_SITE_LOG": str(log),
        "FAKE_SITE_SCRIPT": script,
        "AUTOTHROTTLE_ENABLED": "False",
        "DOWNLOAD_DELAY": "0",
        "BACKOFF_BASE": "0.05",
    }


def same_files(first: Path, second: Path) -> None:
    """Assert two seed folders hold byte-identical CSVs."""
    names = sorted(p.name for p in first.glob("*.csv"))
    assert names == sorted(p.name for p in second.glob("*.csv"))
    for name in names:
        assert (first / name).read_bytes() == (second / name).read_bytes(), name


def parse_valid(response: Response) -> Parsed:
    """Parse a page that is not broken; every record it yields must pass validation."""
    parsed = parse_page(response)
    assert parsed.broken is None
    assert [validation_error(item) for item in parsed.items if validation_error(item)] == []
    return parsed


def of(parsed: Parsed, cls: type[R]) -> list[R]:
    return [item for item in parsed.items if isinstance(item, cls)]


def anime(parsed: Parsed, anime_id: int) -> Anime:
    found = [a for a in of(parsed, Anime) if a.anime_id == anime_id]
    assert found, f"anime {anime_id} not on the page"
    return found[0]
