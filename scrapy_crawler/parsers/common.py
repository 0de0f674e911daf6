"""Helpers shared by the page parsers: the result type, broken-page checks, the page's subject,
label rows, links, and the records that several kinds of page yield alike."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from parsel import Selector, SelectorList
from scrapy.http import Response, TextResponse

from scrapy_crawler.items import (
    CHARACTER_ROLES,
    AnimeCompany,
    AnimeGenre,
    AnimeOriginalCreator,
    AnimeVoiceActor,
    Company,
    Genre,
    Record,
)
from scrapy_crawler.loaders import clean_text, load, strip_label
from scrapy_crawler.urls import canonical, link_id, page_subject

# The staff position whose credits are the anime's original creators.
ORIGINAL_CREATOR = "Original Creator"


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


def subject_id(response: Response, kind: str) -> int | None:
    """The id of the `kind` entity ("manga", "person", ...) the page is about, from its URL;
    None when the page is about no such entity."""
    subject = page_subject(response.url)
    return subject[1] if subject is not None and subject[0] == kind else None


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


def anime_link(anchor: Selector | SelectorList[Selector]) -> tuple[int, str] | None:
    """(id, absolute URL) of the anime an anchor links to, or None when it links to none."""
    href = anchor.attrib.get("href")
    anime_id = link_id(href, "anime")
    return None if anime_id is None or href is None else (anime_id, canonical(href))


def character_role(node: Selector | SelectorList[Selector]) -> str | None:
    """ "Main" or "Supporting": the first text inside `node` that is a character role."""
    texts = (clean_text(text) for text in node.xpath(".//text()").getall())
    return next((text for text in texts if text in CHARACTER_ROLES), None)


def genre_records(anime_id: int, genre_id: int, name: str | None, kind: str) -> list[Record]:
    """A genre of some kind ("theme", ...) and the anime's row in it."""
    return [
        load(Genre, {"genre_id": genre_id, "name": name, "kind": kind}),
        load(AnimeGenre, {"anime_id": anime_id, "genre_id": genre_id}),
    ]


def company_records(anime_id: int, company_id: int, name: str | None, role: str) -> list[Record]:
    """A company and its role ("studio", ...) for the anime."""
    return [
        load(Company, {"company_id": company_id, "name": name}),
        load(AnimeCompany, {"anime_id": anime_id, "company_id": company_id, "role": role}),
    ]


def voice_actor_record(
    anime_id: int, character_id: int, role: str | None, person_id: int, language: str | None
) -> Record:
    """A person voicing a character of the anime, in a dub `language` (None: not stated)."""
    return load(
        AnimeVoiceActor,
        {
            "anime_id": anime_id,
            "character_id": character_id,
            "character_role": role,
            "person_id": person_id,
            "language": language,
        },
    )


def original_creator_record(anime_id: int, person_id: int, positions: str | None) -> Record | None:
    """The person's original-creator credit for the anime, when their staff positions
    ("Original Creator, Script") include that one; None otherwise."""
    if ORIGINAL_CREATOR not in [p.strip() for p in (positions or "").split(",")]:
        return None
    return load(
        AnimeOriginalCreator,
        {"anime_id": anime_id, "person_id": person_id, "role": ORIGINAL_CREATOR},
    )


def adaptations(response: TextResponse, kind: str) -> list[tuple[int, str | None, str | None, str]]:
    """(id, title, type, URL) of each "Adaptation" relation to a `kind` page: the manga an anime
    adapts, or the anime adapted from a manga; relation tiles and table rows alike."""
    found: list[tuple[int, str | None, str | None, str]] = []
    for entry in response.css("div.related-entries div.entry"):
        relation = text_of(entry.css(".relation")) or ""
        if not relation.lower().startswith("adaptation"):
            continue
        for anchor in entry.css(".title a"):
            entity_id = link_id(anchor.attrib.get("href"), kind)
            if entity_id is not None:
                href = canonical(anchor.attrib["href"])
                found.append((entity_id, text_of(anchor), strip_label(relation), href))
    for row in response.xpath("//tr[td[1][starts-with(normalize-space(.), 'Adaptation')]]"):
        for anchor in row.xpath(f"./td[2]//a[contains(@href, '/{kind}/')]"):
            entity_id = link_id(anchor.attrib.get("href"), kind)
            if entity_id is None:
                continue
            after = clean_text(anchor.xpath("following-sibling::text()[1]").get()) or ""
            label = strip_label(after) if after.startswith("(") else None
            found.append((entity_id, text_of(anchor), label, canonical(anchor.attrib["href"])))
    return found


def unique(values: Iterable[str]) -> list[str]:
    """Values in first-seen order without repeats."""
    return list(dict.fromkeys(values))
