"""`python -m exporter`, the same command as `animedb export`: see exporter/cli.py."""

from exporter.cli import main

main(prog_name="python -m exporter")
