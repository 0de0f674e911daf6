"""A person page: the person, the characters they voiced, and their anime staff positions."""

from __future__ import annotations

import re

from parsel import Selector
from scrapy.http import TextResponse

from scrapy_crawler.items import Record
from scrapy_crawler.loaders import (
    AnimeLoader,
    AnimeOriginalCreatorLoader,
    AnimeVoiceActorLoader,
    CharacterLoader,
    PersonLoader,
    clean_text,
)
from scrapy_crawler.parsers.anime import ORIGINAL_CREATOR
from scrapy_crawler.parsers.common import Parsed, load, text_of, unique
from scrapy_crawler.urls import canonical, link_id, page_subject

_SEASON_INFO = re.compile(r"(?i)^(winter|spring|summer|fall)\s+\d{4}$")


def parse_person(response: TextResponse) -> Parsed:
    """Voice-acting rows yield anime, character and voice-actor rows (language not stated)."""
    parsed = Parsed()
    subject = page_subject(response.url)
    if subject is None or subject[0] != "person":
        return parsed
    person_id = subject[1]
    name = text_of(response.css("h1.title-name strong")) or text_of(response.css("h1"))
    parsed.items.append(load(PersonLoader, {"person_id": person_id, "name": name}))

    for row in response.css("tr.js-people-character"):
        found = _anime_cell(row, staff=False)
        if found is None:
            continue
        anime_id, anime, href = found
        parsed.items.append(anime)
        parsed.anime_links.append(href)
        # Two cells link the character: its name and role, then its picture.
        character_cell = row.xpath("./td[.//a[contains(@href, '/character/')]][1]")
        character_link = character_cell.xpath(
            ".//a[contains(@href, '/character/')][normalize-space()]"
        )
        character_id = link_id(character_link.attrib.get("href"), "character")
        if character_id is None:
            continue
        texts = [clean_text(t) for t in character_cell.xpath(".//text()").getall()]
        role = next((t for t in texts if t in ("Main", "Supporting")), None)
        parsed.items.append(
            load(CharacterLoader, {"character_id": character_id, "name": text_of(character_link)})
        )
        parsed.items.append(
            load(
                AnimeVoiceActorLoader,
                {
                    "anime_id": anime_id,
                    "character_id": character_id,
                    "character_role": role,
                    "person_id": person_id,
                },
            )
        )

    for row in response.css("tr.js-people-staff"):
        found = _anime_cell(row, staff=True)
        if found is None:
            continue
        anime_id, anime, href = found
        parsed.items.append(anime)
        parsed.anime_links.append(href)
        positions = text_of(row.css("td div.spaceit_pad > small")) or ""
        if ORIGINAL_CREATOR in [p.strip() for p in positions.split(",")]:
            parsed.items.append(
                load(
                    AnimeOriginalCreatorLoader,
                    {
                        "anime_id": anime_id,
                        "person_id": person_id,
                        "role": ORIGINAL_CREATOR,
                    },
                )
            )
    parsed.anime_links = unique(parsed.anime_links)
    return parsed


def _anime_cell(row: Selector, *, staff: bool) -> tuple[int, Record, str] | None:
    """The anime of a role row: title link, status, "TV, Spring 2010", score and members."""
    anchor = row.css("a.js-people-title")
    if not anchor:
        anchor = row.xpath(".//a[contains(@href, '/anime/')][normalize-space()][1]")
    href = anchor.attrib.get("href")
    anime_id = link_id(href, "anime")
    if anime_id is None or href is None:
        return None
    info = [p.strip() for p in (text_of(row.css("div.anime-info-text")) or "").split(",")]
    when = info[1] if len(info) > 1 and _SEASON_INFO.match(info[1]) else None
    # In a staff row the small print under the title is the position, not the status.
    status = None if staff else text_of(row.xpath(".//div[contains(@class, 'spaceit_pad')]/small"))
    anime = load(
        AnimeLoader,
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
    return anime_id, anime, canonical(href)
