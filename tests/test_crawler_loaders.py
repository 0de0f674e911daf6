"""Cleaning rules: unknown markers, entities, numbers, dates, durations, seasons."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from scrapy_crawler.items import Anime
from scrapy_crawler.loaders import (
    clean_text,
    load,
    parse_date,
    split_aired,
    strip_label,
    to_decimal,
    to_int,
    to_minutes,
    to_season,
    to_status,
    to_year,
)


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("  Trigun \n ", "Trigun"),
        ("Main\xa0", "Main"),
        ("Kaguya  &amp;   Friends", "Kaguya & Friends"),
        ("Isn&#039;t", "Isn't"),
        ("Q&A", "Q&A"),
        ("オーバーロードⅡ", "オーバーロードⅡ"),
        ("N/A", None),
        ("Unknown", None),
        ("None found, add some", None),
        ("?", None),
        ("", None),
        ("Not available", None),
        (None, None),
        ("Not yet aired", "Not yet aired"),
    ],
)
def test_clean_text(raw: str | None, clean: str | None) -> None:
    assert clean_text(raw) == clean


@pytest.mark.parametrize(
    ("raw", "value"),
    [
        ("822,213", 822213),
        ("#394", 394),
        ("25 eps", 25),
        ("1 ep", 1),
        ("? eps", None),
        ("5,000,100 members", 5000100),
        ("12a", "12a"),
    ],
)
def test_to_int(raw: str, value: int | str | None) -> None:
    assert to_int(raw) == value


def test_to_decimal() -> None:
    assert to_decimal("8.22") == Decimal("8.22")
    assert to_decimal("7.6") == Decimal("7.60")
    assert to_decimal("0") is None  # a seasonal card's "not scored"
    assert to_decimal("high") == "high"


@pytest.mark.parametrize(
    ("raw", "value"),
    [
        ("Apr 1, 1998", date(1998, 4, 1)),
        ("Sep  21, 1999", date(1999, 9, 21)),
        ("Apr 5, 2009", date(2009, 4, 5)),
        ("20180407", date(2018, 4, 7)),
        ("20180400", None),
        ("2019", None),
        ("Apr 2019", None),
        ("Jan 2026 -", None),
        ("Feb 30, 2020", "Feb 30, 2020"),
        ("someday", "someday"),
    ],
)
def test_parse_date(raw: str, value: date | str | None) -> None:
    assert parse_date(raw) == value


@pytest.mark.parametrize(
    ("raw", "ends"),
    [
        ("Apr 1, 1998 to Sep 30, 1998", ("Apr 1, 1998", "Sep 30, 1998")),
        ("Oct 20, 1999 to ?", ("Oct 20, 1999", None)),
        ("Apr 5, 2009", ("Apr 5, 2009", None)),
        ("Not available", (None, None)),
        ("Sep 2023 - Mar 2024", ("Sep 2023", "Mar 2024")),
    ],
)
def test_split_aired(raw: str, ends: tuple[str | None, str | None]) -> None:
    assert split_aired(raw) == ends


@pytest.mark.parametrize(
    ("raw", "minutes"),
    [
        ("24 min. per ep.", 24),
        ("1 hr. 55 min.", 115),
        ("2 hr.", 120),
        ("23 min", 23),
        ("45 sec.", 1),
        ("1 min. 40 sec. per ep.", 2),
        ("0 min", None),
        ("Unknown", None),
        ("a while", "a while"),  # kept as text: validation drops it as a bad type
    ],
)
def test_to_minutes(raw: str, minutes: int | str | None) -> None:
    assert to_minutes(raw) == minutes


def test_seasons_statuses_and_labels() -> None:
    assert to_season("Spring 1998") == "spring"
    assert to_season("1998") is None
    assert to_year("Spring 1998") == 1998
    assert to_year("1998") == 1998
    assert to_status("Airing") == "Currently Airing"
    assert to_status("Not Yet Aired") == "Not yet aired"
    assert to_status("Finished Airing") == "Finished Airing"
    assert strip_label("Adaptation (Light Novel)") == "Light Novel"
    assert strip_label("(Story & Art)") == "Story & Art"


def test_the_loader_applies_the_rules_the_item_declares() -> None:
    values = {
        "anime_id": "6",
        "title": " Trigun ",
        "episodes": "Unknown",
        "score": ["N/A", "8.22"],
        "members": "822,213",
        "aired_from": "Apr 1, 1998",
        "season": "Spring 1998",
        "season_year": "Spring 1998",
        "duration_minutes": "24 min. per ep.",
        "rank": "#394",
        "status": "Airing",
    }
    assert load(Anime, values) == Anime(
        anime_id=6,
        title="Trigun",
        score=Decimal("8.22"),
        members=822213,
        aired_from=date(1998, 4, 1),
        season="spring",
        season_year=1998,
        duration_minutes=24,
        rank=394,
        status="Currently Airing",
    )
