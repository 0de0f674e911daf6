"""Validation drops, the merge of records into rows, and the seed CSV format."""

from __future__ import annotations

import random
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest
import yaml  # PyYAML comes with dbt-core
from scrapy.exceptions import DropItem
from scrapy.utils.test import get_crawler

from scrapy_crawler.items import (
    ITEM_CLASSES,
    Anime,
    AnimeGenre,
    AnimeVoiceActor,
    Genre,
    MangaAuthor,
    Person,
    Record,
)
from scrapy_crawler.pipelines import SeedTables, ValidatePipeline, validation_error, write_csv
from tests.crawler_helpers import SEED_TABLES, SEEDS


@pytest.mark.parametrize(
    ("item", "reason"),
    [
        (Anime(title="No id"), "anime/missing_anime_id"),
        (Anime(anime_id=1), "anime/missing_title"),
        (Anime(anime_id=1, title="x", episodes="12a"), "anime/bad_type_episodes"),  # type: ignore[arg-type]
        (Anime(anime_id=1, title="x", score="8,2"), "anime/bad_type_score"),  # type: ignore[arg-type]
        (Anime(anime_id=1, title="x", aired_from="Feb 30, 2020"), "anime/bad_type_aired_from"),  # type: ignore[arg-type]
        (Anime(anime_id=1, title="x", score=Decimal("10.01")), "anime/out_of_range_score"),
        (Anime(anime_id=1, title="x", score=Decimal("0.50")), "anime/out_of_range_score"),
        (Anime(anime_id=1, title="x", episodes=0), "anime/out_of_range_episodes"),
        (Anime(anime_id=1, title="x", members=-1), "anime/out_of_range_members"),
        (Anime(anime_id=1, title="x", season_year=1850), "anime/out_of_range_season_year"),
        (Anime(anime_id=1, title="x", aired_to=date(1800, 1, 1)), "anime/out_of_range_aired_to"),
        (Anime(anime_id=0, title="x"), "anime/out_of_range_anime_id"),
        (Anime(anime_id=1, title="x", season="autumn"), "anime/bad_value_season"),
        (Genre(genre_id=1, name="Action", kind="style"), "genres/bad_value_kind"),
        (Genre(genre_id=1, name="Action"), "genres/missing_kind"),
        (AnimeGenre(anime_id=1), "anime_genres/missing_genre_id"),
        (
            AnimeVoiceActor(anime_id=1, character_id=2, person_id=3, character_role="Lead"),
            "anime_voice_actors/bad_value_character_role",
        ),
        (
            AnimeVoiceActor(anime_id=1, character_id=2, person_id=3),
            "anime_voice_actors/missing_character_role",
        ),
        (MangaAuthor(manga_id=1, person_id=2), "manga_authors/missing_role"),
        (Person(person_id=True, name="x"), "people/bad_type_person_id"),
        (Person(person_id=1, name="  "), "people/bad_type_name"),
    ],
)
def test_validation_reasons(item: Record, reason: str) -> None:
    assert validation_error(item) == reason


def test_every_id_column_is_a_required_positive_bigint() -> None:
    for cls in ITEM_CLASSES:
        for name, rule in cls.rules().items():
            if name.endswith("_id"):
                assert (rule.required, rule.kind, rule.bounds) == (True, int, (1, 2**63 - 1)), (
                    f"{cls.__name__}.{name}"
                )
    assert Anime.required() == ("anime_id", "title")


def test_valid_records_pass() -> None:
    full = Anime(
        anime_id=6,
        title="Trigun",
        episodes=26,
        aired_from=date(1998, 4, 1),
        season="spring",
        season_year=1998,
        score=Decimal("8.22"),
        members=822213,
        favorites=0,
    )
    assert validation_error(full) is None
    assert validation_error(Anime(anime_id=6, title="Trigun")) is None


def test_validate_pipeline_drops_and_counts() -> None:
    crawler = get_crawler()
    pipeline = ValidatePipeline.from_crawler(crawler)
    good = Anime(anime_id=6, title="Trigun")
    assert pipeline.process_item(good) is good
    for bad in (
        Anime(anime_id=6),
        Anime(anime_id=7),
        Anime(anime_id=8, title="x", score=Decimal(11)),
    ):
        with pytest.raises(DropItem, match="anime/"):
            pipeline.process_item(bad)
    stats = crawler.stats.get_stats()
    assert stats["drop/anime/missing_title"] == 2
    assert stats["drop/anime/out_of_range_score"] == 1
    assert stats["records/anime"] == 1


def test_merge_prefers_filled_values_then_priority() -> None:
    tables = SeedTables()
    tables.add(Anime(anime_id=6, title="Trigun", members=800000, priority=4, page_url="top"))
    tables.add(Anime(anime_id=6, title="TRIGUN", episodes=26, priority=109, page_url="detail"))
    tables.add(Anime(anime_id=6, title="Trigun!", score=Decimal("8.2"), priority=3, page_url="s"))
    (row,) = tables.rows(Anime)
    merged = dict(zip(Anime.columns(), row, strict=True))
    assert merged["title"] == "TRIGUN"  # the detail page wins between two values
    assert merged["members"] == 800000  # a value beats an empty cell, whatever the priority
    assert merged["episodes"] == 26
    assert merged["score"] == Decimal("8.2")


