"""Exporter: exact incremental copies of PostgreSQL tables into a Parquet lake."""
