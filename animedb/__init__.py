"""AnimeDataBase: what the crawler, the database build, the generators and the exporter share."""

from pathlib import Path

# The checkout these packages run from: dbt_project.yml, seeds/, tests/ and bench/ are there.
REPO = Path(__file__).resolve().parent.parent
