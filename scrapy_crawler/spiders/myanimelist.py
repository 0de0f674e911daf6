"""The `myanimelist` spider: from list or single pages to anime, cast, creators and adaptations.

Example: `scrapy crawl myanimelist -a start_urls=URL,URL -a max_anime=50 -a out=seeds`.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterator
from datetime import date
from pathlib import Path
from typing import Any, ClassVar, Self

from scrapy import Request, Spider
from scrapy.crawler import Crawler
from scrapy.http import Response

from scrapy_crawler.items import Record
from scrapy_crawler.parsers import parse_page
from scrapy_crawler.urls import (
    PageType,
    anime_url,
    canonical,
    characters_url,
    default_start_urls,
    link_id,
    page_type,
)

logger = logging.getLogger(__name__)

DEFAULT_MAX_ANIME = 100


def _split_urls(value: str | list[str] | None) -> list[str]:
    if not value:
        return []
    parts = value.split(",") if isinstance(value, str) else value
    return [canonical(part.strip()) for part in parts if part.strip()]


class MyAnimeListSpider(Spider):
    """Crawls MyAnimeList into the seed CSVs.

    Arguments (`-a name=value`):
      start_urls  comma-separated top, season, studio, anime, characters, manga or person
                  URLs; default: the first two top-anime pages and the current season
      max_anime   how many distinct anime to follow to their detail and characters pages
                  (default 100, 0 = no limit); list pages still yield every anime they show
      out         folder of the seed CSVs (default seeds/)
      replay      answer every request from the pages saved in this folder (no network)
      save        store every page fetched live in this folder, under its replay name
    """

    name = "myanimelist"
    allowed_domains: ClassVar[list[str]] = ["myanimelist.net"]

    def __init__(
        self,
        start_urls: str | list[str] | None = None,
        max_anime: str | int | None = None,
        out: str | None = None,
        replay: str | None = None,
        save: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.start_urls = _split_urls(start_urls) or default_start_urls(date.today())
        try:
            self.max_anime = DEFAULT_MAX_ANIME if max_anime is None else int(max_anime or 0)
        except ValueError:
            raise ValueError(f"max_anime must be a whole number, got {max_anime!r}") from None
        if self.max_anime < 0:
            raise ValueError(f"max_anime must be 0 (no limit) or more, got {self.max_anime}")
        self.out = out
        self.replay = replay
        self.save = save
        if replay is not None and not Path(replay).is_dir():
            # Never fall back to the network when a replay was asked for.
            raise ValueError(f"replay folder not found: {replay}")
        self.followed_anime: set[int] = set()  # counted against max_anime
        self.paired_anime: set[int] = set()  # detail and characters pages both requested
        self.followed_manga: set[int] = set()

    @classmethod
    def from_crawler(cls, crawler: Crawler, *args: Any, **kwargs: Any) -> Self:
        spider = super().from_crawler(crawler, *args, **kwargs)
        settings = crawler.settings
        if spider.out:
            settings.set("SEEDS_DIR", spider.out, priority="spider")
        if spider.save:
            settings.set("SAVE_DIR", spider.save, priority="spider")
        if spider.replay:
            # Saved pages answer at once: no robots.txt, no throttling, no politeness delay.
            settings.set("REPLAY_DIR", spider.replay, priority="spider")
            settings.set("ROBOTSTXT_OBEY", False, priority="spider")
            settings.set("AUTOTHROTTLE_ENABLED", False, priority="spider")
            settings.set("DOWNLOAD_DELAY", 0, priority="spider")
            # Parsing is the work now, on one thread: a few pages in flight are enough, and
            # fewer big pages sit in memory at once.
            settings.set("CONCURRENT_REQUESTS", 8, priority="spider")
            settings.set("CONCURRENT_REQUESTS_PER_DOMAIN", 8, priority="spider")
        return spider

    async def start(self) -> AsyncIterator[Request]:
        for url in self.start_urls:
            kind = page_type(url)
            if kind is None:
                logger.warning("Not a MyAnimeList page the spider knows, skipped: %s", url)
                self.crawler.stats.inc_value("start/unknown_url")
                continue
            if kind in (PageType.ANIME, PageType.CHARACTERS):
                anime_id = link_id(url, "anime")
                if anime_id is not None:
                    self.followed_anime.add(anime_id)
            yield self._request(url, kind)

    def _request(self, url: str, kind: PageType) -> Request:
        return Request(url, callback=self.parse_page, cb_kwargs={"kind": kind})

    def parse_page(self, response: Response, kind: PageType) -> Iterator[Record | Request]:
        """Every page: count it, yield its records, follow what it links to."""
        stats = self.crawler.stats
        parsed = parse_page(response, kind)
        if parsed.broken is not None:
            stats.inc_value(f"page/broken/{parsed.broken}")
            logger.warning("Broken page (%s), skipped: %s", parsed.broken, response.url)
            return
        stats.inc_value(f"page/{kind}")
        yield from parsed.items
        for href in parsed.anime_links:
            yield from self._follow_anime(href)
        # An anime's detail and characters pages come in pairs: each asks for the other once.
        paired = kind in (PageType.ANIME, PageType.CHARACTERS)
        anime_id = link_id(response.url, "anime") if paired else None
        if anime_id is not None and anime_id not in self.paired_anime:
            self.paired_anime.add(anime_id)
            if kind is PageType.ANIME:
                yield self._request(characters_url(response.url), PageType.CHARACTERS)
            else:
                yield self._request(anime_url(response.url), PageType.ANIME)
        for href in parsed.manga_links:
            manga_id = link_id(href, "manga")
            if manga_id is not None and manga_id not in self.followed_manga:
                self.followed_manga.add(manga_id)
                yield self._request(href, PageType.MANGA)
        for href in parsed.next_pages:
            next_kind = page_type(href)
            if next_kind is not None and self._budget_left():
                yield self._request(href, next_kind)

    def _budget_left(self) -> bool:
        return self.max_anime == 0 or len(self.followed_anime) < self.max_anime

    def _follow_anime(self, href: str) -> Iterator[Request]:
        """An anime seen on a list page: its detail and characters pages, within max_anime."""
        anime_id = link_id(href, "anime")
        if anime_id is None or anime_id in self.followed_anime:
            return
        if not self._budget_left():
            self.crawler.stats.inc_value("follow/anime_over_limit")
            return
        self.followed_anime.add(anime_id)
        self.paired_anime.add(anime_id)
        yield self._request(href, PageType.ANIME)
        yield self._request(characters_url(href), PageType.CHARACTERS)
