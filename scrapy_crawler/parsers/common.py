"""Helpers shared by the page parsers: the result type, broken-page checks, label rows, links."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from parsel import Selector, SelectorList
from scrapy.http import Response, TextResponse

from scrapy_crawler.items import Record
from scrapy_crawler.loaders import RecordLoader, clean_text
from scrapy_crawler.urls import canonical, link_id


@dataclass
class Parsed:
    """What one page yields: records, and the pages the spider may follow from it."""

    items: list[Record] = field(default_factory=list)
    anime_links: list[str] = field(default_factory=list)  # anime detail pages (list pages)
    manga_links: list[str] = field(default_factory=list)  # adaptation sources (detail pages)
    next_pages: list[str] = field(default_factory=list)  # pagination of a list
    broken: str | None = None  # why the page could not be parsed, e.g. "truncated"


# Labels of the sidebar rows ("Genres:", "Theme:") in one spelling: singular, lowercase.
_PLURALS = {
    "genres": "genre",
    "explicit genres": "explicit genre",
    "themes": "theme",
    "demographics": "demographic",
    "studios": "studio",
    "producers": "producer",
    "licensors": "licensor",
    "authors": "author",
    "serializations": "serialization",
}
# MAL's error pages are titled by the error itself; real pages by "<name> - MyAnimeList.net".
_ERROR_TITLE = re.compile(
    r"^\s*(?:[45]\d\d\b|error\b|page not found|not found|forbidden|too many requests|"
    r"service unavailable|under maintenance|maintenance\b)",
    re.IGNORECASE,
)
_ERROR_MARKUP = re.compile(rb"class=\"[^\"]*\berror-?404\b", re.IGNORECASE)


def broken_kind(response: Response) -> str | None:
    """Why a response is no usable MyAnimeList page, or None when it looks whole.

    Kinds: `error_page` (HTTP error status, or MAL's own error/maintenance page), `not_html`,
    `empty`, `truncated` (the closing `</html>` never arrived, so lists may be cut short).
    """
    if response.status >= 400:
        return "error_page"
    header: bytes = response.headers.get(b"Content-Type") or b""
    content_type = header.decode("latin-1").lower()
    if not isinstance(response, TextResponse) or (content_type and "html" not in content_type):
        return "not_html"
    if not response.body.strip():
        return "empty"
    if b"</html>" not in response.body[-4096:].lower():
        return "truncated"
    title = clean_text(" ".join(response.css("title::text").getall())) or ""
    if _ERROR_TITLE.search(title) or _ERROR_MARKUP.search(response.body):
        return "error_page"
    return None


def normalize_label(label: str) -> str:
    """ "Genres:" → "genre", "Explicit Genre:" → "explicit genre"."""
    text = (clean_text(label) or "").rstrip(":").strip().lower()
    return _PLURALS.get(text, text)


def label_rows(selector: Selector | Response) -> dict[str, Selector]:
    """The sidebar's `<span class="dark_text">Label:</span> value` rows by normalized label."""
    rows: dict[str, Selector] = {}
    for row in selector.xpath("//*[span[contains(@class, 'dark_text')]]"):
        label = normalize_label(
            " ".join(row.xpath("./span[contains(@class, 'dark_text')]//text()").getall())
        )
        rows.setdefault(label, row)
    return rows


def row_text(row: Selector | None) -> str | None:
    """The visible value of a label row: its own text and link text, not hidden helpers."""
    if row is None:
        return None
    return clean_text(" ".join(row.xpath("./text() | ./a//text()").getall()))


def text_of(nodes: Selector | SelectorList[Selector] | None) -> str | None:
    """All text inside `nodes`, cleaned; None when there is none."""
    if nodes is None:
        return None
    return clean_text(" ".join(nodes.xpath(".//text()").getall()))


def links(row: Selector | None, kind: str) -> list[tuple[int, str | None, str]]:
    """(id, name, absolute href) of each `kind` link ("company", "genre", ...) in a row."""
    found: list[tuple[int, str | None, str]] = []
    if row is None:
        return found
    for anchor in row.xpath(".//a[@href]"):
        href = anchor.attrib["href"]
        entity_id = link_id(href, kind)
        if entity_id is None:
            continue
        name = clean_text(" ".join(anchor.xpath(".//text()").getall())) or clean_text(
            anchor.attrib.get("title")
        )
        found.append((entity_id, name, canonical(href)))
    return found


def load(loader_class: type[RecordLoader], values: Mapping[str, Any]) -> Record:
    """Build an item through its loader so every value passes the cleaning processors.

    A value may be a list of candidates: the first one that survives cleaning is kept.
    """
    loader = loader_class()
    for name, value in values.items():
        if value is not None:
            loader.add_value(name, value)
    item: Record = loader.load_item()
    return item


def unique(values: Iterable[str]) -> list[str]:
    """Values in first-seen order without repeats."""
    return list(dict.fromkeys(values))
