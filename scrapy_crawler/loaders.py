"""Cleaning rules for MyAnimeList text, as ItemLoader input/output processors.

Every value passes `clean_text` first: entities decoded, whitespace collapsed, and the page's
ways of saying "unknown" ("N/A", "Unknown", "None found, add some", "?") turned into nothing,
so an unknown value becomes an empty cell. A value that cannot be parsed is kept as text: the
validation pipeline then drops the record with a `bad_type` reason instead of guessing.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from itemloaders.processors import MapCompose, TakeFirst
from scrapy.loader import ItemLoader

from scrapy_crawler.items import (
    Anime,
    AnimeAdaptation,
    AnimeCompany,
    AnimeGenre,
    AnimeOriginalCreator,
    AnimeVoiceActor,
    Character,
    Company,
    Genre,
    Manga,
    MangaAuthor,
    Person,
)

UNKNOWN = frozenset(
    {
        "",
        "?",
        "-",
        "n/a",
        "unknown",
        "none",
        "none found",
        "none found, add some",
        "add some",
        "not available",
        "not yet available",
    }
)
_ENTITY = re.compile(r"&(?:#\d+|#[xX][0-9a-fA-F]+|[A-Za-z][A-Za-z0-9]*);")
_SPACE = re.compile(r"\s+")
_UNIT = re.compile(r"\s*\b(?:eps?|episodes?|users|members)\.?$", re.IGNORECASE)
_MONTHS = {
    m: i
    for i, m in enumerate(
        ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"),
        start=1,
    )
}
_FULL_DATE = re.compile(r"^([A-Za-z]{3})[a-z]*\.?\s+(\d{1,2}),?\s+(\d{4})$")
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)\s*(hr|h|min|m|sec|s)\b", re.IGNORECASE)


def clean_text(value: Any) -> str | None:
    """Decode leftover entities, collapse whitespace (NBSP included); None for "unknown"."""
    if value is None:
        return None
    text = str(value)
    # MAL double-encodes some names (`&amp;#039;` arrives as the text `&#039;`).
    if "&" in text:
        text = _ENTITY.sub(lambda m: html.unescape(m.group(0)), text)
    text = _SPACE.sub(" ", text.replace("\xa0", " ")).strip()
    return None if text.lower() in UNKNOWN else text


def to_int(value: str) -> int | str | None:
    """ "822,213" → 822213, "#394" → 394, "25 eps" → 25, "? eps" → None; other text stays text."""
    text = _UNIT.sub("", value).strip().lstrip("#").replace(",", "")
    if text.lower() in UNKNOWN:
        return None
    return int(text) if text.isdigit() else value


def to_positive_int(value: str) -> int | str | None:
    """Like `to_int`, but 0 means unknown (seasonal cards print "0 min" and a 0 score count)."""
    number = to_int(value)
    return None if number == 0 else number


def to_decimal(value: str) -> Decimal | str | None:
    """ "8.22" → Decimal("8.22"); the seasonal cards' 0 score means "not scored"."""
    try:
        number = Decimal(value.replace(",", ""))
    except InvalidOperation:
        return value
    return None if number == 0 else number.quantize(Decimal("0.01"))


def parse_date(value: str) -> date | str | None:
    """A full MAL date ("Apr 1, 1998", "Sep  21, 1999", "20180407") as a date.

    A partial date ("2019", "Apr 2019", "Jan 2026 -", or `20180400`) is not a day: it becomes
    unknown rather than an invented first of the month.
    """
    text = _SPACE.sub(" ", value).strip(" -")
    if re.fullmatch(r"\d{8}", text):
        try:
            return datetime.strptime(text, "%Y%m%d").date()
        except ValueError:
            return None  # 00 for an unknown month or day
    match = _FULL_DATE.match(text)
    if match:
        month = _MONTHS.get(match.group(1).lower())
        if month is None:
            return value
        try:
            return date(int(match.group(3)), month, int(match.group(2)))
        except ValueError:
            return value
    if re.fullmatch(r"(?:[A-Za-z]{3,9}\.?\s+)?\d{4}", text) or text.lower() in UNKNOWN:
        return None
    return value


def split_aired(value: str) -> tuple[str | None, str | None]:
    """ "Apr 1, 1998 to Sep 30, 1998" → both ends; "Oct 20, 1999 to ?" → an open end.

    A single date ("Apr 5, 2009") is the start only: MAL gives no end for it.
    """
    parts = re.split(r"\s+to\s+|\s+-\s+", value, maxsplit=1)
    start = clean_text(parts[0])
    end = clean_text(parts[1]) if len(parts) > 1 else None
    return start, end


