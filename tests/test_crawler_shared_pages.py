"""Parse tests on the seven real MyAnimeList pages in ../shared/fixtures/myanimelist."""

from __future__ import annotations

from collections import Counter
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
from tests.crawler_helpers import MAL, anime, of, parse_valid, shared_response

pytestmark = pytest.mark.shared


def parse(url: str) -> Parsed:
    return parse_valid(shared_response(url))


def test_trigun_detail_page() -> None:
    parsed = parse(f"{MAL}/anime/6/Trigun")
    trigun = anime(parsed, 6)
    assert (trigun.title, trigun.title_english, trigun.title_japanese) == (
        "Trigun",
        "Trigun",
        "トライガン",
    )
    assert (trigun.type, trigun.episodes, trigun.status) == ("TV", 26, "Finished Airing")
    assert (trigun.aired_from, trigun.aired_to) == (date(1998, 4, 1), date(1998, 9, 30))
    assert (trigun.season, trigun.season_year) == ("spring", 1998)
    assert (trigun.source, trigun.duration_minutes) == ("Manga", 24)
    assert trigun.age_rating == "PG-13 - Teens 13 or older"
    assert (trigun.score, trigun.scored_by) == (Decimal("8.22"), 396690)
    assert (trigun.rank, trigun.popularity) == (394, 264)
    assert (trigun.members, trigun.favorites) == (822213, 17375)
    assert trigun.priority > 100  # its own page

    genres = {(g.genre_id, g.name, g.kind) for g in of(parsed, Genre)}
    assert genres == {
        (1, "Action", "genre"),
        (2, "Adventure", "genre"),
        (24, "Sci-Fi", "genre"),
        (50, "Adult Cast", "theme"),
        (27, "Shounen", "demographic"),
    }
    assert {(r.anime_id, r.genre_id) for r in of(parsed, AnimeGenre)} == {
        (6, 1),
        (6, 2),
        (6, 24),
        (6, 50),
        (6, 27),
    }
    companies = {(c.company_id, c.role) for c in of(parsed, AnimeCompany)}
    assert companies == {(11, "studio"), (102, "licensor"), (123, "producer"), (3172, "producer")}
    names = {c.company_id: c.name for c in of(parsed, Company)}
    assert (names[11], names[102]) == ("Madhouse", "Funimation")

    assert of(parsed, AnimeAdaptation) == [
        AnimeAdaptation(anime_id=6, manga_id=703, priority=9, page_url=f"{MAL}/anime/6/Trigun")
    ]
    manga = of(parsed, Manga)[0]
    assert (manga.manga_id, manga.title, manga.type) == (703, "Trigun", "Manga")
    assert parsed.manga_links == [f"{MAL}/manga/703/Trigun"]

    # The cast preview: Vash with his Japanese voice actor.
    assert (
        AnimeVoiceActor(
            anime_id=6,
            character_id=162,
            character_role="Main",
            person_id=173,
            language="Japanese",
            priority=9,
            page_url=f"{MAL}/anime/6/Trigun",
        )
        in parsed.items
    )


def test_overlord_ii_characters_page() -> None:
    url = f"{MAL}/anime/35073/Overlord_II/characters"
    parsed = parse(url)
    voices = [v for v in of(parsed, AnimeVoiceActor)]
    assert len(voices) == 346
    assert Counter(v.language for v in voices) == {
        "Spanish": 79,
        "Japanese": 59,
        "English": 56,
        "Portuguese (BR)": 55,
        "Italian": 49,
        "French": 34,
        "German": 14,
    }
    momonga = {(v.person_id, v.language) for v in voices if v.character_id == 116281}
    assert {
        (245, "Japanese"),
        (21333, "English"),
        (43693, "Portuguese (BR)"),
        (45750, "French"),
        (45764, "German"),
        (57213, "Spanish"),
        (7728, "Italian"),
    } <= momonga
    assert {v.character_role for v in voices if v.character_id == 116281} == {"Main"}
    assert any(v.character_role == "Supporting" and v.character_id == 116275 for v in voices)
    people = {p.person_id: p.name for p in of(parsed, Person)}
    assert (people[245], people[43693]) == ("Hino, Satoshi", "Silva, Dláigelles")
    characters = {c.character_id: c.name for c in of(parsed, Character)}
    assert characters[116281] == "Momonga"

    assert of(parsed, AnimeOriginalCreator) == [
        AnimeOriginalCreator(
            anime_id=35073, person_id=24221, role="Original Creator", priority=8, page_url=url
        )
    ]
    assert people[24221] == "Maruyama, Kugane"

    # The sidebar of a characters page is the anime's information column.
    overlord = anime(parsed, 35073)
    assert (overlord.title, overlord.type, overlord.episodes) == ("Overlord II", "TV", 13)
    assert (overlord.season, overlord.season_year, overlord.source) == (
        "winter",
        2018,
        "Light novel",
    )
    assert overlord.age_rating == "R - 17+ (violence & profanity)"


def test_naruto_manga_page() -> None:
    parsed = parse(f"{MAL}/manga/11/Naruto")
    manga = of(parsed, Manga)
    assert [(m.manga_id, m.title, m.type) for m in manga] == [(11, "Naruto", "Manga")]
    authors = [(a.manga_id, a.person_id, a.role) for a in of(parsed, MangaAuthor)]
    assert authors == [(11, 1879, "Story & Art")]
    assert (
        Person(
            person_id=1879, name="Kishimoto, Masashi", priority=7, page_url=f"{MAL}/manga/11/Naruto"
        )
        in parsed.items
    )
    adapted = {a.anime_id for a in of(parsed, AnimeAdaptation)}
    assert {20, 1735} <= adapted
    assert anime(parsed, 20).title == "Naruto"