def test_merge_ties_are_broken_by_page_then_value_not_by_arrival() -> None:
    records = [
        Person(person_id=1, name="B", priority=7, page_url="https://x/b"),
        Person(person_id=1, name="A", priority=7, page_url="https://x/b"),
        Person(person_id=1, name="C", priority=7, page_url="https://x/c"),
    ]
    results = set()
    for order in (records, records[::-1], [records[1], records[2], records[0]]):
        tables = SeedTables()
        for record in order:
            tables.add(record)
        results.add(tuple(tables.rows(Person)))
    assert results == {((1, "A"),)}


def test_rows_sorted_numerically_and_deduplicated() -> None:
    tables = SeedTables()
    for anime_id, genre_id in [(10, 2), (9, 1), (10, 2), (100, 1), (10, 1)]:
        tables.add(AnimeGenre(anime_id=anime_id, genre_id=genre_id))
    assert tables.rows(AnimeGenre) == [(9, 1), (10, 1), (10, 2), (100, 1)]


def test_voice_row_without_language_yields_to_a_row_with_one() -> None:
    tables = SeedTables()

    def role(language: str | None, priority: int) -> AnimeVoiceActor:
        return AnimeVoiceActor(
            anime_id=1,
            character_id=2,
            person_id=3,
            character_role="Main",
            language=language,
            priority=priority,
        )

    tables.add(role(None, 6))  # from a person page
    tables.add(role("Japanese", 8))
    tables.add(AnimeVoiceActor(anime_id=1, character_id=5, person_id=3, character_role="Main"))
    assert tables.rows(AnimeVoiceActor) == [
        (1, 2, "Main", 3, "Japanese"),
        (1, 5, "Main", 3, None),  # nobody said the language: kept, empty
    ]


def test_write_csv_format(tmp_path: Path) -> None:
    path = tmp_path / "mal_anime.csv"
    rows = [
        (6, 'Say "hi", Vash', None, date(1998, 4, 1), Decimal("8.2")),
        (7, "ユーフォー\nテーブル", "", None, None),
    ]
    write_csv(path, ["anime_id", "title", "x", "aired_from", "score"], rows)
    assert (
        path.read_bytes()
        == (
            'anime_id,title,x,aired_from,score\n6,"Say ""hi"", Vash",,1998-04-01,8.20\n'
            '7,"ユーフォー\nテーブル",,,\n'
        ).encode()
    )
    write_csv(path, ["a", "b"], [])
    assert path.read_text(encoding="utf-8") == "a,b\n"  # the header even without rows
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mal_anime.csv"]  # no temp file left


def test_writing_all_seeds(tmp_path: Path) -> None:
    tables = SeedTables()
    tables.add(Anime(anime_id=6, title="Trigun"))
    counts = tables.write(tmp_path / "out")
    assert counts["anime"] == 1 and counts["genres"] == 0
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(
        f"mal_{table}.csv" for table in SEED_TABLES
    )
    header = (tmp_path / "out" / "mal_genres.csv").read_text(encoding="utf-8")
    assert header == "genre_id,name,kind\n"


def test_seed_order_is_random_input_proof() -> None:
    records: list[Record] = [
        Anime(
            anime_id=i % 7 + 1, title=f"T{i % 3}", members=i, priority=i % 4, page_url=f"p{i % 5}"
        )
        for i in range(60)
    ] + [AnimeGenre(anime_id=i % 9 + 1, genre_id=i % 4 + 1) for i in range(40)]
    outputs = set()
    for seed in range(5):
        shuffled = records[:]
        random.Random(seed).shuffle(shuffled)
        tables = SeedTables()
        for record in shuffled:
            tables.add(record)
        outputs.add((tuple(tables.rows(Anime)), tuple(tables.rows(AnimeGenre))))
    assert len(outputs) == 1


def test_seed_properties_describe_every_seed_and_column() -> None:
    properties = yaml.safe_load((SEEDS / "_seeds.yml").read_text(encoding="utf-8"))
    assert properties["version"] == 2
    seeds = {seed["name"]: seed for seed in properties["seeds"]}
    assert list(seeds) == [cls.seed() for cls in ITEM_CLASSES]
    allowed_types = {"bigint", "integer", "numeric(4,2)", "date", "text"}
    for cls in ITEM_CLASSES:
        seed = seeds[cls.seed()]
        assert seed["description"].strip()
        assert list(seed["config"]["column_types"]) == list(cls.columns())
        assert set(seed["config"]["column_types"].values()) <= allowed_types
        assert [column["name"] for column in seed["columns"]] == list(cls.columns())
        assert all(column["description"].strip() for column in seed["columns"])
        for name in cls.columns():
            if name.endswith("_id"):
                assert seed["config"]["column_types"][name] == "bigint"
    assert seeds["mal_anime"]["config"]["column_types"]["score"] == "numeric(4,2)"
    assert seeds["mal_anime"]["config"]["column_types"]["aired_from"] == "date"
