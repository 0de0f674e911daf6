"""`animedb crawl`: Scrapy's own `scrapy crawl myanimelist`, arguments passed through, run with
the project's settings from any folder (relative paths stay the caller's)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import click

SPIDER = "myanimelist"
SETTINGS_MODULE = "scrapy_crawler.settings"  # scrapy.cfg's [settings] default


def run_crawl(args: Sequence[str], cwd: Path | None = None) -> int:
    """`scrapy crawl myanimelist ARGS` in a process of its own (Twisted's reactor runs once per
    process), and its exit status. Ctrl-C reaches Scrapy, which stops the crawl its own way
    (a second one stops it at once); this process only waits for it."""
    env = dict(os.environ)
    env.setdefault("SCRAPY_SETTINGS_MODULE", SETTINGS_MODULE)
    command = [sys.executable, "-m", "scrapy", "crawl", SPIDER, *args]
    with subprocess.Popen(command, cwd=cwd, env=env) as crawl:
        while True:
            try:
                return crawl.wait()
            except KeyboardInterrupt:
                continue


@click.command(context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False})
@click.argument("scrapy_args", nargs=-1, type=click.UNPROCESSED)
def crawl(scrapy_args: tuple[str, ...]) -> None:
    """Crawl MyAnimeList into seeds/ with Scrapy.

    This is `scrapy crawl myanimelist`, and the arguments go to it as they are: `-a NAME=VALUE` for
    the spider's start_urls, max_anime, out, replay, save and allow_shrink (docs/crawler.md
    describes them), `-s NAME=VALUE` for a setting. The exit status is Scrapy's. Without
    arguments, a live crawl of the first top-anime pages and the current season.

    Example: animedb crawl -a replay=../shared/fixtures/myanimelist -a out=seeds
    """
    sys.exit(run_crawl(scrapy_args))
