"""Scrapy project that crawls MyAnimeList pages into the seed CSVs of the dbt project."""
