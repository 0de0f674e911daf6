"""The end-of-crawl report: pages by type, records, drops by reason, missing pages, seeds kept."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, Self

from scrapy import signals
from scrapy.crawler import Crawler

from scrapy_crawler.httpcache import MISSING_STAT
from scrapy_crawler.seeds import REFUSED_STAT, REPLACED_STAT

logger = logging.getLogger(__name__)


def _group(stats: Mapping[str, Any], prefix: str) -> dict[str, int]:
    return {
        key[len(prefix) :]: int(value)
        for key, value in sorted(stats.items())
        if key.startswith(prefix) and isinstance(value, int)
    }


def build_report(stats: Mapping[str, Any], reason: str = "finished") -> str:
    """A short plain-text account of a crawl, from its stats."""
    pages = {k: v for k, v in _group(stats, "page/").items() if "/" not in k}
    broken = _group(stats, "page/broken/")
    records = _group(stats, "records/")
    rows = _group(stats, "rows/")
    drops = _group(stats, "drop/")
    lines = [f"MyAnimeList crawl report ({reason})"]

    def section(title: str, values: Mapping[str, int]) -> None:
        total = sum(values.values())
        lines.append(f"{title}: {total}")
        lines.extend(f"  {name:<28}{count:>8}" for name, count in values.items())

    section("pages parsed by type", pages)
    section("broken pages by kind", broken)
    lines.append(f"records by kind: {sum(records.values())} kept, merged into rows")
    for name in sorted(set(records) | set(rows)):
        lines.append(f"  {name:<28}{records.get(name, 0):>8} -> {rows.get(name, 0):>7} rows")
    section("dropped records by reason", drops)
    lines.append(f"missing pages (replay): {int(stats.get(MISSING_STAT, 0))}")
    http_errors = _group(stats, "downloader/response_status_count/")
    failed = {code: n for code, n in http_errors.items() if not code.startswith(("2", "3"))}
    if failed:
        section("HTTP error responses", failed)
    if stats.get(REFUSED_STAT):
        lines.append("seed files replaced: none, the seeds were left as they were")
    else:
        lines.append(f"seed files replaced: {int(stats.get(REPLACED_STAT, 0))}")
    return "\n".join(lines)


class CrawlReport:
    """Logs the report and prints it on stdout once the crawl is over.

    On `engine_stopped`, not `spider_closed`: the seeds are replaced on `spider_closed`, by a
    pipeline whose handler runs after the extensions' handlers.
    """

    def __init__(self, crawler: Crawler) -> None:
        self.crawler = crawler

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> Self:
        extension = cls(crawler)
        crawler.signals.connect(extension.engine_stopped, signal=signals.engine_stopped)
        return extension

    def engine_stopped(self) -> None:
        stats = self.crawler.stats.get_stats()
        report = build_report(stats, str(stats.get("finish_reason", "finished")))
        logger.info("%s", report)
        print(report, flush=True)  # the report is the command's output
