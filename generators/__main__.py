"""`python -m generators`: see generators/cli.py."""

from generators.cli import main

main()