def test_top_anime_page() -> None:
    parsed = parse(f"{MAL}/topanime.php")
    rows = [a for a in of(parsed, Anime)]
    assert len(rows) == 50
    assert [a.rank for a in rows] == list(range(1, 51))
    first = rows[0]
    assert (first.anime_id, first.title, first.type, first.episodes) == (
        59978,
        "Sousou no Frieren 2nd Season",
        "TV",
        10,
    )
    assert (first.score, first.members) == (Decimal("9.32"), 304031)
    fmab = anime(parsed, 5114)
    assert (fmab.title, fmab.rank, fmab.episodes, fmab.score) == (
        "Fullmetal Alchemist: Brotherhood",
        4,
        64,
        Decimal("9.10"),
    )
    assert fmab.aired_from is None  # "Apr 2009 - Jul 2010": month precision only
    assert len(parsed.anime_links) == 50
    assert parsed.next_pages == [f"{MAL}/topanime.php?limit=50"]


def test_top_anime_rank_only_on_the_overall_ranking() -> None:
    response = shared_response(f"{MAL}/topanime.php")
    parsed = parse_page(response.replace(url=f"{MAL}/topanime.php?type=airing"))
    assert {a.rank for a in of(parsed, Anime)} == {None}


def test_season_2018_spring_page() -> None:
    parsed = parse(f"{MAL}/anime/season/2018/spring")
    rows = [a for a in of(parsed, Anime)]
    assert len(rows) == 294
    assert len(parsed.anime_links) == 294
    mha = anime(parsed, 36456)
    assert mha.title == "Boku no Hero Academia 3rd Season"
    assert (mha.type, mha.episodes, mha.duration_minutes) == ("TV", 25, 23)
    assert (mha.members, mha.score, mha.source) == (2349413, Decimal("7.98"), "Manga")
    assert (mha.season, mha.season_year, mha.aired_from) == ("spring", 2018, date(2018, 4, 7))
    assert (36456, 4, "studio") in {
        (c.anime_id, c.company_id, c.role) for c in of(parsed, AnimeCompany)
    }
    genres_of_mha = {g.genre_id for g in of(parsed, AnimeGenre) if g.anime_id == 36456}
    assert genres_of_mha == {1, 23, 31, 27}  # Action; School, Super Power; Shounen
    catalogue = {g.genre_id: (g.name, g.kind) for g in of(parsed, Genre)}
    assert catalogue[23] == ("School", "theme")
    assert catalogue[31] == ("Super Power", "theme")
    assert catalogue[27] == ("Shounen", "demographic")
    assert catalogue[9] == ("Ecchi", "explicit_genre")
    assert len(catalogue) == 78

    ghoul = anime(parsed, 36511)
    assert (ghoul.title, ghoul.episodes, ghoul.score, ghoul.members) == (
        "Tokyo Ghoul:re",
        12,
        Decimal("6.37"),
        1286618,
    )
    # A continuing series is listed, but spring 2018 is not its season.
    one_piece = anime(parsed, 21)
    assert (one_piece.season, one_piece.episodes, one_piece.aired_from) == (
        None,
        None,
        date(1999, 10, 20),
    )
    assert anime(parsed, 34443).type == "ONA"
    assert Counter(a.type for a in rows)["Movie"] == 25


def test_person_page_miyuki_sawashiro() -> None:
    url = f"{MAL}/people/99/Miyuki_Sawashiro"
    parsed = parse(url)
    assert (
        Person(person_id=99, name="Sawashiro, Miyuki", priority=106, page_url=url) in parsed.items
    )
    voices = [v for v in of(parsed, AnimeVoiceActor)]
    assert len(voices) == 632
    assert Counter(v.character_role for v in voices) == {"Main": 214, "Supporting": 418}
    assert {v.person_id for v in voices} == {99}
    assert {v.language for v in voices} == {None}  # a person page does not say
    roles = {(v.anime_id, v.character_id): v.character_role for v in voices}
    assert roles[(5081, 22054)] == "Main"  # Bakemonogatari: Kanbaru Suruga
    assert roles[(64, 1073)] == "Main"  # Rozen Maiden: Shinku
    assert roles[(21, 149813)] == "Supporting"  # One Piece: Charlotte Pudding
    characters = {c.character_id: c.name for c in of(parsed, Character)}
    assert characters[1073] == "Shinku"
    bakemonogatari = anime(parsed, 5081)
    assert (bakemonogatari.title, bakemonogatari.type) == ("Bakemonogatari", "TV")
    assert (bakemonogatari.season, bakemonogatari.season_year) == ("summer", 2009)
    assert of(parsed, AnimeOriginalCreator) == []  # her staff positions are theme songs
    assert len(parsed.anime_links) == 559


def test_studio_page_pierrot() -> None:
    url = f"{MAL}/anime/producer/1/Studio_Pierrot"
    parsed = parse(url)
    assert of(parsed, Company) == [
        Company(company_id=1, name="Studio Pierrot", priority=105, page_url=url)
    ]
    links = [c for c in of(parsed, AnimeCompany)]
    assert len(links) == 326
    assert Counter(c.role for c in links) == {"studio": 289, "producer": 37}
    assert {c.company_id for c in links} == {1}
    assert (20, "studio") in {(c.anime_id, c.role) for c in links}
    assert (222, "producer") in {(c.anime_id, c.role) for c in links}
    naruto = anime(parsed, 20)
    assert (naruto.title, naruto.type, naruto.score, naruto.members, naruto.aired_from) == (
        "Naruto",
        "TV",
        Decimal("8.02"),
        3072082,
        date(2002, 10, 3),
    )
    assert {g.genre_id for g in of(parsed, AnimeGenre) if g.anime_id == 20} == {1, 2, 10, 17, 27}
