"""`python -m animedb_cli`, the same as the `animedb` console script."""

from animedb_cli.main import main

main(prog_name="animedb")
