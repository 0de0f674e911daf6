"""Parse tests on the hand-written pages: every variation real pages show, every broken kind."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

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
from scrapy_crawler.parsers import Parsed, parse_page
from tests.crawler_helpers import MAL, anime, local_response, of, page_response, parse_valid


def parse(url: str) -> Parsed:
    return parse_valid(local_response(url))


def genres(parsed: Parsed) -> set[tuple[int | None, str | None, str | None]]:
    return {(g.genre_id, g.name, g.kind) for g in of(parsed, Genre)}


def companies(parsed: Parsed) -> set[tuple[int | None, int | None, str | None]]:
    return {(c.anime_id, c.company_id, c.role) for c in of(parsed, AnimeCompany)}


def test_singular_labels_and_source_as_a_link() -> None:
    parsed = parse(f"{MAL}/anime/900001/Singular_Labels")
    record = anime(parsed, 900001)
    assert record.source == "Light novel"  # the text of the link
    assert (record.title_english, record.title_japanese) == (
        "Singular Labels: The Series",
        "単数形ラベル",
    )
    assert (record.aired_from, record.aired_to) == (date(2030, 4, 6), date(2030, 6, 22))
    assert (record.score, record.scored_by, record.rank, record.popularity) == (
        Decimal("7.45"),
        4321,
        1234,
        2345,
    )
    assert genres(parsed) == {
        (1, "Action", "genre"),
        (50, "Adult Cast", "theme"),
        (27, "Shounen", "demographic"),
    }
    assert companies(parsed) == {
        (900001, 900301, "studio"),
        (900001, 900310, "producer"),
        (900001, 900311, "licensor"),
    }
    assert [(a.anime_id, a.manga_id) for a in of(parsed, AnimeAdaptation)] == [(900001, 900101)]
    assert [(m.manga_id, m.title, m.type) for m in of(parsed, Manga)] == [
        (900101, "Some Novel", "Light Novel")
    ]
    assert parsed.manga_links == [f"{MAL}/manga/900101/Some_Novel"]
    # The sequel in the relations table is no adaptation.
    assert 900007 not in {a.anime_id for a in of(parsed, Anime)}
    # The cast preview and the staff preview of the detail page.
    assert [
        (v.character_id, v.character_role, v.person_id, v.language)
        for v in of(parsed, AnimeVoiceActor)
    ] == [(900501, "Main", 900601, "Japanese")]
    assert [(c.anime_id, c.person_id, c.role) for c in of(parsed, AnimeOriginalCreator)] == [
        (900001, 900701, "Original Creator")
    ]
    # Only voice actors and creators are people; the director is not.
    assert {p.person_id for p in of(parsed, Person)} == {900601, 900701}


def test_plural_labels_and_unknowns() -> None:
    parsed = parse(f"{MAL}/anime/900002/Plural_Labels")
    record = anime(parsed, 900002)
    assert record.title == 'Kaguya & Friends: "Love" Isn\'t War'
    assert record.title_english == "Kaguya & Friends"  # double-encoded &amp;amp; decoded
    assert record.title_japanese == "かぐや&フレンズ"
    assert record.source == "Original"  # plain text
    assert record.episodes is None  # Unknown
    assert record.status == "Currently Airing"
    assert (record.aired_from, record.aired_to) == (date(2029, 10, 20), None)  # "to ?"
    assert (record.season, record.season_year) == ("fall", 2029)
    assert record.duration_minutes == 115  # 1 hr. 55 min.
    assert record.age_rating == "R - 17+ (violence & profanity)"
    assert (record.score, record.scored_by, record.rank) == (None, None, None)  # N/A
    assert (record.popularity, record.members, record.favorites) == (9876, 1000, 0)
    assert genres(parsed) == {
        (1, "Action", "genre"),
        (2, "Adventure", "genre"),
        (9, "Ecchi", "explicit_genre"),
        (60, "Idols (Female)", "theme"),
        (50, "Adult Cast", "theme"),
        (27, "Shounen", "demographic"),
    }
    # "None found, add some" producers and licensors: no rows, no phantom company.
    assert companies(parsed) == {(900002, 900302, "studio"), (900002, 900303, "studio")}
    assert {(c.company_id, c.name) for c in of(parsed, Company)} == {
        (900302, "Studio Two"),
        (900303, "Studio &Three&"),
    }
    # An adaptation in the relations table rather than a tile.
    assert [(a.anime_id, a.manga_id) for a in of(parsed, AnimeAdaptation)] == [(900002, 900102)]
    assert [(m.manga_id, m.type) for m in of(parsed, Manga)] == [(900102, "Manga")]


def test_missing_sections_and_aired_not_available() -> None:
    parsed = parse(f"{MAL}/anime/900003/Missing_Sections")
    record = anime(parsed, 900003)
    assert record.title == "Shoujo 'Kakumei' Ütena"
    assert (record.type, record.status, record.source) == ("OVA", "Not yet aired", None)
    assert (record.aired_from, record.aired_to, record.season) == (None, None, None)
    assert (record.score, record.members, record.title_english) == (None, None, None)
    assert [type(item) for item in parsed.items] == [Anime]


def test_single_date_and_seconds() -> None:
    record = anime(parse(f"{MAL}/anime/900004/Single_Date"), 900004)
    assert (record.aired_from, record.aired_to) == (date(2009, 4, 5), None)
    assert (record.type, record.episodes, record.duration_minutes) == ("Movie", 1, 1)
    assert (record.age_rating, record.season) == (None, None)


def test_partial_dates_stay_empty() -> None:
    record = anime(parse(f"{MAL}/anime/900005/Partial_Dates"), 900005)
    assert (record.aired_from, record.aired_to) == (None, None)
    assert (record.season, record.season_year, record.duration_minutes) == (None, None, 120)


def test_characters_page_languages_and_creator() -> None:
    url = f"{MAL}/anime/900001/Singular_Labels/characters"
    parsed = parse(url)
    assert [
        (v.character_id, v.character_role, v.person_id, v.language)
        for v in of(parsed, AnimeVoiceActor)
    ] == [
        (900501, "Main", 900601, "Japanese"),
        (900501, "Main", 900602, "German"),
        (900502, "Supporting", 900603, "Spanish"),
        (900502, "Supporting", 900201, "Japanese"),
    ]
    assert {(c.character_id, c.name) for c in of(parsed, Character)} == {
        (900501, "Person, Hero"),
        (900502, "Sidekick & Co."),
    }
    assert [(c.person_id, c.role) for c in of(parsed, AnimeOriginalCreator)] == [
        (900701, "Original Creator")
    ]
    record = anime(parsed, 900001)
    assert (record.members, record.score, record.scored_by) == (124500, Decimal("7.46"), 4330)
    assert parsed.manga_links == []  # relations are followed from the detail page


def test_season_page_cards() -> None:
    parsed = parse(f"{MAL}/anime/season/2030/spring")
    assert genres(parsed) >= {
        (1, "Action", "genre"),
        (9, "Ecchi", "explicit_genre"),
        (60, "Idols (Female)", "theme"),
        (27, "Shounen", "demographic"),
    }
    first = anime(parsed, 900001)
    assert (first.type, first.episodes, first.duration_minutes, first.source) == (
        "TV",
        12,
        24,
        "Light novel",
    )
    assert (first.season, first.season_year, first.aired_from) == ("spring", 2030, date(2030, 4, 6))
    assert (first.score, first.members) == (Decimal("7.41"), 123456)
    second = anime(parsed, 900002)
    assert second.title == 'Kaguya & Friends: "Love" Isn\'t War'
    # "? eps", "0 min", N/A score, "Unknown" source, a partial date: all unknown.
    assert (second.episodes, second.duration_minutes, second.score, second.source) == (
        None,
        None,
        None,
        None,
    )
    assert second.aired_from is None
    continuing = anime(parsed, 900006)
    assert (continuing.season, continuing.season_year) == (None, None)
    assert companies(parsed) == {
        (900001, 900301, "studio"),  # Studio:
        (900002, 900302, "studio"),  # Studios:
        (900002, 900303, "studio"),
    }
    links = {(g.anime_id, g.genre_id) for g in of(parsed, AnimeGenre)}
    assert links == {
        (900001, 1),
        (900001, 50),  # Themes:
        (900001, 27),  # Demographic:
        (900002, 2),
        (900002, 9),  # explicit
        (900002, 60),  # Theme:
        (900006, 1),
        (900006, 27),  # Demographics:
    }
    assert len(parsed.anime_links) == 3


def test_manga_page_authors_and_adaptation() -> None:
    parsed = parse(f"{MAL}/manga/900101/Some_Novel")
    assert [(m.manga_id, m.title, m.type) for m in of(parsed, Manga)] == [
        (900101, "Some Novel", "Light Novel")
    ]
    assert [(a.person_id, a.role) for a in of(parsed, MangaAuthor)] == [
        (900701, "Story"),
        (900703, "Art"),
    ]
    assert [(a.anime_id, a.manga_id) for a in of(parsed, AnimeAdaptation)] == [(900001, 900101)]
    assert (anime(parsed, 900001).type, anime(parsed, 900001).title) == ("TV", "Singular Labels")


def test_person_page_roles_and_creator() -> None:
    parsed = parse(f"{MAL}/people/900201/Some_Person")
    assert {(p.person_id, p.name) for p in of(parsed, Person)} == {(900201, "Person, Some")}
    assert [
        (v.anime_id, v.character_id, v.character_role, v.person_id, v.language)
        for v in of(parsed, AnimeVoiceActor)
    ] == [
        (900001, 900502, "Supporting", 900201, None),
        (900008, 900503, "Main", 900201, None),
    ]
    airing = anime(parsed, 900008)
    assert (airing.status, airing.type, airing.season, airing.season_year) == (
        "Currently Airing",
        "ONA",
        None,
        None,
    )
    spring = anime(parsed, 900001)
    assert (spring.season, spring.season_year, spring.status) == ("spring", 2030, None)
    assert [(c.anime_id, c.person_id, c.role) for c in of(parsed, AnimeOriginalCreator)] == [
        (900009, 900201, "Original Creator")
    ]
    own_story = anime(parsed, 900009)
    assert (own_story.type, own_story.score, own_story.members, own_story.status) == (
        "Movie",
        Decimal("6.66"),
        4567,
        None,  # a staff row's small print is the position, not a status
    )


def test_studio_page_roles_and_types() -> None:
    parsed = parse(f"{MAL}/anime/producer/900301/Some_Studio")
    assert {(c.company_id, c.name) for c in of(parsed, Company)} == {(900301, "Some Studio")}
    assert companies(parsed) == {(900001, 900301, "studio"), (900010, 900301, "licensor")}
    special = anime(parsed, 900010)
    assert (special.type, special.score, special.members, special.aired_from) == (
        "TV Special",
        None,
        12,
        None,
    )
    assert anime(parsed, 900001).aired_from == date(2030, 4, 6)
    assert {(g.anime_id, g.genre_id) for g in of(parsed, AnimeGenre)} == {
        (900001, 1),
        (900001, 50),
        (900001, 27),
    }


def test_top_page_ranks_and_next_link() -> None:
    parsed = parse(f"{MAL}/topanime.php")
    rows = of(parsed, Anime)
    assert [(a.anime_id, a.rank, a.type, a.episodes, a.members) for a in rows] == [
        (900006, 1, "TV", None, 5000100),
        (900004, 2, "Movie", 1, 80),
    ]
    assert [a.aired_from for a in rows] == [None, None]  # month precision only
    assert parsed.next_pages == [f"{MAL}/topanime.php?limit=50"]


@pytest.mark.parametrize(
    ("url", "kind"),
    [
        (f"{MAL}/anime/900901/Empty", "empty"),
        (f"{MAL}/anime/900902/Truncated", "truncated"),
        (f"{MAL}/anime/900904/Not_Found", "error_page"),
    ],
)
def test_broken_pages(url: str, kind: str) -> None:
    parsed = parse_page(local_response(url))
    assert (parsed.broken, parsed.items) == (kind, [])


def test_non_html_content_type_is_broken() -> None:
    url = f"{MAL}/anime/900903/Json"
    parsed = parse_page(local_response(url, content_type="application/json"))
    assert (parsed.broken, parsed.items) == ("not_html", [])


def test_http_error_status_is_broken() -> None:
    url = f"{MAL}/anime/900001/Singular_Labels"
    response = page_response(url, b"<html><head><title>x</title></head></html>", status=503)
    assert parse_page(response).broken == "error_page"


def test_a_page_in_an_unknown_layout_is_reported() -> None:
    body = b"<html><head><title>Anime - MyAnimeList.net</title></head><body>new look</body></html>"
    assert parse_page(page_response(f"{MAL}/people/5/X", body)).broken == "unrecognized"
