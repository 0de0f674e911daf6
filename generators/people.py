"""Believable profiles for new users: usernames, display names, countries, birth years, bios."""

from __future__ import annotations

import random
import zlib

ADJECTIVES = (
    "silent", "crimson", "lazy", "brave", "sleepy", "lucky", "cosmic", "tiny", "wild", "gentle",
    "shiny", "quiet", "rapid", "misty", "golden", "frozen", "hidden", "clever", "stormy", "sunny",
    "lunar", "neon", "rusty", "velvet", "electric", "midnight", "salty", "spicy", "witty", "grumpy",
)  # fmt: skip
NOUNS = (
    "ninja", "mecha", "senpai", "kitsune", "ronin", "otaku", "samurai", "tanuki", "shinobi",
    "dragon", "pilot", "idol", "spirit", "titan", "alchemist", "wizard", "ghost", "hunter",
    "captain", "panda", "onigiri", "ramen", "sakura", "comet", "hero", "rival", "knight", "slime",
)  # fmt: skip
FIRST_NAMES = (
    "Aiko", "Ren", "Yuki", "Haruto", "Sakura", "Kenji", "Mei", "Sora", "Alex", "Sam", "Maria",
    "Lucas", "Emma", "Noah", "Chloe", "Leon", "Ines", "Mateo", "Sofia", "Arjun", "Priya", "Minh",
    "Linh", "Jae", "Min-seo", "Olu", "Amara", "Erik", "Freya", "Tomasz", "Ana", "Diego", "Lea",
)  # fmt: skip
# Rough share of an anime site's audience by country; a quarter of users leave it blank.
COUNTRIES = (
    ("US", 22), ("JP", 10), ("BR", 8), ("GB", 5), ("DE", 5), ("FR", 5), ("PH", 5), ("MX", 4),
    ("CA", 4), ("IN", 4), ("ID", 3), ("PL", 3), ("IT", 3), ("ES", 3), ("KR", 2), ("AU", 2),
    ("VN", 2), ("AR", 2), ("NL", 1), ("SE", 1),
)  # fmt: skip
DOMAINS = ("example.org", "example.com", "example.net", "mail.example", "anime.example")
BIO_TEMPLATES = (
    "{genre} is my comfort zone.",
    "Mostly here for {genre}, open to anything with a good soundtrack.",
    "Watching {genre} since {year}. Recommendations welcome!",
    "Backlog too long, sleep too short. {genre} forever.",
    "I rate honestly. {genre} fan first, everything else second.",
    "Subs over dubs. Big on {genre}.",
    "Slowly working through the classics, then more {genre}.",
)
_COUNTRY_CODES = [code for code, _ in COUNTRIES]
_COUNTRY_WEIGHTS = [weight for _, weight in COUNTRIES]


def username(rng: random.Random) -> str:
    """Like `sleepy_tanuki4821`: at most 8 + 1 + 9 + 5 characters, within ^[a-z0-9_]{3,30}$."""
    return f"{rng.choice(ADJECTIVES)}_{rng.choice(NOUNS)}{rng.randrange(10, 100_000)}"


def email(name: str) -> str:
    # The domain is a function of the username, so that ordering new users by username also
    # orders them by e-mail: two ticks inserting the same names then meet them in one order.
    return f"{name}@{DOMAINS[zlib.crc32(name.encode()) % len(DOMAINS)]}"


def display_name(rng: random.Random, name: str) -> str:
    roll = rng.random()
    if roll < 0.45:
        return rng.choice(FIRST_NAMES)
    if roll < 0.75:
        return f"{rng.choice(FIRST_NAMES)} {rng.choice('ABCDEFGHIJKLMNOPRSTUVWYZ')}."
    return name.split("_")[-1].rstrip("0123456789").title() or name


def country_code(rng: random.Random) -> str | None:
    if rng.random() < 0.25:
        return None
    return rng.choices(_COUNTRY_CODES, weights=_COUNTRY_WEIGHTS)[0]


def birth_year(rng: random.Random) -> int | None:
    if rng.random() < 0.3:
        return None
    return round(rng.triangular(1965, 2011, 2001))


def bio(rng: random.Random, genre_name: str | None) -> str | None:
    if genre_name is None or rng.random() < 0.4:
        return None
    return rng.choice(BIO_TEMPLATES).format(genre=genre_name, year=rng.randrange(1995, 2022))
