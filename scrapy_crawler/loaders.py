"""Cleaning rules for MyAnimeList text, and the one ItemLoader that applies them.

Every value passes `clean_text` first: entities decoded, whitespace collapsed, and the page's
ways of saying "unknown" ("N/A", "Unknown", "None found, add some", "?") turned into nothing,
so an unknown value becomes an empty cell. Which further rule a field takes (`to_int`,
`parse_date`, ...) is said once, on the item's field (scrapy_crawler/items.py), where the
loader finds it. A value that cannot be parsed is kept as text: the validation pipeline then
drops the record with a `bad_type` reason instead of guessing.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable, Mapping
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any, TypeVar

from itemloaders.processors import MapCompose, TakeFirst
from scrapy.loader import ItemLoader

from animedb.vocabulary import SEASONS

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
_SEASON_YEAR = re.compile(rf"(?i)(?:(?:{'|'.join(SEASONS)})\s+)?(\d{{4}})")
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
    return word if word in SEASONS else None


def to_year(value: str) -> int | str | None:
    """ "Spring 1998" or "1998" → 1998; other text stays text (and fails validation)."""
    match = _SEASON_YEAR.fullmatch(value.strip())
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


def cleaned(function: Callable[[str], Any]) -> MapCompose:
    """The input processor of a field: `clean_text`, then `function` on what is left."""
    return MapCompose(clean_text, function)


class RecordLoader(ItemLoader):
    """The loader of every item class: text cleaned and one value kept, unless the item's field
    names another input processor in its metadata (itemloaders looks there)."""

    default_input_processor = MapCompose(clean_text)
    default_output_processor = TakeFirst()

    def __init__(self, item_class: type) -> None:
        self.default_item_class = item_class  # an empty item, not one with initial values
        super().__init__()


T = TypeVar("T")


def load(item_class: type[T], values: Mapping[str, Any]) -> T:
    """Build an item through the loader, so every value passes its field's processors.

    A value may be a list of candidates: the first one that survives cleaning is kept.
    """
    loader = RecordLoader(item_class)
    for name, value in values.items():
        if value is not None:
            loader.add_value(name, value)
    item: T = loader.load_item()
    return item
