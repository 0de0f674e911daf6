"""Replay and save (Scrapy's HTTP cache over page folders), backoff; a "live" crawl of a fake site."""

from __future__ import annotations

import asyncio
import shutil
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

import pytest
from scrapy import Request
from scrapy.crawler import Crawler
from scrapy.downloadermiddlewares.httpcache import HttpCacheMiddleware
from scrapy.exceptions import IgnoreRequest, NotConfigured
from scrapy.http import HtmlResponse, Response
from scrapy.utils.test import get_crawler

from scrapy_crawler import settings as project_settings
from scrapy_crawler.httpcache import MISSING_STAT, REPLAYED_STAT, cache_settings
from scrapy_crawler.middlewares import BackoffMiddleware
from tests.crawler_helpers import (
    LOCAL_PAGES,
    MAL,
    fake_site_settings,
    run_crawl,
    same_files,
    stat,
)

PROJECT_SETTINGS = {name: value for name, value in vars(project_settings).items() if name.isupper()}


def cache_middleware(
    replay: Path | None = None, save: Path | None = None
) -> tuple[HttpCacheMiddleware, Crawler]:
    """Scrapy's HTTP cache with the project's settings, as `-a replay=` / `-a save=` set it up."""
    replay_dir, save_dir = (str(folder) if folder else None for folder in (replay, save))
    settings = PROJECT_SETTINGS | {"REPLAY_DIR": replay_dir, "SAVE_DIR": save_dir}
    crawler = get_crawler(settings_dict=settings | cache_settings(replay_dir, save_dir))
    return HttpCacheMiddleware.from_crawler(crawler), crawler


def test_replay_answers_from_the_saved_page() -> None:
    middleware, crawler = cache_middleware(replay=LOCAL_PAGES)
    response = middleware.process_request(Request(f"{MAL}/topanime.php"))
    assert isinstance(response, HtmlResponse)
    assert response.body == (LOCAL_PAGES / "topanime.html").read_bytes()
    assert "cached" in response.flags
    assert crawler.stats.get_value(REPLAYED_STAT) == 1


def test_replay_counts_a_missing_page_and_ignores_its_request() -> None:
    middleware, crawler = cache_middleware(replay=LOCAL_PAGES)
    with pytest.raises(IgnoreRequest, match=r"anime/1/Nowhere"):
        middleware.process_request(Request(f"{MAL}/anime/1/Nowhere"))
    assert crawler.stats.get_value(MISSING_STAT) == 1


def test_replay_serves_a_non_html_file_as_such_and_never_the_network() -> None:
    middleware, crawler = cache_middleware(replay=LOCAL_PAGES)
    json_page = middleware.process_request(Request(f"{MAL}/anime/900903/Json"))
    assert json_page is not None and not isinstance(json_page, HtmlResponse)
    # A replay does not ask for robots.txt; were it asked, it is a page not saved: ignored,
    # which RobotsTxtMiddleware takes as "allow all".
    with pytest.raises(IgnoreRequest):
        middleware.process_request(Request(f"{MAL}/robots.txt"))
    handlers = crawler.settings.getwithbase("DOWNLOAD_HANDLERS")
    assert (handlers["http"], handlers["https"]) == (None, None)


def test_replay_and_save_are_off_unless_asked() -> None:
    with pytest.raises(NotConfigured):
        cache_middleware()


def test_save_stores_live_pages_under_their_replay_name(tmp_path: Path) -> None:
    middleware, crawler = cache_middleware(save=tmp_path)
    url = f"{MAL}/topanime.php?limit=50"
    assert middleware.process_request(Request(url)) is None  # fetched live
    ok = HtmlResponse(url, body=b"<html>top</html>", request=Request(url))
    assert middleware.process_response(Request(url), ok) is ok
    assert (tmp_path / "topanime_limit_50.html").read_bytes() == b"<html>top</html>"
    # Error pages, replayed pages and robots.txt are not saved.
    error_url = f"{MAL}/anime/1/X"
    middleware.process_response(Request(error_url), HtmlResponse(error_url, status=404))
    replayed = HtmlResponse(f"{MAL}/anime/2/Y", body=b"x", flags=["cached"])
    middleware.process_response(Request(replayed.url), replayed)
    robots = f"{MAL}/robots.txt"
    middleware.process_response(Request(robots), Response(robots, body=b"User-agent: *"))
    assert [p.name for p in tmp_path.iterdir()] == ["topanime_limit_50.html"]
    assert crawler.stats.get_value("httpcache/store") == 1


def test_a_saved_page_is_written_atomically(tmp_path: Path) -> None:
    middleware, _ = cache_middleware(save=tmp_path)
    url = f"{MAL}/anime/6/Trigun"
    for body in (b"new", b"newer"):
        middleware.storage.store_response(None, Request(url), HtmlResponse(url, body=body))
    assert (tmp_path / "anime_6_Trigun.html").read_bytes() == b"newer"
    assert [p.name for p in tmp_path.iterdir()] == ["anime_6_Trigun.html"]


def _backoff(**settings: object) -> BackoffMiddleware:
    return BackoffMiddleware.from_crawler(
        get_crawler(settings_dict={"BACKOFF_MAX": 60, **settings})
    )


