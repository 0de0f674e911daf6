"""Typed items, one dataclass per seed CSV; the field order is the CSV column order.

Each column says its rules once, in its field's metadata (`column`): the input processor that
cleans its text, read by the ItemLoader, and what it accepts (filled or not, a vocabulary, a
range), read with its annotated type by the validation pipeline. Every field defaults to None
so that a loader can build the item step by step.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import KW_ONLY, dataclass
from datetime import date
from decimal import Decimal
from functools import cache
from typing import Any, ClassVar, get_args, get_type_hints

from animedb.vocabulary import SEASONS
from scrapy_crawler.loaders import (
    cleaned,
    parse_date,
    strip_label,
    to_decimal,
    to_int,
    to_minutes,
    to_positive_int,
    to_season,
    to_status,
    to_year,
)

# Bookkeeping fields that travel with an item but are not CSV columns.
_META_FIELDS = frozenset({"priority", "page_url"})

# dbt gives seeds and models one namespace and the application models are called anime,
# genres, ...: the seed files are therefore `mal_anime.csv`, `mal_genres.csv`, ...
SEED_PREFIX = "mal_"

GENRE_KINDS = ("genre", "explicit_genre", "theme", "demographic")
COMPANY_ROLES = ("studio", "producer", "licensor")
CHARACTER_ROLES = ("Main", "Supporting")

_RULE = "rule"  # the field metadata key of a column's Rule


@dataclass(frozen=True)
class Rule:
    """What a column accepts: its type (`kind`, the annotation's, filled in by `Record.rules`),
    whether it must be filled, its vocabulary when it has one, its inclusive bounds if any."""

    required: bool = False
    choices: tuple[str, ...] = ()
    bounds: tuple[Any, Any] | None = None
    kind: type = object


def column(
    clean: Callable[[str], Any] | None = None,
    *,
    required: bool = False,
    choices: tuple[str, ...] = (),
    bounds: tuple[Any, Any] | None = None,
) -> Any:
    """A column, None until loaded: `clean` parses its cleaned text; the rest is its Rule."""
    metadata: dict[str, Any] = {_RULE: Rule(required, choices, bounds)}
    if clean is not None:
        metadata["input_processor"] = cleaned(clean)
    return dataclasses.field(default=None, metadata=metadata)


def identifier() -> Any:
    """A MyAnimeList id: always there, positive, and within the seeds' bigint."""
    return column(to_int, required=True, bounds=(1, 2**63 - 1))


# Inclusive bounds. A year or a day outside MAL's could only come from a parsing accident.
_YEARS = (1900, 2100)
_DAYS = (date(_YEARS[0], 1, 1), date(_YEARS[1], 12, 31))
_COUNT = (0, 10**10)  # members, favorites, scorers
_PLACE = (1, 10**7)  # a rank or a popularity


@dataclass
class Record:
    """Base of every item: which page it came from and how much that page is trusted.

    `priority` decides between two non-empty values of one field when records of the same row
    are merged (higher wins); `page_url` is the deterministic tie-breaker between equals.
    """

    table: ClassVar[str]  # what the rows are: "anime", "anime_genres"; the seed is mal_<table>
    key: ClassVar[tuple[str, ...]]  # columns that identify a row; also its sort order
    # An entity's kind as the URLs name it ("anime", "person"; scrapy_crawler.urls), its id the
    # key's one column: what `entity` reports. None for a bridge row.
    entity_kind: ClassVar[str | None] = None

    _: KW_ONLY
    priority: int = 0
    page_url: str = ""

    @classmethod
    def seed(cls) -> str:
        """The seed (CSV file stem and dbt seed name), e.g. "mal_anime"."""
        return SEED_PREFIX + cls.table

    @classmethod
    @cache
    def columns(cls) -> tuple[str, ...]:
        """The CSV columns, in order (cached: every merged record asks)."""
        return tuple(cls.rules())

    @classmethod
    @cache
    def rules(cls) -> dict[str, Rule]:
        """Each column's Rule, with the column's type (the annotation without None)."""
        hints = get_type_hints(cls)
        rules = {}
        for field in dataclasses.fields(cls):
            if field.name in _META_FIELDS:
                continue
            kinds = [t for t in get_args(hints[field.name]) if t is not type(None)]
            rule = field.metadata.get(_RULE, Rule())
            rules[field.name] = dataclasses.replace(rule, kind=(kinds or [hints[field.name]])[0])
        return rules

    @classmethod
    @cache
    def required(cls) -> tuple[str, ...]:
        """The columns that must be filled for a row to be kept."""
        return tuple(name for name, rule in cls.rules().items() if rule.required)

    def row(self) -> tuple[Any, ...]:
        return tuple(getattr(self, name) for name in self.columns())

    def key_values(self) -> tuple[Any, ...]:
        return tuple(getattr(self, name) for name in self.key)

    def entity(self) -> tuple[str, int] | None:
        """("anime", 6) for an entity record whose id is known; None for a bridge row."""
        if self.entity_kind is None:
            return None
        (entity_id,) = self.key_values()
        return None if entity_id is None else (self.entity_kind, entity_id)

    def complete(self) -> bool:
        """Whether every required column has a value."""
        return all(getattr(self, name) is not None for name in self.required())


@dataclass
class Anime(Record):
    table: ClassVar[str] = "anime"
    key: ClassVar[tuple[str, ...]] = ("anime_id",)
    entity_kind: ClassVar[str | None] = "anime"

    anime_id: int | None = identifier()
    title: str | None = column(required=True)
    title_english: str | None = None
    title_japanese: str | None = None
    type: str | None = None
    episodes: int | None = column(to_positive_int, bounds=(1, 100_000))
    status: str | None = column(to_status)
    # `column` is a dataclasses.field; ruff knows only `field` itself by name (RUF009).
    aired_from: date | None = column(parse_date, bounds=_DAYS)
    aired_to: date | None = column(parse_date, bounds=_DAYS)
    season: str | None = column(to_season, choices=SEASONS)
    season_year: int | None = column(to_year, bounds=_YEARS)
    source: str | None = None
    duration_minutes: int | None = column(to_minutes, bounds=(1, 10_000))
    age_rating: str | None = None
    score: Decimal | None = column(to_decimal, bounds=(1, 10))
    scored_by: int | None = column(to_int, bounds=_COUNT)
    rank: int | None = column(to_positive_int, bounds=_PLACE)
    popularity: int | None = column(to_positive_int, bounds=_PLACE)
    members: int | None = column(to_int, bounds=_COUNT)
    favorites: int | None = column(to_int, bounds=_COUNT)


@dataclass
class Genre(Record):
    table: ClassVar[str] = "genres"
    key: ClassVar[tuple[str, ...]] = ("genre_id",)

    genre_id: int | None = identifier()
    name: str | None = column(required=True)
    kind: str | None = column(required=True, choices=GENRE_KINDS)


@dataclass
class AnimeGenre(Record):
    table: ClassVar[str] = "anime_genres"
    key: ClassVar[tuple[str, ...]] = ("anime_id", "genre_id")

    anime_id: int | None = identifier()
    genre_id: int | None = identifier()


@dataclass
class Company(Record):
    table: ClassVar[str] = "companies"
    key: ClassVar[tuple[str, ...]] = ("company_id",)
    entity_kind: ClassVar[str | None] = "company"

    company_id: int | None = identifier()
    name: str | None = column(required=True)


@dataclass
class AnimeCompany(Record):
    table: ClassVar[str] = "anime_companies"
    key: ClassVar[tuple[str, ...]] = ("anime_id", "company_id", "role")

    anime_id: int | None = identifier()
    company_id: int | None = identifier()
    role: str | None = column(required=True, choices=COMPANY_ROLES)


@dataclass
class Person(Record):
    table: ClassVar[str] = "people"
    key: ClassVar[tuple[str, ...]] = ("person_id",)
    entity_kind: ClassVar[str | None] = "person"

    person_id: int | None = identifier()
    name: str | None = column(required=True)


@dataclass
class Character(Record):
    table: ClassVar[str] = "characters"
    key: ClassVar[tuple[str, ...]] = ("character_id",)
    entity_kind: ClassVar[str | None] = "character"

    character_id: int | None = identifier()
    name: str | None = column(required=True)


@dataclass
class AnimeVoiceActor(Record):
    table: ClassVar[str] = "anime_voice_actors"
    # character_role is not part of the key: it is merged like an entity field.
    key: ClassVar[tuple[str, ...]] = ("anime_id", "character_id", "person_id", "language")

    anime_id: int | None = identifier()
    character_id: int | None = identifier()
    character_role: str | None = column(required=True, choices=CHARACTER_ROLES)
    person_id: int | None = identifier()
    language: str | None = None


@dataclass
class AnimeOriginalCreator(Record):
    table: ClassVar[str] = "anime_original_creators"
    key: ClassVar[tuple[str, ...]] = ("anime_id", "person_id", "role")

    anime_id: int | None = identifier()
    person_id: int | None = identifier()
    role: str | None = column(required=True)


@dataclass
class Manga(Record):
    table: ClassVar[str] = "manga"
    key: ClassVar[tuple[str, ...]] = ("manga_id",)
    entity_kind: ClassVar[str | None] = "manga"

    manga_id: int | None = identifier()
    title: str | None = column(required=True)
    type: str | None = column(strip_label)


@dataclass
class MangaAuthor(Record):
    table: ClassVar[str] = "manga_authors"
    key: ClassVar[tuple[str, ...]] = ("manga_id", "person_id", "role")

    manga_id: int | None = identifier()
    person_id: int | None = identifier()
    role: str | None = column(strip_label, required=True)


@dataclass
class AnimeAdaptation(Record):
    table: ClassVar[str] = "anime_adaptations"
    key: ClassVar[tuple[str, ...]] = ("anime_id", "manga_id")

    anime_id: int | None = identifier()
    manga_id: int | None = identifier()


# In the order the seed files are described and written.
ITEM_CLASSES: tuple[type[Record], ...] = (
    Anime,
    Genre,
    AnimeGenre,
    Company,
    AnimeCompany,
    Person,
    Character,
    AnimeVoiceActor,
    AnimeOriginalCreator,
    Manga,
    MangaAuthor,
    AnimeAdaptation,
)
