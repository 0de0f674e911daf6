"""Typed items, one dataclass per seed CSV; the field order is the CSV column order.

Every field defaults to None so that an ItemLoader can build the item step by step; the
validation pipeline then enforces `required`, the annotated types and the ranges.
"""

from __future__ import annotations

import dataclasses
from dataclasses import KW_ONLY, dataclass
from datetime import date
from decimal import Decimal
from typing import Any, ClassVar

# Bookkeeping fields that travel with an item but are not CSV columns.
_META_FIELDS = frozenset({"priority", "page_url"})

# dbt gives seeds and models one namespace and the application models are called anime,
# genres, ...: the seed files are therefore `mal_anime.csv`, `mal_genres.csv`, ...
SEED_PREFIX = "mal_"

SEASONS = ("winter", "spring", "summer", "fall")
GENRE_KINDS = ("genre", "explicit_genre", "theme", "demographic")
COMPANY_ROLES = ("studio", "producer", "licensor")
CHARACTER_ROLES = ("Main", "Supporting")


_COLUMNS: dict[type[Record], tuple[str, ...]] = {}


@dataclass
class Record:
    """Base of every item: which page it came from and how much that page is trusted.

    `priority` decides between two non-empty values of one field when records of the same row
    are merged (higher wins); `page_url` is the deterministic tie-breaker between equals.
    """

    table: ClassVar[str]  # what the rows are: "anime", "anime_genres"; the seed is mal_<table>
    key: ClassVar[tuple[str, ...]]  # columns that identify a row; also its sort order
    required: ClassVar[tuple[str, ...]]  # columns that must be filled for the row to be kept
    choices: ClassVar[dict[str, tuple[str, ...]]] = {}  # columns limited to a vocabulary

    _: KW_ONLY
    priority: int = 0
    page_url: str = ""

    @classmethod
    def seed(cls) -> str:
        """The seed (CSV file stem and dbt seed name), e.g. "mal_anime"."""
        return SEED_PREFIX + cls.table

    @classmethod
    def columns(cls) -> tuple[str, ...]:
        """The CSV columns, in order (cached: every merged record asks)."""
        if cls not in _COLUMNS:
            names = tuple(f.name for f in dataclasses.fields(cls) if f.name not in _META_FIELDS)
            _COLUMNS[cls] = names
        return _COLUMNS[cls]

    def row(self) -> tuple[Any, ...]:
        return tuple(getattr(self, name) for name in self.columns())

    def key_values(self) -> tuple[Any, ...]:
        return tuple(getattr(self, name) for name in self.key)

    def entity(self) -> tuple[str, int] | None:
        """("anime", 6) for an entity record whose id is known; None for a bridge row."""
        return None

    def complete(self) -> bool:
        """Whether every required column has a value."""
        return all(getattr(self, name) is not None for name in self.required)


@dataclass
class Anime(Record):
    table: ClassVar[str] = "anime"
    key: ClassVar[tuple[str, ...]] = ("anime_id",)
    required: ClassVar[tuple[str, ...]] = ("anime_id", "title")
    choices: ClassVar[dict[str, tuple[str, ...]]] = {"season": SEASONS}

    anime_id: int | None = None
    title: str | None = None
    title_english: str | None = None
    title_japanese: str | None = None
    type: str | None = None
    episodes: int | None = None
    status: str | None = None
    aired_from: date | None = None
    aired_to: date | None = None
    season: str | None = None
    season_year: int | None = None
    source: str | None = None
    duration_minutes: int | None = None
    age_rating: str | None = None
    score: Decimal | None = None
    scored_by: int | None = None
    rank: int | None = None
    popularity: int | None = None
    members: int | None = None
    favorites: int | None = None

    def entity(self) -> tuple[str, int] | None:
        return None if self.anime_id is None else ("anime", self.anime_id)


@dataclass
class Genre(Record):
    table: ClassVar[str] = "genres"
    key: ClassVar[tuple[str, ...]] = ("genre_id",)
    required: ClassVar[tuple[str, ...]] = ("genre_id", "name", "kind")
    choices: ClassVar[dict[str, tuple[str, ...]]] = {"kind": GENRE_KINDS}

    genre_id: int | None = None
    name: str | None = None
    kind: str | None = None


