"""The end-of-crawl report: pages by type, records by kind, drops by reason, missing pages."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, Self

from scrapy import Spider, signals
from scrapy.crawler import Crawler

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
    lines.append(f"missing pages (replay): {int(stats.get('replay/missing', 0))}")
    http_errors = _group(stats, "downloader/response_status_count/")
    failed = {code: n for code, n in http_errors.items() if not code.startswith(("2", "3"))}
    if failed:
        section("HTTP error responses", failed)
    return "\n".join(lines)


class CrawlReport:
    """Logs the report and prints it on stdout when the spider closes."""

    def __init__(self, crawler: Crawler) -> None:
        self.crawler = crawler

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> Self:
        extension = cls(crawler)
        crawler.signals.connect(extension.spider_closed, signal=signals.spider_closed)
        return extension

    def spider_closed(self, spider: Spider, reason: str) -> None:
        report = build_report(self.crawler.stats.get_stats(), reason)
        logger.info("%s", report)
        print(report, flush=True)  # the report is the command's output
