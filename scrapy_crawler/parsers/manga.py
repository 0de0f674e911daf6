"""A manga page: the manga, its authors with their roles, and the anime adapted from it."""

from __future__ import annotations

from scrapy.http import TextResponse

from scrapy_crawler.items import Anime, AnimeAdaptation, Manga, MangaAuthor, Person
from scrapy_crawler.loaders import clean_text, load, strip_label
from scrapy_crawler.parsers.common import (
    Parsed,
    adaptations,
    label_rows,
    row_text,
    subject_id,
    text_of,
)
from scrapy_crawler.urls import link_id


def parse_manga(response: TextResponse) -> Parsed:
    """Authors read "Kishimoto, Masashi (Story & Art)"; each link is followed by its role."""
    parsed = Parsed()
    manga_id = subject_id(response, "manga")
    if manga_id is None:
        return parsed
    rows = label_rows(response)
    parsed.items.append(
        load(
            Manga,
            {
                "manga_id": manga_id,
                "title": [
                    response.css("span.h1-title span[itemprop=name]::text").get(),
                    response.css("h1 span[itemprop=name]::text").get(),
                    text_of(response.css("h1.title-name strong")),
                ],
                "type": row_text(rows.get("type")),
            },
        )
    )
    authors = rows.get("author")
    for anchor in authors.xpath(".//a[contains(@href, '/people/')]") if authors else []:
        person_id = link_id(anchor.attrib.get("href"), "person")
        if person_id is None:
            continue
        after = clean_text(anchor.xpath("following-sibling::text()[1]").get()) or ""
        role = strip_label(after.split(",")[0]) if after.startswith("(") else None
        parsed.items.append(load(Person, {"person_id": person_id, "name": text_of(anchor)}))
        parsed.items.append(
            load(MangaAuthor, {"manga_id": manga_id, "person_id": person_id, "role": role})
        )
    for anime_id, title, kind, _ in adaptations(response, "anime"):
        parsed.items.append(load(Anime, {"anime_id": anime_id, "title": title, "type": kind}))
        parsed.items.append(load(AnimeAdaptation, {"anime_id": anime_id, "manga_id": manga_id}))
    return parsed
