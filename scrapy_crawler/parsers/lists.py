"""List pages: the top-anime ranking, a season's cards and a studio's (producer's) anime."""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urljoin, urlsplit

from parsel import Selector
from scrapy.http import TextResponse

from scrapy_crawler.items import Anime, AnimeCompany, AnimeGenre, Company, Genre, Record
from scrapy_crawler.loaders import clean_text, load
from scrapy_crawler.parsers.common import (
    Parsed,
    anime_link,
    company_records,
    genre_records,
    links,
    subject_id,
    text_of,
    unique,
)
from scrapy_crawler.urls import canonical, season_of_url

# The numeric media type in a studio page's card classes (`js-anime-type-3`), as MAL numbers them.
MEDIA_TYPES = {
    "1": "TV",
    "2": "OVA",
    "3": "Movie",
    "4": "Special",
    "5": "ONA",
    "6": "Music",
    "7": "CM",
    "8": "PV",
    "9": "TV Special",
}
# The section titles of a season's genre filter.
_FILTER_KINDS = {
    "genres": "genre",
    "explicit genres": "explicit_genre",
    "themes": "theme",
    "demographics": "demographic",
}
_CARD_GENRE_KINDS = {"theme": "theme", "themes": "theme"}
_CARD_GENRE_KINDS |= {"demographic": "demographic", "demographics": "demographic"}
_TOP_TYPE = re.compile(r"^(?P<type>.+?)\s*\((?P<episodes>[^)]*?)\s*eps?\)$")


def parse_top(response: TextResponse) -> Parsed:
    """A top-anime page: 50 ranked rows and the link to the next 50."""
    parsed = Parsed()
    # The rank column is MAL's rank only on the overall ranking, not on ?type=airing & co.
    has_rank = "type" not in parse_qs(urlsplit(response.url).query)
    for row in response.css("tr.ranking-list"):
        anchor = row.css("h3 a, .title a.hoverinfo_trigger")
        link = anime_link(anchor)
        if link is None:
            continue
        anime_id, href = link
        lines = [
            line
            for line in (clean_text(t) for t in row.css("div.information ::text").getall())
            if line
        ]
        kind = episodes = None
        if lines and (match := _TOP_TYPE.match(lines[0])):
            kind, episodes = match.group("type"), match.group("episodes")
        dates = lines[1].split(" - ", 1) if len(lines) > 1 else []
        members = next((line for line in lines if line.lower().endswith("members")), None)
        parsed.items.append(
            load(
                Anime,
                {
                    "anime_id": anime_id,
                    "title": text_of(row.css("h3 a")) or anchor.attrib.get("title"),
                    "type": kind,
                    "episodes": episodes,
                    "aired_from": dates[0] if dates else None,
                    "aired_to": dates[1] if len(dates) > 1 else None,
                    "members": members,
                    "score": text_of(row.css("td.score .score-label, td.score span.text")),
                    "rank": text_of(row.css("td.rank span")) if has_rank else None,
                },
            )
        )
        parsed.anime_links.append(href)
    for href in response.css("a.next::attr(href), link[rel=next]::attr(href)").getall():
        parsed.next_pages.append(canonical(urljoin(response.url, href)))
    parsed.anime_links = unique(parsed.anime_links)
    parsed.next_pages = unique(parsed.next_pages)
    return parsed


def parse_season(response: TextResponse) -> Parsed:
    """A season's page: the genre catalogue (with kinds) and one card per anime."""
    parsed = Parsed()
    parsed.items.extend(genre_catalogue(response))
    season = season_of_url(response.url)
    for section in response.css("div.seasonal-anime-list"):
        header = clean_text(section.css("div.anime-header::text").get()) or ""
        kind = clean_text(re.sub(r"\(.*?\)", "", header))
        # Continuing series started in an earlier season: this page is not their season.
        new_this_season = "continuing" not in header.lower()
        for card in section.css("div.seasonal-anime"):
            records, href = _season_card(card, kind, season if new_this_season else None)
            parsed.items.extend(records)
            if href:
                parsed.anime_links.append(href)
    parsed.anime_links = unique(parsed.anime_links)
    return parsed


def genre_catalogue(response: TextResponse) -> list[Record]:
    """Every genre, explicit genre, theme and demographic from the season page's filter."""
    records: list[Record] = []
    kind: str | None = None
    for node in response.xpath(
        "//ul[@id='genres']/*[self::div or self::li[contains(@class, 'js-btn-sort-order')]]"
    ):
        if node.root.tag == "div":
            kind = _FILTER_KINDS.get((text_of(node) or "").lower())
            continue
        genre_id = node.attrib.get("id", "")
        if kind and genre_id.isdigit():
            records.append(load(Genre, {"genre_id": genre_id, "name": text_of(node), "kind": kind}))
    return records