def to_minutes(value: str) -> int | str | None:
    """ "24 min. per ep." → 24, "1 hr. 55 min." → 115, "30 sec." → 1 (rounded, at least 1)."""
    parts = _DURATION_PART.findall(value)
    if not parts:
        return to_positive_int(value)
    seconds = 0.0
    for amount, unit in parts:
        scale = {"h": 3600, "m": 60, "s": 1}[unit[0].lower()]
        seconds += float(amount) * scale
    if seconds == 0:
        return None
    return max(1, round(seconds / 60))


def to_season(value: str) -> str | None:
    """ "Spring 1998" or "spring" → "spring"; anything else is not a season."""
    word = value.split()[0].lower() if value.split() else ""
    return word if word in ("winter", "spring", "summer", "fall") else None


def to_year(value: str) -> int | str | None:
    """ "Spring 1998" or "1998" → 1998; other text stays text (and fails validation)."""
    match = re.fullmatch(r"(?i)(?:(?:winter|spring|summer|fall)\s+)?(\d{4})", value.strip())
    return int(match.group(1)) if match else value


def to_status(value: str) -> str:
    """List pages abbreviate the status ("Airing"); keep the detail page's words."""
    return {
        "airing": "Currently Airing",
        "currently airing": "Currently Airing",
        "not yet aired": "Not yet aired",
        "finished": "Finished Airing",
        "finished airing": "Finished Airing",
    }.get(value.lower(), value)


def strip_label(value: str) -> str:
    """ "Adaptation (Manga)" → "Manga"; "(Story & Art)" → "Story & Art"."""
    match = re.search(r"\(([^()]*)\)\s*$", value)
    return match.group(1).strip() if match else value.strip()


def _pipe(*functions: Callable[[Any], Any]) -> MapCompose:
    return MapCompose(clean_text, *functions)


class RecordLoader(ItemLoader):
    """Text cleaned by default, one value per field."""

    default_input_processor = _pipe()
    default_output_processor = TakeFirst()


ID = _pipe(to_int)
COUNT = _pipe(to_int)
POSITIVE = _pipe(to_positive_int)


class AnimeLoader(RecordLoader):
    default_item_class = Anime
    anime_id_in = ID
    episodes_in = POSITIVE
    aired_from_in = _pipe(parse_date)
    aired_to_in = _pipe(parse_date)
    season_in = _pipe(to_season)
    season_year_in = _pipe(to_year)
    status_in = _pipe(to_status)
    duration_minutes_in = _pipe(to_minutes)
    score_in = _pipe(to_decimal)
    scored_by_in = COUNT
    rank_in = POSITIVE
    popularity_in = POSITIVE
    members_in = COUNT
    favorites_in = COUNT


class GenreLoader(RecordLoader):
    default_item_class = Genre
    genre_id_in = ID


class AnimeGenreLoader(RecordLoader):
    default_item_class = AnimeGenre
    anime_id_in = ID
    genre_id_in = ID


class CompanyLoader(RecordLoader):
    default_item_class = Company
    company_id_in = ID


class AnimeCompanyLoader(RecordLoader):
    default_item_class = AnimeCompany
    anime_id_in = ID
    company_id_in = ID


class PersonLoader(RecordLoader):
    default_item_class = Person
    person_id_in = ID


class CharacterLoader(RecordLoader):
    default_item_class = Character
    character_id_in = ID


class AnimeVoiceActorLoader(RecordLoader):
    default_item_class = AnimeVoiceActor
    anime_id_in = ID
    character_id_in = ID
    person_id_in = ID


class AnimeOriginalCreatorLoader(RecordLoader):
    default_item_class = AnimeOriginalCreator
    anime_id_in = ID
    person_id_in = ID


class MangaLoader(RecordLoader):
    default_item_class = Manga
    manga_id_in = ID
    type_in = _pipe(strip_label)


class MangaAuthorLoader(RecordLoader):
    default_item_class = MangaAuthor
    manga_id_in = ID
    person_id_in = ID
    role_in = _pipe(strip_label)


class AnimeAdaptationLoader(RecordLoader):
    default_item_class = AnimeAdaptation
    anime_id_in = ID
    manga_id_in = ID
