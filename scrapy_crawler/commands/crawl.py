"""`scrapy crawl`, failing loudly: a bad argument is one line and exit 2, kept seeds exit 1.

Scrapy 2.19's `crawl` exits non-zero only when the spider cannot be built, and then after an
asyncio traceback; nothing an extension or a pipeline does at the end of a crawl reaches the exit
code (scrapy/scrapy#1241; #8204 would add a way). A project command of the same name, found
through COMMANDS_MODULE, takes the built-in's place: it checks the spider's arguments before
Scrapy starts logging, and after the crawl reads its outcome from the stats.
"""

from __future__ import annotations

import argparse
import sys

from scrapy.commands.crawl import Command as ScrapyCrawlCommand
from scrapy.exceptions import UsageError
from scrapy.spiderloader import get_spider_loader

from scrapy_crawler.seeds import REFUSED_STAT


class Command(ScrapyCrawlCommand):
    def long_desc(self) -> str:
        return (
            "Run a spider of the current project, by name, e.g. `scrapy crawl myanimelist -a "
            "replay=DIR -a out=seeds`. Exit 2 with one line for a bad option or spider argument, "
            "1 when the crawl left the seeds as they were (the summary says why), 0 otherwise."
        )

    def process_options(self, args: list[str], opts: argparse.Namespace) -> None:
        try:
            super().process_options(args, opts)
            self._check_spider_arguments(args, opts)
        except UsageError as error:
            if not str(error):
                raise  # Scrapy prints the usage
            print(f"scrapy crawl: {error}", file=sys.stderr, flush=True)
            raise SystemExit(2) from None

    def _check_spider_arguments(self, args: list[str], opts: argparse.Namespace) -> None:
        """Ask the spider class to check its arguments, if it can (`check_arguments`)."""
        if len(args) != 1:
            return  # run() reports it
        assert self.settings is not None
        try:
            spider_class = get_spider_loader(self.settings).load(args[0])
        except KeyError:
            raise UsageError(
                f"no spider named {args[0]!r}; `scrapy list` shows the spiders"
            ) from None
        check = getattr(spider_class, "check_arguments", None)
        if check is not None:
            check(opts.spargs, self.settings)

    def run(self, args: list[str], opts: argparse.Namespace) -> None:
        if len(args) != 1:
            super().run(args, opts)  # raises the usage error
            return
        assert self.crawler_process is not None
        crawler = self._create_crawler(args[0])
        self.crawler_process.crawl(crawler, **opts.spargs)
        self.crawler_process.start()
        refused = crawler.stats.get_value(REFUSED_STAT) if crawler.stats else None
        if refused:
            print(refused, file=sys.stderr, flush=True)
        if self.crawler_process.bootstrap_failed or refused:
            self.exitcode = 1