def _season_card(
    card: Selector, kind: str | None, season: tuple[str, int] | None
) -> tuple[list[Record], str | None]:
    anchor = card.css("a.link-title, h2 a, .title a")
    link = anime_link(anchor)
    if link is None:
        return [], None
    anime_id, href = link
    info = card.css("div.prodsrc div.info")
    info_items = info.xpath("./span[contains(@class, 'item')]")
    detail_texts = [clean_text(t) for t in info.css("span.item span::text").getall()]
    episodes = next((t for t in detail_texts if t and re.search(r"\beps?\b", t)), None)
    duration = next((t for t in detail_texts if t and "min" in t), None)
    properties: dict[str, Selector] = {}
    for prop in card.css("div.properties div.property"):
        caption = (clean_text(prop.css("span.caption::text").get()) or "").lower()
        properties.setdefault(caption, prop)
    source = properties.get("source")
    records: list[Record] = [
        load(
            Anime,
            {
                "anime_id": anime_id,
                "title": [text_of(anchor), card.css("span.js-title::text").get()],
                "type": kind,
                "episodes": episodes,
                "aired_from": text_of(info_items[0]) if info_items else None,
                "season": season[0] if season else None,
                "season_year": season[1] if season else None,
                "source": text_of(source.css("span.item")) if source else None,
                "duration_minutes": duration,
                "score": [
                    text_of(card.css(".scormem-item.score")),
                    card.css("span.js-score::text").get(),
                ],
                "members": card.css("span.js-members::text").get(),
            },
        )
    ]
    for caption in ("studio", "studios"):
        for company_id, name, _ in links(properties.get(caption), "company"):
            records.extend(company_records(anime_id, company_id, name, "studio"))
    genre_rows: list[tuple[int, str | None, str]] = []
    for span in card.css(".genres-inner span.genre"):
        explicit = "explicit" in span.attrib.get("class", "").split()
        for genre_id, name, _ in links(span, "genre"):
            genre_rows.append((genre_id, name, "explicit_genre" if explicit else "genre"))
    for caption, genre_kind in _CARD_GENRE_KINDS.items():
        for genre_id, name, _ in links(properties.get(caption), "genre"):
            genre_rows.append((genre_id, name, genre_kind))
    for genre_id, name, genre_kind in genre_rows:
        records.extend(genre_records(anime_id, genre_id, name, genre_kind))
    return records, href


def parse_studio(response: TextResponse) -> Parsed:
    """A studio/producer/licensor page: the company and its anime with the company's role."""
    parsed = Parsed()
    company_id = subject_id(response, "company")
    if company_id is None:
        return parsed
    parsed.items.append(
        load(
            Company,
            {"company_id": company_id, "name": text_of(response.css("h1.title-name"))},
        )
    )
    for card in response.css("div.js-seasonal-anime"):
        anchor = card.css("div.title a, a.link-title")
        link = anime_link(anchor)
        if link is None:
            continue
        anime_id, href = link
        classes = card.attrib.get("class", "").split()
        role = next(
            (
                c.removeprefix("js-anime-category-")
                for c in classes
                if c.startswith("js-anime-category-")
            ),
            (text_of(card.css("div.category")) or "").lower() or None,
        )
        media = next(
            (
                MEDIA_TYPES[c[len("js-anime-type-") :]]
                for c in classes
                if c.startswith("js-anime-type-") and c[len("js-anime-type-") :] in MEDIA_TYPES
            ),
            None,
        )
        parsed.items.append(
            load(
                Anime,
                {
                    "anime_id": anime_id,
                    "title": [text_of(anchor), card.css("span.js-title::text").get()],
                    "type": media,
                    "aired_from": card.css("span.js-start_date::text").get(),
                    "score": [
                        card.css("span.js-score::text").get(),
                        text_of(card.css("div.stars")),
                    ],
                    "members": [
                        card.css("span.js-members::text").get(),
                        text_of(card.css("div.users")),
                    ],
                },
            )
        )
        parsed.items.append(
            load(AnimeCompany, {"anime_id": anime_id, "company_id": company_id, "role": role})
        )
        for genre_id in re.findall(r"\d+", card.attrib.get("data-genre", "")):
            parsed.items.append(load(AnimeGenre, {"anime_id": anime_id, "genre_id": genre_id}))
        parsed.anime_links.append(href)
    parsed.anime_links = unique(parsed.anime_links)
    return parsed
