"""An anime's own pages: the detail page and the characters & staff page (same sidebar)."""

from __future__ import annotations

import re

from parsel import Selector
from scrapy.http import TextResponse

from scrapy_crawler.items import Anime, AnimeAdaptation, Character, Manga, Person, Record
from scrapy_crawler.loaders import clean_text, load, split_aired
from scrapy_crawler.parsers.common import (
    Parsed,
    adaptations,
    character_role,
    company_records,
    genre_records,
    label_rows,
    links,
    original_creator_record,
    row_text,
    subject_id,
    text_of,
    unique,
    voice_actor_record,
)
from scrapy_crawler.urls import link_id

GENRE_LABELS = {
    "genre": "genre",
    "explicit genre": "explicit_genre",
    "theme": "theme",
    "demographic": "demographic",
}
COMPANY_LABELS = {"studio": "studio", "producer": "producer", "licensor": "licensor"}

_CHARACTER_BLOCKS = (
    "//table[.//a[contains(@href, '/character/')]"
    " and not(.//table[.//a[contains(@href, '/character/')]])]"
)


def parse_anime(response: TextResponse) -> Parsed:
    """An anime detail page: the anime, its genres, companies, cast preview and adaptations."""
    parsed = parse_characters(response)
    anime_id = parsed_anime_id(response)
    if anime_id is None:
        return parsed
    for manga_id, title, kind, href in adaptations(response, "manga"):
        parsed.items.append(load(Manga, {"manga_id": manga_id, "title": title, "type": kind}))
        parsed.items.append(load(AnimeAdaptation, {"anime_id": anime_id, "manga_id": manga_id}))
        parsed.manga_links.append(href)
    parsed.manga_links = unique(parsed.manga_links)
    return parsed


def parse_characters(response: TextResponse) -> Parsed:
    """A characters & staff page: the sidebar's anime, voice actors per language, creators."""
    parsed = Parsed()
    anime_id = parsed_anime_id(response)
    if anime_id is None:
        return parsed
    parsed.items.extend(sidebar_records(response, anime_id))
    parsed.items.extend(cast_records(response, anime_id))
    parsed.items.extend(staff_records(response, anime_id))
    return parsed


def parsed_anime_id(response: TextResponse) -> int | None:
    """The anime a page is about: from its URL, else from the page's hidden list-form field."""
    anime_id = subject_id(response, "anime")
    if anime_id is not None:
        return anime_id
    value = clean_text(response.css("input#myinfo_anime_id::attr(value)").get())
    return int(value) if value and value.isdigit() else None


def sidebar_records(response: TextResponse, anime_id: int) -> list[Record]:
    """The anime record and its genre/company rows from the left-hand information column."""
    rows = label_rows(response)
    aired_from, aired_to = split_aired(row_text(rows.get("aired")) or "")
    premiered = row_text(rows.get("premiered"))
    score_row = rows.get("score")
    scored_by = re.search(r"scored by\s+([\d,]+)", text_of(score_row) or "")
    anime = load(
        Anime,
        {
            "anime_id": anime_id,
            "title": [
                response.css("h1.title-name strong::text").get(),
                response.css("h1 span[itemprop=name]::text").get(),
                text_of(response.css("h1.title-name")),
            ],
            "title_english": [
                row_text(rows.get("english")),
                response.css("p.title-english::text").get(),
            ],
            "title_japanese": row_text(rows.get("japanese")),
            "type": row_text(rows.get("type")),
            "episodes": row_text(rows.get("episodes")),
            "status": row_text(rows.get("status")),
            "aired_from": aired_from,
            "aired_to": aired_to,
            "season": premiered,
            "season_year": premiered if premiered and len(premiered.split()) == 2 else None,
            "source": row_text(rows.get("source")),
            "duration_minutes": row_text(rows.get("duration")),
            "age_rating": row_text(rows.get("rating")),
            "score": [
                response.css("[itemprop=ratingValue]::text").get(),
                text_of(score_row.css(".score-label")) if score_row else None,
            ],
            "scored_by": [
                response.css("[itemprop=ratingCount]::text").get(),
                scored_by.group(1) if scored_by else None,
            ],
            "rank": row_text(rows.get("ranked")),
            "popularity": row_text(rows.get("popularity")),
            "members": row_text(rows.get("members")),
            "favorites": row_text(rows.get("favorites")),
        },
    )
    records: list[Record] = [anime]
    for label, kind in GENRE_LABELS.items():
        for genre_id, name, _ in links(rows.get(label), "genre"):
            records.extend(genre_records(anime_id, genre_id, name, kind))
    for label, role in COMPANY_LABELS.items():
        for company_id, name, _ in links(rows.get(label), "company"):
            records.extend(company_records(anime_id, company_id, name, role))
    return records


def cast_records(response: TextResponse, anime_id: int) -> list[Record]:
    """Characters with their role and each voice actor with the dub language.

    Serves the characters page (every language) and the detail page's preview (Japanese).
    """
    records: list[Record] = []
    for block in response.xpath(_CHARACTER_BLOCKS):
        character = _first_named_link(block, "character")
        if character is None:
            continue
        character_id, character_name = character
        role = character_role(block)
        records.append(load(Character, {"character_id": character_id, "name": character_name}))
        for anchor in block.xpath(".//a[contains(@href, '/people/')]"):
            person_id = link_id(anchor.attrib.get("href"), "person")
            name = text_of(anchor)
            if person_id is None or name is None:
                continue  # the picture link next to the name
            cell = anchor.xpath("ancestor::td[1]")
            language = clean_text(
                cell.css(".js-anime-character-language ::text").get()
                or " ".join(cell.xpath(".//small//text()").getall())
            )
            records.append(load(Person, {"person_id": person_id, "name": name}))
            records.append(voice_actor_record(anime_id, character_id, role, person_id, language))
    return records


def staff_records(response: TextResponse, anime_id: int) -> list[Record]:
    """Original creators from the staff list (positions such as "Original Creator, Script")."""
    records: list[Record] = []
    tables = response.xpath(
        "//a[@name='staff']/following::table[.//a[contains(@href, '/people/')]"
        " and .//small and not(.//table)]"
    )
    for table in tables:
        person = _first_named_link(table, "person")
        if person is None:
            continue
        person_id, name = person
        credit = original_creator_record(anime_id, person_id, text_of(table.css("small")))
        if credit is not None:
            records.append(load(Person, {"person_id": person_id, "name": name}))
            records.append(credit)
    return records


def _first_named_link(block: Selector, kind: str) -> tuple[int, str] | None:
    """The first `kind` link in a block that carries a name (not the picture link)."""
    for anchor in block.xpath(".//a[@href]"):
        entity_id = link_id(anchor.attrib["href"], kind)
        name = text_of(anchor)
        if entity_id is not None and name:
            return entity_id, name
    return None
