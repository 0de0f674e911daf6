"""Other engines writing to the lake while the exporter runs, each in a process of its own and
through pyiceberg's public API only, as Glue's optimizers, Athena's OPTIMIZE and VACUUM and
other pipelines do on AWS:

- `append`: appends rows to a table of its own in the lake's namespace;
- `compact`: rewrites the exporter's tables with the same rows (a read of the live rows, then
  an overwrite, which pyiceberg validates against concurrent commits);
- `expire`: expires every snapshot older than a second that no ref holds.

`python -m tests.lake_writers ROLE TARGET SECONDS [TABLE ...]` runs one of them for SECONDS and
prints one JSON line of what it did: commits made, commits refused by a conflict, rows appended.
"""

from __future__ import annotations

import datetime as dt
import json
import sys
import time
from typing import Any

import pyarrow as pa
from pyiceberg.exceptions import CommitFailedException, NoSuchTableError, ValidationException

from exporter import catalog
from exporter.storage import open_storage

FOREIGN = "foreign_events"


def _lake(target: str) -> catalog.Lake:
    """The lake's catalog as another engine opens it: pyiceberg's own pyarrow file access,
    not the exporter's."""
    from pyiceberg.catalog import load_catalog

    storage = open_storage(target)
    lake = catalog.open_lake(storage)
    other = load_catalog(
        catalog.DEFAULT_CATALOG,  # the name the SQL catalog files the tables under
        type="sql",
        uri=f"sqlite:///{storage.uri}/{catalog.LOCAL_CATALOG_FILE}",
        warehouse=storage.uri,
        **{"py-io-impl": "pyiceberg.io.pyarrow.PyArrowFileIO"},
    )
    return catalog.Lake(storage, other, "animedb", lake.namespace)


def append(lake: catalog.Lake, seconds: float, tables: list[str]) -> dict[str, Any]:
    from pyiceberg.schema import Schema
    from pyiceberg.types import LongType, NestedField, StringType

    schema = Schema(
        NestedField(1, "event_id", LongType(), required=False),
        NestedField(2, "note", StringType(), required=False),
    )
    name = lake.identifier(FOREIGN)
    try:
        table = lake.catalog.load_table(name)
    except NoSuchTableError:
        table = lake.catalog.create_table(name, schema)
    done = {"commits": 0, "conflicts": 0, "rows": 0}
    deadline = time.monotonic() + seconds
    n = 0
    while time.monotonic() < deadline:
        rows = pa.table(
            {
                "event_id": pa.array(range(n, n + 10), pa.int64()),
                "note": pa.array([f"event {i}" for i in range(n, n + 10)], pa.string()),
            }
        )
        try:
            table.append(rows)
            done["commits"] += 1
            done["rows"] += 10
            n += 10
        except CommitFailedException:
            done["conflicts"] += 1
            table.refresh()
        time.sleep(0.05)
    return done


def compact(lake: catalog.Lake, seconds: float, tables: list[str]) -> dict[str, Any]:
    done: dict[str, Any] = {"commits": 0, "conflicts": 0}
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        for name in tables:
            try:
                table = lake.catalog.load_table(lake.identifier(name))
                if table.current_snapshot() is None:
                    continue
                rows = table.scan().to_arrow()
                table.overwrite(rows)
                done["commits"] += 1
            except (CommitFailedException, ValidationException) as exc:
                # our run committed meanwhile: pyiceberg refuses to drop what it did not read
                done["conflicts"] += 1
                done["last"] = str(exc).splitlines()[0][:200]
            except NoSuchTableError:
                continue
            time.sleep(0.2)
    return done


def expire(lake: catalog.Lake, seconds: float, tables: list[str]) -> dict[str, Any]:
    done: dict[str, Any] = {"commits": 0, "conflicts": 0, "expired": 0}
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        for name in tables:
            try:
                table = lake.catalog.load_table(lake.identifier(name))
                before = len(table.metadata.snapshots)
                older = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)
                table.maintenance.expire_snapshots().older_than(older).commit()
                table.refresh()
                done["expired"] += before - len(table.metadata.snapshots)
                done["commits"] += 1
            except (CommitFailedException, ValidationException, ValueError) as exc:
                done["conflicts"] += 1
                done["last"] = str(exc).splitlines()[0][:200]
            except NoSuchTableError:
                continue
        time.sleep(0.3)
    return done


ROLES = {"append": append, "compact": compact, "expire": expire}


def main() -> None:
    role, target, seconds, *tables = sys.argv[1:]
    result = ROLES[role](_lake(target), float(seconds), tables)
    print(json.dumps({"role": role, **result}), flush=True)


if __name__ == "__main__":
    main()
