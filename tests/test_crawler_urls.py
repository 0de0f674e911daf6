"""URL rules: the replay file name of a URL, page types, ids inside links, seasons."""

from __future__ import annotations

from datetime import date

import pytest

from scrapy_crawler.urls import (
    PageType,
    anime_url,
    canonical,
    characters_url,
    default_start_urls,
    link_id,
    page_subject,
    page_type,
    season_of_date,
    season_of_url,
    url_to_filename,
)

MAL = "https://myanimelist.net"


@pytest.mark.parametrize(
    ("url", "name"),
    [
        # The four examples of the contract.
        (f"{MAL}/anime/6/Trigun", "anime_6_Trigun.html"),
        (f"{MAL}/topanime.php", "topanime.html"),
        (f"{MAL}/anime/season/2018/spring", "anime_season_2018_spring.html"),
        (f"{MAL}/topanime.php?limit=50", "topanime_limit_50.html"),
        # More: characters, producers, people, query strings, runs of other characters.
        (f"{MAL}/anime/35073/Overlord_II/characters", "anime_35073_Overlord_II_characters.html"),
        (f"{MAL}/anime/producer/1/Studio_Pierrot", "anime_producer_1_Studio_Pierrot.html"),
        (f"{MAL}/people/99/Miyuki_Sawashiro", "people_99_Miyuki_Sawashiro.html"),
        (f"{MAL}/topanime.php?type=airing&limit=50", "topanime_type_airing_limit_50.html"),
        (f"{MAL}/anime/4106/Trigun__Badlands_Rumble", "anime_4106_Trigun__Badlands_Rumble.html"),
        (f"{MAL}/anime/6/Trigun/", "anime_6_Trigun.html"),
        (f"{MAL}/anime/6/Trigun#related_entries", "anime_6_Trigun.html"),
        (f"{MAL}/anime.php?id=6", "anime_id_6.html"),
        # `_` is kept and `(` becomes one more `_`: runs are of the *other* characters.
        (f"{MAL}/anime/1/A-Z_(TV)", "anime_1_A-Z__TV.html"),
        # An escaped and an unescaped URL share a file; non-ASCII collapses to `_`.
        (f"{MAL}/people/43693/Dl%C3%A1igelles_Silva", "people_43693_Dl_igelles_Silva.html"),
        (f"{MAL}/people/43693/Dláigelles_Silva", "people_43693_Dl_igelles_Silva.html"),
        (f"{MAL}/", "index.html"),
    ],
)
def test_url_to_filename(url: str, name: str) -> None:
    assert url_to_filename(url) == name


@pytest.mark.parametrize(
    ("url", "kind"),
    [
        (f"{MAL}/topanime.php", PageType.TOP),
        (f"{MAL}/topanime.php?limit=50", PageType.TOP),
        (f"{MAL}/topanime.php?type=tv", PageType.TOP),
        (f"{MAL}/anime/season/2018/spring", PageType.SEASON),
        (f"{MAL}/anime/season", PageType.SEASON),
        (f"{MAL}/anime/producer/1/Studio_Pierrot", PageType.STUDIO),
        (f"{MAL}/anime/producer/1", PageType.STUDIO),
        (f"{MAL}/anime/6/Trigun", PageType.ANIME),
        (f"{MAL}/anime/6", PageType.ANIME),
        (f"{MAL}/anime/6/Trigun/", PageType.ANIME),
        (f"{MAL}/anime/35073/Overlord_II/characters", PageType.CHARACTERS),
        (f"{MAL}/manga/11/Naruto", PageType.MANGA),
        (f"{MAL}/people/99/Miyuki_Sawashiro", PageType.PERSON),
        (f"{MAL}/anime/6/Trigun/reviews", None),
        (f"{MAL}/anime/genre/1/Action", None),
        (f"{MAL}/character/162/Vash_the_Stampede", None),
        (f"{MAL}/robots.txt", None),
        (f"{MAL}/anime/season/2018/autumn", None),
    ],
)
def test_page_type(url: str, kind: PageType | None) -> None:
    assert page_type(url) == kind


@pytest.mark.parametrize(
    ("href", "kind", "expected"),
    [
        ("/anime/producer/11/Madhouse", "company", 11),
        ("/anime/producer/11/Madhouse", "anime", None),
        ("https://myanimelist.net/anime/6/Trigun", "anime", 6),
        ("https://myanimelist.net/anime/6/Trigun/characters", "anime", 6),
        ("/anime/genre/27/Shounen", "genre", 27),
        ("/anime/genre/27/Shounen", "anime", None),
        ("https://myanimelist.net/people/245/Satoshi_Hino", "person", 245),
        ("https://myanimelist.net/character/116281/Momonga", "character", 116281),
        ("https://myanimelist.net/manga/703/Trigun", "manga", 703),
        ("/dbchanges.php?aid=6&t=producers", "company", None),
        (None, "anime", None),
    ],
)
def test_link_id(href: str | None, kind: str, expected: int | None) -> None:
    assert link_id(href, kind) == expected


def test_page_subject() -> None:
    assert page_subject(f"{MAL}/anime/6/Trigun") == ("anime", 6)
    assert page_subject(f"{MAL}/anime/35073/Overlord_II/characters") == ("anime", 35073)
    assert page_subject(f"{MAL}/anime/producer/1/Studio_Pierrot") == ("company", 1)
    assert page_subject(f"{MAL}/manga/11/Naruto") == ("manga", 11)
    assert page_subject(f"{MAL}/people/99/Miyuki_Sawashiro") == ("person", 99)
    assert page_subject(f"{MAL}/anime/season/2018/spring") is None
    assert page_subject(f"{MAL}/topanime.php") is None


@pytest.mark.parametrize(
    ("day", "season"),
    [
        (date(2026, 1, 1), ("winter", 2026)),
        (date(2026, 3, 31), ("winter", 2026)),
        (date(2026, 4, 1), ("spring", 2026)),
        (date(2026, 7, 15), ("summer", 2026)),
        (date(2026, 11, 29), ("fall", 2026)),
        (date(2026, 12, 31), ("fall", 2026)),
    ],
)
def test_season_of_date(day: date, season: tuple[str, int]) -> None:
    assert season_of_date(day) == season


def test_default_start_urls_are_first_top_pages_and_current_season() -> None:
    assert default_start_urls(date(2026, 11, 29)) == [
        f"{MAL}/topanime.php",
        f"{MAL}/topanime.php?limit=50",
        f"{MAL}/anime/season/2026/fall",
    ]


def test_season_of_url() -> None:
    assert season_of_url(f"{MAL}/anime/season/2018/spring") == ("spring", 2018)
    assert season_of_url(f"{MAL}/anime/season") is None


def test_characters_and_detail_urls() -> None:
    assert characters_url(f"{MAL}/anime/6/Trigun") == f"{MAL}/anime/6/Trigun/characters"
    assert characters_url("/anime/6/Trigun/") == f"{MAL}/anime/6/Trigun/characters"
    assert anime_url(f"{MAL}/anime/6/Trigun/characters") == f"{MAL}/anime/6/Trigun"


def test_canonical() -> None:
    assert canonical("/anime/6/Trigun#related_entries") == f"{MAL}/anime/6/Trigun"
    assert canonical(f"{MAL}/topanime.php?limit=50") == f"{MAL}/topanime.php?limit=50"
