"""Downloader middlewares: replay saved pages, save live pages, back off on 429 and 5xx."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Self
from urllib.parse import urlsplit

from scrapy.crawler import Crawler
from scrapy.exceptions import IgnoreRequest, NotConfigured
from scrapy.http import HtmlResponse, Request, Response
from scrapy.utils.defer import maybe_deferred_to_future

from scrapy_crawler.files import atomic_write
from scrapy_crawler.urls import url_to_filename

logger = logging.getLogger(__name__)


def _is_robots(url: str) -> bool:
    return urlsplit(url).path == "/robots.txt"


class ReplayMiddleware:
    """Answers every request from a saved page in REPLAY_DIR instead of the network.

    The file of a URL is `url_to_filename(url)`. A missing page is counted (`replay/missing`) and
    its request ignored, so the crawl goes on with what there is.
    """

    def __init__(self, crawler: Crawler, folder: Path) -> None:
        self.crawler = crawler
        self.folder = folder

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> Self:
        folder = crawler.settings.get("REPLAY_DIR")
        if not folder:
            raise NotConfigured  # no replay asked: silently off
        path = Path(folder)
        if not path.is_dir():
            # Failing beats quietly crawling the live site instead of the saved pages.
            raise ValueError(f"REPLAY_DIR {path} is not a folder")
        return cls(crawler, path)

    def process_request(self, request: Request) -> Response | None:
        stats = self.crawler.stats
        if _is_robots(request.url):
            # Replay never consults robots.txt; should anything ask, say "allow all".
            stats.inc_value("replay/robots")
            return Response(request.url, status=200, body=b"", request=request, flags=["replay"])
        path = self.folder / url_to_filename(request.url)
        if not path.is_file():
            stats.inc_value("replay/missing")
            logger.debug("Replay: no saved page %s for %s", path.name, request.url)
            raise IgnoreRequest(f"replay: no saved page {path.name}")
        body = path.read_bytes()
        stats.inc_value("replay/pages")
        # A saved page is HTML unless its first byte says otherwise (a saved JSON or image).
        if body.lstrip()[:1] in (b"<", b""):
            return HtmlResponse(
                request.url,
                status=200,
                headers={"Content-Type": "text/html; charset=utf-8"},
                body=body,
                request=request,
                flags=["replay"],
            )
        return Response(
            request.url,
            status=200,
            headers={"Content-Type": "application/octet-stream"},
            body=body,
            request=request,
            flags=["replay"],
        )


class SaveMiddleware:
    """Stores every page fetched live (status 200) in SAVE_DIR under its replay file name.

    Sits after HTTP decompression so the saved file is the page's HTML; written to a temporary
    file and renamed, so an interrupted crawl never leaves half a page behind.
    """

    def __init__(self, crawler: Crawler, folder: Path) -> None:
        self.crawler = crawler
        self.folder = folder

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> Self:
        folder = crawler.settings.get("SAVE_DIR")
        if not folder:
            raise NotConfigured  # no saving asked: silently off
        return cls(crawler, Path(folder))

    def process_response(self, request: Request, response: Response) -> Response:
        if response.status != 200 or "replay" in response.flags or _is_robots(response.url):
            return response
        save_page(self.folder, request.url, response.body)
        self.crawler.stats.inc_value("save/pages")
        return response


def save_page(folder: Path, url: str, body: bytes) -> Path:
    """Write `body` as the saved page of `url` in `folder`, atomically."""
    target = folder / url_to_filename(url)
    atomic_write(target, body)
    return target


async def _sleep(seconds: float) -> None:
    """Sleep without blocking the reactor (imported late: importing it installs one)."""
    from twisted.internet import reactor
    from twisted.internet.task import deferLater

    await maybe_deferred_to_future(deferLater(reactor, seconds))


class BackoffMiddleware:
    """Waits before a 429 or 5xx response is retried by Scrapy's RetryMiddleware.

    Honours `Retry-After` (seconds or an HTTP date), else waits BACKOFF_BASE * 2**attempt, at
    most BACKOFF_MAX seconds, and raises the site's download delay to match so the other queued
    requests slow down too. Placed just above RetryMiddleware, it sees the response first.
    """

    def __init__(self, crawler: Crawler) -> None:
        settings = crawler.settings
        if not settings.getbool("RETRY_ENABLED") or not settings.getbool("BACKOFF_ENABLED", True):
            raise NotConfigured("retries or backoff disabled")
        self.crawler = crawler
        self.base = settings.getfloat("BACKOFF_BASE", 2.0)
        self.maximum = settings.getfloat("BACKOFF_MAX", 120.0)
        self.max_retries = settings.getint("RETRY_TIMES")
        self.codes = {
            code
            for code in map(int, settings.getlist("RETRY_HTTP_CODES"))
            if code == 429 or code >= 500
        }

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> Self:
        return cls(crawler)

    def delay(self, response: Response, attempt: int) -> float:
        """Seconds to wait before retry number `attempt + 1`."""
        header = response.headers.get(b"Retry-After")
        if header:
            text = header.decode("latin-1").strip()
            seconds: float | None = None
            if text.isdigit():
                seconds = float(text)
            else:
                try:
                    when = parsedate_to_datetime(text)
                    seconds = (when - datetime.now(UTC)).total_seconds()
                except (TypeError, ValueError):
                    seconds = None
            if seconds is not None:
                return min(max(seconds, 0.0), self.maximum)
        return min(self.base * 2.0**attempt, self.maximum)

    async def process_response(self, request: Request, response: Response) -> Response:
        if response.status not in self.codes or request.meta.get("dont_retry"):
            return response
        attempt = int(request.meta.get("retry_times", 0))
        if attempt >= int(request.meta.get("max_retry_times", self.max_retries)):
            return response  # RetryMiddleware gives up: no point in waiting
        wait = self.delay(response, attempt)
        stats = self.crawler.stats
        stats.inc_value(f"backoff/{response.status}")
        stats.inc_value("backoff/seconds", round(wait))
        logger.info(
            "HTTP %s for %s: waiting %.1f s before retrying", response.status, request.url, wait
        )
        self._slow_down(request, wait)
        await _sleep(wait)
        return response

    def _slow_down(self, request: Request, wait: float) -> None:
        engine = self.crawler.engine
        downloader = engine.downloader
        slot = downloader.slots.get(downloader.get_slot_key(request))
        if slot is not None:
            slot.delay = max(slot.delay, wait)