def test_backoff_delay_honours_retry_after_then_grows_exponentially() -> None:
    middleware = _backoff(BACKOFF_BASE=2.0)
    plain = Response(f"{MAL}/x", status=503)
    assert [middleware.delay(plain, attempt) for attempt in range(4)] == [2.0, 4.0, 8.0, 16.0]
    assert middleware.delay(plain, 10) == 60.0  # capped
    seconds = Response(f"{MAL}/x", status=429, headers={"Retry-After": "7"})
    assert middleware.delay(seconds, 3) == 7.0
    later = format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    when = Response(f"{MAL}/x", status=429, headers={"Retry-After": later})
    assert 25 <= middleware.delay(when, 0) <= 30
    past = format_datetime(datetime.now(UTC) - timedelta(hours=1), usegmt=True)
    assert middleware.delay(Response(f"{MAL}/x", status=429, headers={"Retry-After": past}), 0) == 0


def test_backoff_lets_other_responses_through_at_once() -> None:
    middleware = _backoff()
    ok = Response(f"{MAL}/x", status=200)
    assert asyncio.run(middleware.process_response(Request(ok.url), ok)) is ok
    not_retried = Response(f"{MAL}/x", status=404)
    assert asyncio.run(middleware.process_response(Request(ok.url), not_retried)) is not_retried
    last_try = Request(ok.url, meta={"retry_times": 4})
    busy = Response(f"{MAL}/x", status=503)
    assert asyncio.run(middleware.process_response(last_try, busy)) is busy  # giving up: no wait


def test_backoff_is_off_without_retries() -> None:
    with pytest.raises(NotConfigured):
        _backoff(RETRY_ENABLED=False)


@pytest.fixture(scope="module")
def live_crawl(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path | str]:
    """A live-mode crawl of a fake site (429 and 503 first, robots.txt) that saves its pages."""
    root = tmp_path_factory.mktemp("live")
    site = root / "site"
    shutil.copytree(LOCAL_PAGES, site)
    (site / "robots.txt").write_text("User-agent: *\nDisallow: /anime/900005/\n", encoding="utf-8")
    log = root / "requests.log"
    settings = fake_site_settings(
        site,
        log,
        {"anime_season_2030_spring.html": [429], "people_900201_Some_Person.html": [503, 503]},
    )
    start = [
        f"{MAL}/anime/season/2030/spring",
        f"{MAL}/people/900201/Some_Person",
        f"{MAL}/anime/900005/Partial_Dates",
    ]
    result = run_crawl(
        root / "out", "-a", f"save={root / 'saved'}", settings=settings, start_urls=start
    )
    return {
        "root": root,
        "site": site,
        "log": log,
        "stderr": result.stderr,
        "start": ",".join(start),
    }


def test_live_crawl_saves_every_fetched_page(live_crawl: dict[str, Path | str]) -> None:
    root, site = Path(live_crawl["root"]), Path(live_crawl["site"])
    saved = {p.name for p in (root / "saved").iterdir()}
    assert {
        "anime_season_2030_spring.html",
        "people_900201_Some_Person.html",
        "anime_900001_Singular_Labels.html",
        "anime_900001_Singular_Labels_characters.html",
        "manga_900101_Some_Novel.html",
    } <= saved
    assert not [name for name in saved if not name.endswith(".html")]  # no temp files left
    for name in saved:
        assert (root / "saved" / name).read_bytes() == (site / name).read_bytes()
    # Pages the site answered with 404 are not saved.
    assert "anime_900006_Long_Runner.html" not in saved


def test_live_crawl_obeys_robots_txt(live_crawl: dict[str, Path | str]) -> None:
    requested = Path(live_crawl["log"]).read_text(encoding="utf-8").splitlines()
    assert f"{MAL}/robots.txt" in requested
    assert f"{MAL}/anime/900005/Partial_Dates" not in requested
    assert stat(str(live_crawl["stderr"]), "robotstxt/forbidden") == 1


def test_live_crawl_retries_429_and_5xx_with_backoff(live_crawl: dict[str, Path | str]) -> None:
    stderr = str(live_crawl["stderr"])
    assert stat(stderr, "backoff/429") == 1
    assert stat(stderr, "backoff/503") == 2
    assert stat(stderr, "retry/count") == 3
    requested = Path(live_crawl["log"]).read_text(encoding="utf-8").splitlines()
    assert requested.count(f"{MAL}/people/900201/Some_Person") == 3
    assert "waiting 0.1 s before retrying" in stderr  # 0.05 * 2**1 for the second 503


def test_replay_of_saved_pages_gives_the_live_crawl_seeds(
    live_crawl: dict[str, Path | str],
) -> None:
    root = Path(live_crawl["root"])
    start = str(live_crawl["start"]).split(",")
    # The fake site stands by: pages that were not saved (its 404s) must not be asked of it.
    log = root / "replay-requests.log"
    settings = fake_site_settings(Path(live_crawl["site"]), log, {})
    result = run_crawl(
        root / "replayed",
        "-a",
        f"replay={root / 'saved'}",
        settings=settings,
        start_urls=start,
    )
    same_files(root / "out", root / "replayed")
    assert stat(result.stderr, MISSING_STAT) >= 1
    assert not log.exists()
