"""MyAnimeList URLs: which kind of page a URL is, the ids inside links, the replay file name, and
the start URLs of the recorded pages."""

from __future__ import annotations

import re
from datetime import date
from enum import StrEnum
from pathlib import Path
from urllib.parse import unquote, urljoin, urlsplit

from animedb.vocabulary import SEASONS

BASE_URL = "https://myanimelist.net"


class PageType(StrEnum):
    """The page kinds the spider knows; the value is the stats/report label."""

    TOP = "top"
    SEASON = "season"
    STUDIO = "studio"
    ANIME = "anime"
    CHARACTERS = "characters"
    MANGA = "manga"
    PERSON = "person"


_SEASON_WORDS = "|".join(SEASONS)
# Matched against the path alone; the order matters (characters before the bare anime page).
_PAGE_PATTERNS: tuple[tuple[PageType, re.Pattern[str]], ...] = (
    (PageType.TOP, re.compile(r"^/topanime(?:\.php)?/?$")),
    (PageType.SEASON, re.compile(rf"^/anime/season(?:/\d{{4}}/(?:{_SEASON_WORDS}))?/?$")),
    (PageType.STUDIO, re.compile(r"^/anime/producer/\d+(?:/[^/]*)?/?$")),
    (PageType.CHARACTERS, re.compile(r"^/anime/\d+(?:/[^/]+)?/characters/?$")),
    (PageType.ANIME, re.compile(r"^/anime/\d+(?:/[^/]*)?/?$")),
    (PageType.MANGA, re.compile(r"^/manga/\d+(?:/[^/]*)?/?$")),
    (PageType.PERSON, re.compile(r"^/people/\d+(?:/[^/]*)?/?$")),
)

# Entity links inside pages: `/anime/6/Trigun`, `https://myanimelist.net/people/99/...`.
_LINK_PATTERNS: dict[str, re.Pattern[str]] = {
    "anime": re.compile(r"/anime/(\d+)(?:/|$|\?)"),
    "manga": re.compile(r"/manga/(\d+)(?:/|$|\?)"),
    "person": re.compile(r"/people/(\d+)(?:/|$|\?)"),
    "character": re.compile(r"/character/(\d+)(?:/|$|\?)"),
    "company": re.compile(r"/anime/producer/(\d+)(?:/|$|\?)"),
    "genre": re.compile(r"/anime/genre/(\d+)(?:/|$|\?)"),
}

_SEASON_PATH = re.compile(rf"^/anime/season/(\d{{4}})/({_SEASON_WORDS})/?$")
_SUBJECT_PATH = re.compile(r"^/(anime/producer|anime|manga|people)/(\d+)")
_SUBJECT_KIND = {
    "anime/producer": "company",
    "anime": "anime",
    "manga": "manga",
    "people": "person",
}
_NOT_NAME_CHARS = re.compile(r"[^A-Za-z0-9_-]+")


def page_type(url: str) -> PageType | None:
    """The kind of MyAnimeList page `url` is, or None for a page the spider does not parse."""
    path = urlsplit(url).path
    for kind, pattern in _PAGE_PATTERNS:
        if pattern.match(path):
            return kind
    return None


def is_site_url(url: str) -> bool:
    """True for an http(s) URL on myanimelist.net (or one of its subdomains)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    return parts.scheme in ("http", "https") and (
        host == "myanimelist.net" or host.endswith(".myanimelist.net")
    )


def link_id(href: str | None, kind: str) -> int | None:
    """The id of a `kind` entity ("anime", "person", "company", ...) in a link, or None."""
    if not href:
        return None
    path = urlsplit(href).path
    if kind == "anime" and "/anime/producer/" in path:
        return None
    match = _LINK_PATTERNS[kind].search(path)
    return int(match.group(1)) if match else None


def page_subject(url: str) -> tuple[str, int] | None:
    """The entity a page is about: ("anime", 6) for an anime's detail or characters page."""
    match = _SUBJECT_PATH.match(urlsplit(url).path)
    if not match or page_type(url) in (None, PageType.SEASON, PageType.TOP):
        return None
    return _SUBJECT_KIND[match.group(1)], int(match.group(2))


def season_of_url(url: str) -> tuple[str, int] | None:
    """("spring", 2018) for /anime/season/2018/spring; None for other URLs."""
    match = _SEASON_PATH.match(urlsplit(url).path)
    return (match.group(2), int(match.group(1))) if match else None


def season_of_date(day: date) -> tuple[str, int]:
    """MyAnimeList's season of a date: winter = Jan-Mar, spring = Apr-Jun, and so on."""
    return SEASONS[(day.month - 1) // 3], day.year


def default_start_urls(today: date) -> list[str]:
    """The first two top-anime pages and the current season's page."""
    season, year = season_of_date(today)
    return [
        f"{BASE_URL}/topanime.php",
        f"{BASE_URL}/topanime.php?limit=50",
        f"{BASE_URL}/anime/season/{year}/{season}",
    ]


def characters_url(anime_url: str) -> str:
    """The characters & staff page of an anime detail URL (`/anime/<id>/<slug>/characters`)."""
    parts = urlsplit(urljoin(BASE_URL, anime_url))
    return f"{parts.scheme}://{parts.netloc}{parts.path.rstrip('/')}/characters"


def anime_url(characters_page_url: str) -> str:
    """The detail page of an anime characters & staff URL."""
    parts = urlsplit(characters_page_url)
    path = re.sub(r"/characters/?$", "", parts.path)
    return f"{parts.scheme}://{parts.netloc}{path}"


def canonical(url: str) -> str:
    """An absolute URL without its fragment, so the same page is requested once."""
    return urljoin(BASE_URL, url).split("#", 1)[0]


def url_to_filename(url: str) -> str:
    """The replay file name of a URL: its path and query, `.php` dropped, other runs → `_`.

    `/anime/6/Trigun` → `anime_6_Trigun.html`, `/topanime.php?limit=50` → `topanime_limit_50.html`.
    Percent-escapes are decoded first so an escaped and an unescaped URL share one file; what is
    not an ASCII letter, digit, `_` or `-` then collapses to `_`, keeping names portable.
    """
    parts = urlsplit(url)
    path = unquote(parts.path).replace(".php", "")
    text = f"{path}?{unquote(parts.query)}" if parts.query else path
    name = _NOT_NAME_CHARS.sub("_", text).strip("_")
    return f"{name or 'index'}.html"


RECORDED_START_URLS = Path(__file__).with_name("replay_urls.txt")


def recorded_start_urls() -> list[str]:
    """The start URLs of the recorded pages (../shared/fixtures/myanimelist), from their one
    list, replay_urls.txt: every line that is not empty or a # comment."""
    lines = RECORDED_START_URLS.read_text(encoding="utf-8").splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]
