"""The `myanimelist` spider: from list or single pages to anime, cast, creators and adaptations.

Example: `scrapy crawl myanimelist -a start_urls=URL,URL -a max_anime=50 -a out=seeds`.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import dataclass, fields
from datetime import date
from pathlib import Path
from typing import Any, ClassVar, Self

from scrapy import Request, Spider
from scrapy.crawler import Crawler
from scrapy.exceptions import UsageError
from scrapy.http import Response
from scrapy.settings import BaseSettings

from scrapy_crawler.files import unwritable
from scrapy_crawler.httpcache import cache_settings
from scrapy_crawler.items import Record
from scrapy_crawler.parsers import parse_page
from scrapy_crawler.urls import (
    PageType,
    anime_url,
    canonical,
    characters_url,
    default_start_urls,
    is_site_url,
    link_id,
    page_type,
)

logger = logging.getLogger(__name__)

DEFAULT_MAX_ANIME = 100
_KNOWN_PAGES = "the URL of a top, season, studio, anime, characters, manga or person page"
_TRUE, _FALSE = ("true", "yes", "1"), ("false", "no", "0")


def _split_urls(value: str | list[str] | None) -> list[str]:
    if not value:
        return []
    parts = value.split(",") if isinstance(value, str) else value
    return [canonical(part.strip()) for part in parts if part.strip()]


def _start_url(url: str) -> str:
    if not is_site_url(url) or page_type(url) is None:
        raise UsageError(
            f"start_urls: {url} is not a MyAnimeList page the spider knows; give {_KNOWN_PAGES}"
        )
    return url


def _whole_number(name: str, value: Any, default: int) -> int:
    if value is None:
        return default
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise UsageError(f"{name} must be a whole number (0 = no limit), got {value!r}") from None
    if number < 0:
        raise UsageError(f"{name} must be 0 (no limit) or more, got {number}")
    return number


def _flag(name: str, value: Any) -> bool:
    if value is None or isinstance(value, bool):
        return bool(value)
    text = str(value).strip().lower()
    if text not in _TRUE + _FALSE:
        raise UsageError(f"{name} must be true or false, got {value!r}")
    return text in _TRUE


@dataclass(frozen=True)
class SpiderArguments:
    """The spider's `-a name=value` arguments, checked: `parse` raises a one-line UsageError."""

    start_urls: list[str]
    max_anime: int
    out: str | None
    replay: str | None
    save: str | None
    allow_shrink: bool

    @classmethod
    def parse(cls, values: Mapping[str, Any]) -> SpiderArguments:
        known = [field.name for field in fields(cls)]
        names = sorted(set(values) - set(known))
        if names:
            raise UsageError(
                f"unknown spider argument {names[0]!r}; the arguments are {', '.join(known)}"
            )
        replay = values.get("replay") or None
        if replay is not None and not Path(replay).is_dir():
            # Never fall back to the network when a replay was asked for.
            problem = f"is a file: {replay}" if Path(replay).exists() else f"not found: {replay}"
            raise UsageError(
                f"replay folder {problem}; give -a replay=DIR the folder of saved pages"
            )
        return cls(
            start_urls=[_start_url(url) for url in _split_urls(values.get("start_urls"))],
            max_anime=_whole_number("max_anime", values.get("max_anime"), DEFAULT_MAX_ANIME),
            out=values.get("out") or None,
            replay=replay,
            save=values.get("save") or None,
            allow_shrink=_flag("allow_shrink", values.get("allow_shrink")),
        )


class MyAnimeListSpider(Spider):
    """Crawls MyAnimeList into the seed CSVs.

    Arguments (`-a name=value`):
      start_urls    comma-separated top, season, studio, anime, characters, manga or person
                    URLs; default: the first two top-anime pages and the current season
      max_anime     how many distinct anime to follow to their detail and characters pages
                    (default 100, 0 = no limit); list pages still yield every anime they show
      out           folder of the seed CSVs (default seeds/)
      replay        answer every request from the pages saved in this folder (no network)
      save          store every page fetched live in this folder, under its replay name
      allow_shrink  true: replace seed files even when they would lose more than half their
                    rows (default false)

    The seeds in `out` are replaced only by a crawl that finished, found records, and leaves
    every seed file at least half its rows (or was given allow_shrink=true); otherwise they are
    left as they were and `scrapy crawl` exits 1 with a summary of the files, rows before ->
    after. A bad argument or an unwritable folder stops the crawl before it starts.
    """

    name = "myanimelist"
    allowed_domains: ClassVar[list[str]] = ["myanimelist.net"]

    def __init__(self, **arguments: Any) -> None:
        super().__init__()
        parsed = SpiderArguments.parse(arguments)
        self.start_urls = parsed.start_urls or default_start_urls(date.today())
        self.max_anime = parsed.max_anime
        self.followed_anime: set[int] = set()  # counted against max_anime
        self.paired_anime: set[int] = set()  # detail and characters pages both requested
        self.followed_manga: set[int] = set()

    @classmethod
    def check_arguments(
        cls, arguments: Mapping[str, Any], settings: BaseSettings
    ) -> SpiderArguments:
        """The arguments, parsed, and the folders they write to checked: else a UsageError.

        The `crawl` command calls it before Scrapy starts, so the error is all it prints.
        """
        parsed = SpiderArguments.parse(arguments)
        folders = {"out": parsed.out or settings.get("SEEDS_DIR") or "seeds", "save": parsed.save}
        for name, folder in folders.items():
            problem = unwritable(Path(folder)) if folder else None
            if problem is not None:
                raise UsageError(
                    f"{name}: cannot write to {folder} ({problem}); choose another -a {name}=DIR"
                )
        return parsed

    @classmethod
    def from_crawler(cls, crawler: Crawler, *args: Any, **kwargs: Any) -> Self:
        arguments = cls.check_arguments(kwargs, crawler.settings)
        spider = super().from_crawler(crawler, *args, **kwargs)
        settings = crawler.settings
        if arguments.out:
            settings.set("SEEDS_DIR", arguments.out, priority="spider")
        if arguments.allow_shrink:
            settings.set("SEEDS_ALLOW_SHRINK", True, priority="spider")
        if arguments.save:
            settings.set("SAVE_DIR", arguments.save, priority="spider")
        if arguments.replay:
            settings.set("REPLAY_DIR", arguments.replay, priority="spider")
            # Saved pages answer at once: no robots.txt, no throttling, no politeness delay.
            settings.set("ROBOTSTXT_OBEY", False, priority="spider")
            settings.set("AUTOTHROTTLE_ENABLED", False, priority="spider")
            settings.set("DOWNLOAD_DELAY", 0, priority="spider")
            # Parsing is the work now, on one thread: a few pages in flight are enough, and
            # fewer big pages sit in memory at once.
            settings.set("CONCURRENT_REQUESTS", 8, priority="spider")
            settings.set("CONCURRENT_REQUESTS_PER_DOMAIN", 8, priority="spider")
        # Replay and save are the HTTP cache, whether the folders came as -a or as -s settings.
        replay, save = settings.get("REPLAY_DIR"), settings.get("SAVE_DIR")
        settings.setdict(cache_settings(replay, save), priority="spider")
        return spider

    async def start(self) -> AsyncIterator[Request]:
        for url in self.start_urls:
            kind = page_type(url)
            if kind is None:  # start_urls set after the arguments were checked
                raise ValueError(f"not a MyAnimeList page the spider knows: {url}")
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
