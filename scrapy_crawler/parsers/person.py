"""A person page: the person, the characters they voiced, and their anime staff positions."""

from __future__ import annotations

import re

from parsel import Selector
from scrapy.http import TextResponse

from animedb.vocabulary import SEASONS
from scrapy_crawler.items import Anime, Character, Person
from scrapy_crawler.loaders import load
from scrapy_crawler.parsers.common import (
    Parsed,
    anime_link,
    character_role,
    original_creator_record,
    subject_id,
    text_of,
    unique,
    voice_actor_record,
)
from scrapy_crawler.urls import link_id

_SEASON_INFO = re.compile(rf"(?i)^({'|'.join(SEASONS)})\s+\d{{4}}$")


def parse_person(response: TextResponse) -> Parsed:
    """Voice-acting rows yield anime, character and voice-actor rows (language not stated)."""
    parsed = Parsed()
    person_id = subject_id(response, "person")
    if person_id is None:
        return parsed
    name = text_of(response.css("h1.title-name strong")) or text_of(response.css("h1"))
    parsed.items.append(load(Person, {"person_id": person_id, "name": name}))

    for row in response.css("tr.js-people-character"):
        anime_id = _add_anime(parsed, row, staff=False)
        if anime_id is None:
            continue
        # Two cells link the character: its name and role, then its picture.
        character_cell = row.xpath("./td[.//a[contains(@href, '/character/')]][1]")
        character_link = character_cell.xpath(
            ".//a[contains(@href, '/character/')][normalize-space()]"
        )
        character_id = link_id(character_link.attrib.get("href"), "character")
        if character_id is None:
            continue
        role = character_role(character_cell)
        parsed.items.append(
            load(Character, {"character_id": character_id, "name": text_of(character_link)})
        )
        parsed.items.append(voice_actor_record(anime_id, character_id, role, person_id, None))

    for row in response.css("tr.js-people-staff"):
        anime_id = _add_anime(parsed, row, staff=True)
        if anime_id is None:
            continue
        credit = original_creator_record(
            anime_id, person_id, text_of(row.css("td div.spaceit_pad > small"))
        )
        if credit is not None:
            parsed.items.append(credit)
    parsed.anime_links = unique(parsed.anime_links)
    return parsed


def _add_anime(parsed: Parsed, row: Selector, *, staff: bool) -> int | None:
    """The anime of a role row (title link, status, "TV, Spring 2010", score and members) added
    to `parsed` as a record and a link; its id, or None when the row links no anime."""
    anchor = row.css("a.js-people-title")
    if not anchor:
        anchor = row.xpath(".//a[contains(@href, '/anime/')][normalize-space()][1]")
    link = anime_link(anchor)
    if link is None:
        return None
    anime_id, href = link
    info = [p.strip() for p in (text_of(row.css("div.anime-info-text")) or "").split(",")]
    when = info[1] if len(info) > 1 and _SEASON_INFO.match(info[1]) else None
    # In a staff row the small print under the title is the position, not the status.
    status = None if staff else text_of(row.xpath(".//div[contains(@class, 'spaceit_pad')]/small"))
    anime = load(
        Anime,
        {
            "anime_id": anime_id,
            "title": text_of(anchor),
            "type": info[0] or None,
            "status": status,
            "season": when,
            "season_year": when,
            "score": text_of(row.css("small.total-score")),
            "members": text_of(row.css(".series-total-members")),
        },
    )
    parsed.items.append(anime)
    parsed.anime_links.append(href)
    return anime_id