@dataclass
class AnimeGenre(Record):
    table: ClassVar[str] = "anime_genres"
    key: ClassVar[tuple[str, ...]] = ("anime_id", "genre_id")
    required: ClassVar[tuple[str, ...]] = ("anime_id", "genre_id")

    anime_id: int | None = None
    genre_id: int | None = None


@dataclass
class Company(Record):
    table: ClassVar[str] = "companies"
    key: ClassVar[tuple[str, ...]] = ("company_id",)
    required: ClassVar[tuple[str, ...]] = ("company_id", "name")

    company_id: int | None = None
    name: str | None = None

    def entity(self) -> tuple[str, int] | None:
        return None if self.company_id is None else ("company", self.company_id)


@dataclass
class AnimeCompany(Record):
    table: ClassVar[str] = "anime_companies"
    key: ClassVar[tuple[str, ...]] = ("anime_id", "company_id", "role")
    required: ClassVar[tuple[str, ...]] = ("anime_id", "company_id", "role")
    choices: ClassVar[dict[str, tuple[str, ...]]] = {"role": COMPANY_ROLES}

    anime_id: int | None = None
    company_id: int | None = None
    role: str | None = None


@dataclass
class Person(Record):
    table: ClassVar[str] = "people"
    key: ClassVar[tuple[str, ...]] = ("person_id",)
    required: ClassVar[tuple[str, ...]] = ("person_id", "name")

    person_id: int | None = None
    name: str | None = None

    def entity(self) -> tuple[str, int] | None:
        return None if self.person_id is None else ("person", self.person_id)


@dataclass
class Character(Record):
    table: ClassVar[str] = "characters"
    key: ClassVar[tuple[str, ...]] = ("character_id",)
    required: ClassVar[tuple[str, ...]] = ("character_id", "name")

    character_id: int | None = None
    name: str | None = None

    def entity(self) -> tuple[str, int] | None:
        return None if self.character_id is None else ("character", self.character_id)


@dataclass
class AnimeVoiceActor(Record):
    table: ClassVar[str] = "anime_voice_actors"
    # character_role is not part of the key: it is merged like an entity field.
    key: ClassVar[tuple[str, ...]] = ("anime_id", "character_id", "person_id", "language")
    required: ClassVar[tuple[str, ...]] = (
        "anime_id",
        "character_id",
        "person_id",
        "character_role",
    )
    choices: ClassVar[dict[str, tuple[str, ...]]] = {"character_role": CHARACTER_ROLES}

    anime_id: int | None = None
    character_id: int | None = None
    character_role: str | None = None
    person_id: int | None = None
    language: str | None = None


@dataclass
class AnimeOriginalCreator(Record):
    table: ClassVar[str] = "anime_original_creators"
    key: ClassVar[tuple[str, ...]] = ("anime_id", "person_id", "role")
    required: ClassVar[tuple[str, ...]] = ("anime_id", "person_id", "role")

    anime_id: int | None = None
    person_id: int | None = None
    role: str | None = None


@dataclass
class Manga(Record):
    table: ClassVar[str] = "manga"
    key: ClassVar[tuple[str, ...]] = ("manga_id",)
    required: ClassVar[tuple[str, ...]] = ("manga_id", "title")

    manga_id: int | None = None
    title: str | None = None
    type: str | None = None

    def entity(self) -> tuple[str, int] | None:
        return None if self.manga_id is None else ("manga", self.manga_id)


@dataclass
class MangaAuthor(Record):
    table: ClassVar[str] = "manga_authors"
    key: ClassVar[tuple[str, ...]] = ("manga_id", "person_id", "role")
    required: ClassVar[tuple[str, ...]] = ("manga_id", "person_id", "role")

    manga_id: int | None = None
    person_id: int | None = None
    role: str | None = None


@dataclass
class AnimeAdaptation(Record):
    table: ClassVar[str] = "anime_adaptations"
    key: ClassVar[tuple[str, ...]] = ("anime_id", "manga_id")
    required: ClassVar[tuple[str, ...]] = ("anime_id", "manga_id")

    anime_id: int | None = None
    manga_id: int | None = None


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
