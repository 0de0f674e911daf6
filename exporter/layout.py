"""The lake's names: where a run's files go, what its tags and snapshot summaries say, the
change log's own columns, and the properties every lake table carries. Pure: no I/O.

Per exported source table `app.x`, in one namespace (default `animedb`):
- `x_changes`: append-only; every row version a run captured and every delete, with `_run_id`,
  `_deleted` and `_exported_at` (the run's start, the partition: one day a partition);
- `x`: the current state, newest version of each key, deletes applied (with `_run_id` and
  `_exported_at`). A run appends its new versions and position-delete files, one per data file,
  naming the rows they replace (merge-on-read); maintenance rewrites it as deletes pile up.
A run that changes a table commits one snapshot to it, with the run id in its summary (the
exactly-once marker) and a tag `run-<id>` in the same commit. "The lake as of run N" is, in
every table, the newest run tag at or before N (exporter/snapshots.py).
"""

from __future__ import annotations

import re
import uuid

CHANGES_SUFFIX = "_changes"
# the change log's own columns, after the source's
RUN_COLUMN, DELETED_COLUMN, EXPORTED_AT_COLUMN = "_run_id", "_deleted", "_exported_at"
CHANGE_COLUMNS = (RUN_COLUMN, DELETED_COLUMN, EXPORTED_AT_COLUMN)
# the position-delete file's reserved field ids (Iceberg spec)
FILE_PATH_ID, POS_ID = 2147483546, 2147483545

# snapshot summaries: small, a few keys each (file checksums live in PostgreSQL)
RUN_ID = "animedb.run-id"  # the run whose rows the snapshot added: its exactly-once marker
WINDOW = "animedb.window"
BOUND_TIME = "animedb.bound-time"
MAINTENANCE_ID = "animedb.maintenance-id"  # a rewrite by the exporter's maintenance (no new rows)
# table and namespace properties
SOURCE_TABLE = "animedb.source-table"
KEY_COLUMN = "animedb.key-column"
ROLE = "animedb.role"  # current or changes
SYSTEM_IDENTIFIER = "animedb.source-system-identifier"
SOURCE_DATABASE = "animedb.source-database"
LAKE_KEY = "animedb.lake"  # the watermark key of the one lake a namespace holds (catalog.Lake.key)

# Iceberg's own table properties that keep a table's history bounded; every engine's maintenance
# (Spark's procedures, Glue's optimizers) reads the same ones
DELETE_AFTER_COMMIT = "write.metadata.delete-after-commit.enabled"
PREVIOUS_VERSIONS = "write.metadata.previous-versions-max"
MAX_SNAPSHOT_AGE = "history.expire.max-snapshot-age-ms"
MIN_SNAPSHOTS = "history.expire.min-snapshots-to-keep"
TARGET_FILE_SIZE = "write.target-file-size-bytes"
MIN_MANIFESTS_TO_MERGE = "commit.manifest.min-count-to-merge"
MANIFEST_TARGET_SIZE = "commit.manifest.target-size-bytes"
PREVIOUS_VERSIONS_KEPT = 10  # metadata files kept besides the current one
MANIFESTS_TO_MERGE = 4  # a snapshot's data (or delete) manifests merged into one at this count
MANIFEST_TARGET_BYTES = 8 * 1024 * 1024  # manifests this large are left as they are

_TAG = re.compile(r"run-([0-9]{1,18})")
_RUN_FOLDER = re.compile(r"/data/run-([0-9]{12})/[^/]+$")


def tag(run_id: int) -> str:
    return f"run-{run_id}"


def tag_run(name: str) -> int | None:
    """The run a tag name marks, None for a ref that is no run tag."""
    match = _TAG.fullmatch(name)
    return int(match.group(1)) if match else None


def run_folder(run_id: int) -> str:
    """Where a run's files go inside a table's folder: only run id and table name it."""
    return f"data/run-{run_id:012d}"


def run_location(table_location: str, run_id: int, name: str = "") -> str:
    """The location of a run's file `name` in a table (without a name, of its folder)."""
    folder = f"{table_location.rstrip('/')}/{run_folder(run_id)}"
    return f"{folder}/{name}" if name else folder


def run_of_location(location: str) -> int | None:
    """The run whose folder holds a data file, None for a file no run wrote."""
    match = _RUN_FOLDER.search(location)
    return int(match.group(1)) if match else None


def maintenance_location(table_location: str, job: str, name: str = "") -> str:
    """Where one maintenance rewrite puts its files: a folder of its own, never reused, so that
    nothing ever cleans a folder whose files a commit may already reference."""
    folder = f"{table_location.rstrip('/')}/data/rewrite-{job}"
    return f"{folder}/{name}" if name else folder


def new_job() -> str:
    return uuid.uuid4().hex


def history_properties(retention_ms: int, target_file_bytes: int) -> dict[str, str]:
    """The Iceberg properties that bound a table's history and file sizes: old metadata files
    deleted at commit, snapshots kept for the retention, manifests merged, data files of the
    target size. Set on every lake table, and kept up to date by the runs that commit to it."""
    return {
        DELETE_AFTER_COMMIT: "true",
        PREVIOUS_VERSIONS: str(PREVIOUS_VERSIONS_KEPT),
        MAX_SNAPSHOT_AGE: str(retention_ms),
        MIN_SNAPSHOTS: "1",
        TARGET_FILE_SIZE: str(target_file_bytes),
        MIN_MANIFESTS_TO_MERGE: str(MANIFESTS_TO_MERGE),
        MANIFEST_TARGET_SIZE: str(MANIFEST_TARGET_BYTES),
    }
