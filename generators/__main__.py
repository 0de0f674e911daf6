"""`python -m generators`, the same command as `animedb generate`: see generators/cli.py."""

from generators.cli import PROG, main

main(prog_name=PROG)
