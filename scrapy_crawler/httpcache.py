"""Replay and save of pages through Scrapy's HTTP cache: a folder of saved pages is the cache.

Scrapy's HttpCacheMiddleware does the work: it answers a request from the storage or lets it
through, ignores what is not stored when HTTPCACHE_IGNORE_MISSING says so, stores what the
policy allows, and counts all of it (`httpcache/hit`, `httpcache/ignore`, `httpcache/store`).
What is ours is the storage, whose entries are plain page files named by `url_to_filename`
(`/anime/6/Trigun` -> `anime_6_Trigun.html`), and the policy of what is worth saving.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from scrapy import Request, Spider
from scrapy.extensions.httpcache import DummyPolicy
from scrapy.http import HtmlResponse, Response
from scrapy.settings import BaseSettings

from animedb.files import atomic_write
from scrapy_crawler.urls import url_to_filename

logger = logging.getLogger(__name__)

# HttpCacheMiddleware's stats in a replay: a page answered from the folder, a page not in it.
REPLAYED_STAT = "httpcache/hit"
MISSING_STAT = "httpcache/ignore"


def cache_settings(replay: str | None, save: str | None) -> dict[str, Any]:
    """The settings that turn the cache on for a replay from `replay` and/or a save to `save`."""
    if not (replay or save):
        return {}
    settings: dict[str, Any] = {"HTTPCACHE_ENABLED": True}
    if replay:
        # Answer from the folder or not at all: a page that is not saved is ignored rather than
        # downloaded, and with no http(s) download handler nothing could be downloaded anyway.
        settings["HTTPCACHE_IGNORE_MISSING"] = True
        settings["DOWNLOAD_HANDLERS"] = {"http": None, "https": None}
    return settings


class SavedPagesPolicy(DummyPolicy):
    """Every saved page is fresh; only a page answered 200 is saved (not robots.txt).

    DummyPolicy, not RFC2616Policy: saved pages carry no headers to revalidate by, and a replay
    must never go back to the site to ask whether a page changed.
    """

    def should_cache_response(self, response: Response, request: Request) -> bool:
        return response.status == 200 and urlsplit(response.url).path != "/robots.txt"


def page_response(request: Request, body: bytes) -> Response:
    """A saved page as a response: HTML unless its first byte says otherwise (JSON, an image)."""
    html = body.lstrip()[:1] in (b"<", b"")
    content_type = "text/html; charset=utf-8" if html else "application/octet-stream"
    return (HtmlResponse if html else Response)(
        request.url,
        status=200,
        headers={"Content-Type": content_type},
        body=body,
        request=request,
    )


class PageFolderStorage:
    """HTTPCACHE_STORAGE over folders of pages: reads REPLAY_DIR, writes SAVE_DIR.

    A page is stored as its body alone (decoded: the middleware sits below HttpCompression),
    written to a temporary file and renamed, so an interrupted crawl never leaves half a page.
    """

    def __init__(self, settings: BaseSettings) -> None:
        replay, save = settings.get("REPLAY_DIR"), settings.get("SAVE_DIR")
        self.replay = Path(replay) if replay else None
        self.save = Path(save) if save else None
        if self.replay is not None and not self.replay.is_dir():
            # Failing beats quietly crawling the live site instead of the saved pages.
            raise ValueError(f"REPLAY_DIR {self.replay} is not a folder")

    def open_spider(self, spider: Spider) -> None:
        pass

    def close_spider(self, spider: Spider) -> None:
        pass

    def retrieve_response(self, spider: Spider, request: Request) -> Response | None:
        if self.replay is None:
            return None  # saving only: every page comes from the site
        path = self.replay / url_to_filename(request.url)
        if not path.is_file():
            logger.debug("Replay: no saved page %s for %s", path.name, request.url)
            return None
        return page_response(request, path.read_bytes())

    def store_response(self, spider: Spider, request: Request, response: Response) -> None:
        if self.save is not None:
            atomic_write(self.save / url_to_filename(request.url), response.body)
