"""Backing off on 429 and 5xx: Scrapy's RetryMiddleware retries at once and ignores Retry-After.

Replay and save are Scrapy's HTTP cache (scrapy_crawler/httpcache.py); waiting before a retry is
what no Scrapy component does, hence this middleware.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Self

from scrapy.crawler import Crawler
from scrapy.exceptions import NotConfigured
from scrapy.http import Request, Response
from scrapy.utils.defer import maybe_deferred_to_future

logger = logging.getLogger(__name__)


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
