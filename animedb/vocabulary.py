"""Names every tool shares. The dbt project states the same facts in its own files (the seeds'
accepted values, the app models' checks); tests/test_seed_checks.py holds the two together."""

from __future__ import annotations

# MyAnimeList's seasons, in calendar order (winter = January to March).
SEASONS = ("winter", "spring", "summer", "fall")
# The application's own tables: what the generators write, and the exporter reports as activity.
WRITTEN_TABLES = ("app.users", "app.wishlist", "app.ratings")
