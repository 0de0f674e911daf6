"""Page parsers: pure functions from a Response to the records and links the page holds.

`parse_page` picks the parser from the URL, refuses broken pages, and stamps each record with
its page and priority, the weight its values carry when records of one row are merged.
"""

from __future__ import annotations

from collections.abc import Callable

from scrapy.http import Response, TextResponse

from scrapy_crawler.parsers.anime import parse_anime, parse_characters
from scrapy_crawler.parsers.common import Parsed, broken_kind
from scrapy_crawler.parsers.lists import parse_season, parse_studio, parse_top
from scrapy_crawler.parsers.manga import parse_manga
from scrapy_crawler.parsers.person import parse_person
from scrapy_crawler.urls import PageType, page_subject, page_type

__all__ = ["PAGE_WEIGHT", "PARSERS", "Parsed", "parse_page", "record_priority"]

PARSERS: dict[PageType, Callable[[TextResponse], Parsed]] = {
    PageType.TOP: parse_top,
    PageType.SEASON: parse_season,
    PageType.STUDIO: parse_studio,
    PageType.ANIME: parse_anime,
    PageType.CHARACTERS: parse_characters,
    PageType.MANGA: parse_manga,
    PageType.PERSON: parse_person,
}

# How far a page is trusted about records that are not its own subject. The detail page's
# sidebar is the reference; list pages round, abbreviate or omit.
PAGE_WEIGHT: dict[PageType, int] = {
    PageType.ANIME: 9,
    PageType.CHARACTERS: 8,
    PageType.MANGA: 7,
    PageType.PERSON: 6,
    PageType.STUDIO: 5,
    PageType.TOP: 4,
    PageType.SEASON: 3,
}
# A record on its own page (Trigun on /anime/6, Pierrot on /anime/producer/1) beats all others.
OWN_PAGE_BONUS = 100


def _throwaway_copy(response: Response) -> Response:
    """The same page in a response object of its own, so that the parsed tree (tens of MB for a
    big page, cached on the response) is freed as soon as parsing ends rather than living on
    while Scrapy pushes the page's items through the pipelines."""
    if not isinstance(response, TextResponse):
        return response
    return response.__class__(
        url=response.url,
        status=response.status,
        headers=response.headers,
        body=response.body,
        encoding=response.encoding,
        request=response.request,
    )


def record_priority(kind: PageType, subject: tuple[str, int] | None, entity: object) -> int:
    """The merge priority of a record found on a page of `kind` about `subject`."""
    own = subject is not None and entity == subject
    return PAGE_WEIGHT[kind] + (OWN_PAGE_BONUS if own else 0)


def parse_page(response: Response, kind: PageType | None = None) -> Parsed:
    """Parse any MyAnimeList page the spider knows; `broken` says why a page yields nothing."""
    kind = kind or page_type(response.url)
    response = _throwaway_copy(response)
    broken = broken_kind(response)
    if broken is not None:
        return Parsed(broken=broken)
    if kind is None or not isinstance(response, TextResponse):
        return Parsed(broken="unknown_page")
    parsed = PARSERS[kind](response)
    if not parsed.anime_links and not any(item.complete() for item in parsed.items):
        # A whole page that holds nothing we know: most likely a changed layout.
        return Parsed(broken="unrecognized")
    # A list page repeats the same genre or studio on many cards: one record per page is enough.
    parsed.items = list({(type(item), item.row()): item for item in parsed.items}.values())
    subject = page_subject(response.url)
    for item in parsed.items:
        item.page_url = response.url
        item.priority = record_priority(kind, subject, item.entity())
    return parsed
