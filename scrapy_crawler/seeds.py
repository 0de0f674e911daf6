"""Replacing the seed CSVs without losing any: checked against the files they replace, then staged.

A crawl replaces the seeds only when it finished, found records, and shrinks no seed file to less
than half its rows (unless that is allowed); otherwise `SeedsRefused` says which files, rows
before -> after, and the folder is left as it was, byte for byte.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from animedb.seeds import count_rows
from scrapy_crawler.files import move_into, staging_folder
from scrapy_crawler.items import ITEM_CLASSES

if TYPE_CHECKING:
    from scrapy_crawler.pipelines import SeedTables

# Crawler stats: how many seed files were replaced, or why none was (the summary).
REPLACED_STAT = "seeds/replaced"
REFUSED_STAT = "seeds/refused"


@dataclass(frozen=True)
class SeedChange:
    """One seed file: its data rows now (None when there is no file yet) and after the crawl."""

    table: str
    file: str
    before: int | None
    after: int

    @property
    def shrinks(self) -> bool:
        """True when the file would keep less than half of its rows."""
        return self.before is not None and self.after * 2 < self.before


class SeedsRefused(Exception):
    """The seeds were left as they were; the message is the summary to show."""

    def __init__(self, summary: str, changes: list[SeedChange]) -> None:
        super().__init__(summary)
        self.changes = changes


def refusal(
    folder: Path, changes: list[SeedChange], *, finish_reason: str, allow_shrink: bool
) -> str | None:
    """Why the crawl must not replace the seeds in `folder`, as the summary to show, or None."""
    kept = f"{folder} left as it was"
    if finish_reason != "finished":
        return f"{kept}: the crawl did not finish ({finish_reason}); run it again to the end"
    if not any(change.after for change in changes):
        return (
            f"{kept}: the crawl found no records; check start_urls, the replay folder or the "
            "network (the crawl report counts the pages parsed, broken and missing)"
        )
    shrinking = [change for change in changes if change.shrinks]
    if shrinking and not allow_shrink:
        lines = [
            f"{kept}: {len(shrinking)} seed files would lose more than half their rows "
            "(rows before -> after); pass -a allow_shrink=true if that is intended"
        ]
        lines += [
            f"  {change.file:<32}{change.before:>8} -> {change.after:>8}" for change in shrinking
        ]
        return "\n".join(lines)
    return None


def replace_seeds(
    tables: SeedTables, folder: Path, *, finish_reason: str, allow_shrink: bool
) -> list[SeedChange]:
    """Check the crawl against the seeds in `folder`, then replace them all; or raise SeedsRefused.

    Every file is written into a staging folder first, so a full disk or a lost permission is
    found before any seed is replaced; then each file is renamed over its namesake.
    """
    try:
        changes = [
            SeedChange(
                table=cls.table,
                file=f"{cls.seed()}.csv",
                before=count_rows(folder / f"{cls.seed()}.csv"),
                after=len(tables.rows(cls)),
            )
            for cls in ITEM_CLASSES
        ]
    except OSError as error:
        raise SeedsRefused(
            f"{folder} left as it was: cannot read its seeds ({error})", []
        ) from None
    summary = refusal(folder, changes, finish_reason=finish_reason, allow_shrink=allow_shrink)
    if summary is not None:
        raise SeedsRefused(summary, changes)
    try:
        with staging_folder(folder) as staging:
            tables.write(staging)
            move_into(staging, folder, [change.file for change in changes])
    except OSError as error:
        raise SeedsRefused(
            f"{folder} left as it was: cannot write the seeds ({error}); free some space, fix "
            "the permissions or choose another -a out=DIR",
            changes,
        ) from None
    return changes
