"""Item pipelines: validate each record, merge records per row, and replace the seed CSVs.

The CSVs are a function of the set of records alone: rows are sorted by key, and two values of
one field are decided by page priority, then page URL, then the value itself, never by the
order in which pages arrived.
"""

from __future__ import annotations

import csv
import io
import logging
from collections.abc import Iterable
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any, Self

from scrapy import signals
from scrapy.crawler import Crawler
from scrapy.exceptions import DropItem

from animedb.files import atomic_write
from scrapy_crawler.items import ITEM_CLASSES, AnimeVoiceActor, Record
from scrapy_crawler.seeds import REFUSED_STAT, REPLACED_STAT, SeedsRefused, replace_seeds

logger = logging.getLogger(__name__)


def validation_error(item: Record) -> str | None:
    """Why a record cannot be kept ("anime/missing_title", "anime/out_of_range_score"), or None.

    The rules are the item's own (`Record.rules`): filled, of the annotated type, not blank,
    within bounds, one of the choices.
    """
    table = item.table
    for name in item.required():
        if getattr(item, name) is None:
            return f"{table}/missing_{name}"
    for name, rule in item.rules().items():
        value = getattr(item, name)
        if value is None:
            continue
        if not isinstance(value, rule.kind) or (rule.kind is int and isinstance(value, bool)):
            return f"{table}/bad_type_{name}"
        if isinstance(value, str) and not value.strip():
            return f"{table}/bad_type_{name}"
        if rule.bounds is not None and not rule.bounds[0] <= value <= rule.bounds[1]:
            return f"{table}/out_of_range_{name}"
        if rule.choices and value not in rule.choices:
            return f"{table}/bad_value_{name}"
    return None


class ValidatePipeline:
    """Drops a record that lacks a required field or holds a wrong type or an out-of-range value."""

    def __init__(self, crawler: Crawler) -> None:
        self.crawler = crawler

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> Self:
        return cls(crawler)

    def process_item(self, item: Any) -> Any:
        if not isinstance(item, Record):
            return item
        stats = self.crawler.stats
        reason = validation_error(item)
        if reason is not None:
            stats.inc_value(f"drop/{reason}")
            raise DropItem(f"{reason} ({item.page_url})")
        stats.inc_value(f"records/{item.table}")
        return item


def _rank(item: Record, value: Any) -> tuple[int, str, str]:
    """Smaller is better: higher priority first, then page URL, then the value's text."""
    return (-item.priority, item.page_url, str(value))


def _sort_key(values: Iterable[Any]) -> tuple[tuple[bool, Any], ...]:
    return tuple((value is not None, value) for value in values)


def format_cell(value: Any) -> str:
    """A CSV cell: empty for unknown, ISO dates, scores with two decimals."""
    if value is None:
        return ""
    if isinstance(value, Decimal):
        return f"{value:.2f}"
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


class SeedTables:
    """Records merged per row: for every field the best-ranked non-empty value is kept."""

    def __init__(self) -> None:
        self._rows: dict[type[Record], dict[tuple[Any, ...], dict[str, tuple[Any, Any]]]] = {
            cls: {} for cls in ITEM_CLASSES
        }

    def add(self, item: Record) -> None:
        fields = self._rows[type(item)].setdefault(item.key_values(), {})
        for name in item.columns():
            if name in item.key:
                continue
            value = getattr(item, name)
            if value is None:
                continue
            candidate = (_rank(item, value), value)
            if name not in fields or candidate[0] < fields[name][0]:
                fields[name] = candidate

    def rows(self, cls: type[Record]) -> list[tuple[Any, ...]]:
        """The merged rows of one seed, sorted by key (numeric ids in numeric order)."""
        columns = cls.columns()
        table = self._rows[cls]
        if cls is AnimeVoiceActor:
            table = _without_unknown_language(table)
        result = []
        for key in sorted(table, key=_sort_key):
            known = dict(zip(cls.key, key, strict=True))
            fields = table[key]
            result.append(
                tuple(
                    known[name] if name in known else fields.get(name, (None, None))[1]
                    for name in columns
                )
            )
        return result

    def write(self, folder: Path) -> dict[str, int]:
        """Write every seed CSV into `folder` (atomically, each one) and return row counts."""
        folder.mkdir(parents=True, exist_ok=True)
        counts = {}
        for cls in ITEM_CLASSES:
            rows = self.rows(cls)
            write_csv(folder / f"{cls.seed()}.csv", cls.columns(), rows)
            counts[cls.table] = len(rows)
        return counts


def _without_unknown_language(
    table: dict[tuple[Any, ...], dict[str, tuple[Any, Any]]],
) -> dict[tuple[Any, ...], dict[str, tuple[Any, Any]]]:
    """A person page does not say the dub language; drop such a row when another page did."""
    languages = {key[:3] for key in table if key[3] is not None}
    return {
        key: value for key, value in table.items() if key[3] is not None or key[:3] not in languages
    }


def write_csv(path: Path, header: Iterable[str], rows: Iterable[Iterable[Any]]) -> None:
    """UTF-8, `\\n` line ends, minimal quoting, header always; written atomically."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n", quoting=csv.QUOTE_MINIMAL)
    writer.writerow(header)
    writer.writerows([format_cell(value) for value in row] for row in rows)
    atomic_write(path, buffer.getvalue().encode("utf-8"))


class CsvWriterPipeline:
    """Collects validated records and, when the spider closes, replaces the seed CSVs.

    It works on `spider_closed` rather than in `close_spider` because only the signal says why
    the spider closed: an interrupted crawl must leave the seeds alone. The outcome goes into
    the stats (`seeds/replaced`, or the summary in `seeds/refused`) for the report and the
    `crawl` command's exit code.
    """

    def __init__(self, crawler: Crawler) -> None:
        self.crawler = crawler
        self.tables = SeedTables()

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> Self:
        pipeline = cls(crawler)
        crawler.signals.connect(pipeline.spider_closed, signal=signals.spider_closed)
        return pipeline

    def process_item(self, item: Any) -> Any:
        if isinstance(item, Record):
            self.tables.add(item)
        return item

    def spider_closed(self, reason: str) -> None:
        settings, stats = self.crawler.settings, self.crawler.stats
        folder = Path(settings.get("SEEDS_DIR") or "seeds")
        try:
            changes = replace_seeds(
                self.tables,
                folder,
                finish_reason=reason,
                allow_shrink=settings.getbool("SEEDS_ALLOW_SHRINK"),
            )
        except SeedsRefused as refused:
            changes = refused.changes
            stats.set_value(REFUSED_STAT, str(refused))  # our crawl command prints it, last
            logger.debug("%s", refused)
        else:
            stats.set_value(REPLACED_STAT, len(changes))
            logger.info("Replaced %d seed files in %s", len(changes), folder)
        for change in changes:
            stats.set_value(f"rows/{change.table}", change.after)
