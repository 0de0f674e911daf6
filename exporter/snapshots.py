"""Commits to the lake's tables, safe beside other writers, and the history they leave.

Every commit is optimistic: built on the table as loaded, committed only if main has not moved
(the catalog checks), and otherwise built again on the new state, up to a few times. What a
commit adds never depends on another writer's files except where it must (a run's position
deletes name rows of the live files, so they are computed again; a rewrite names the files it
replaces, and gives up if one is gone). Each commit is exactly-once by a marker in its snapshot's
summary, stored atomically with it (with the run's tag, for a run): a run's id, or a rewrite's
job id. `committed` finds it by walking main's history back to the run's start, so a crash after
any commit is resumed without committing twice, even where a tag went missing.

Run tags: a run tags the snapshot it adds to a table, `run-<id>`, in the same commit, and "the
lake as of run N" is the newest run tag at or before N in every table (a table the run did not
change has no commit and no tag: its newest earlier tag still describes it). Tags age with
Iceberg's own `max-ref-age-ms`, which every engine's snapshot expiry honours: a table's newest
tag has none (it describes the table until the next run changes it), and when a commit adds a
newer one, the previous gets an age that ends one retention period from now. So every run of the
last retention period can be read in every table, and nothing older holds snapshots back.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from pyiceberg.exceptions import CommitFailedException
from pyiceberg.manifest import DataFile
from pyiceberg.table import Table
from pyiceberg.table.metadata import TableMetadata
from pyiceberg.table.refs import MAIN_BRANCH, SnapshotRefType
from pyiceberg.table.snapshots import Operation, Snapshot
from pyiceberg.table.update import (
    AssertRefSnapshotId,
    AssertTableUUID,
    RemoveSnapshotRefUpdate,
    RemoveSnapshotsUpdate,
    SetPropertiesUpdate,
    SetSnapshotRefUpdate,
    TableRequirement,
    TableUpdate,
)

from exporter import layout, pyiceberg_hooks
from exporter.catalog import table_name
from exporter.errors import ExportError
from exporter.pyiceberg_hooks import Conflict

__all__ = ["Change", "Conflict", "commit", "committed"]

ATTEMPTS = 8  # commits tried against a table other writers keep moving, before giving up
CLOCK_SKEW_MS = 10 * 60 * 1000  # how far a writer's clock may be off PostgreSQL's


def now_ms() -> int:
    return int(time.time() * 1000)


@dataclass
class Change:
    """What one commit does to a table, built on its current state."""

    summary: dict[str, str]
    data: list[DataFile] = field(default_factory=list)
    deletes: list[DataFile] = field(default_factory=list)
    removed: list[DataFile] = field(default_factory=list)
    # the files written for this change alone, deleted when it will never be committed
    discard: Callable[[], None] | None = None

    @property
    def operation(self) -> Operation:
        return Operation.OVERWRITE if self.deletes or self.removed else Operation.APPEND


@dataclass(frozen=True)
class Marker:
    """The summary property that makes a commit exactly-once."""

    key: str
    value: str

    @classmethod
    def run(cls, run_id: int) -> Marker:
        return cls(layout.RUN_ID, str(run_id))

    @classmethod
    def job(cls, job: str) -> Marker:
        return cls(layout.MAINTENANCE_ID, job)


def _snapshots(metadata: TableMetadata) -> dict[int, Snapshot]:
    return {s.snapshot_id: s for s in metadata.snapshots}


def ancestry(metadata: TableMetadata) -> Iterator[Snapshot]:
    """Main's snapshots, newest first, back to the oldest one the table still has."""
    by_id = _snapshots(metadata)
    snapshot = by_id.get(metadata.current_snapshot_id or -1)
    while snapshot is not None:
        yield snapshot
        snapshot = by_id.get(snapshot.parent_snapshot_id or -1)


def committed(table: Table, marker: Marker, since_ms: int) -> Snapshot | None:
    """The snapshot on main carrying the marker, among those committed since `since_ms` (when
    the run or job began, less a clock skew), as far back as the table's history still goes;
    None when there is none."""
    for snapshot in ancestry(table.metadata):
        summary = snapshot.summary.additional_properties if snapshot.summary else {}
        if summary.get(marker.key) == marker.value:
            return snapshot
        if snapshot.timestamp_ms < since_ms - CLOCK_SKEW_MS:
            return None
    return None


def no_deletes_since(table: Table, base: int | None) -> None:
    """Raise Conflict unless every commit made on main since snapshot `base` only added data
    files: a rewrite read its files' live rows at `base`, so a delete committed since (a run's
    position deletes, another engine's) would come back to life in what it wrote, and a file
    another writer removed since would be removed twice."""
    for snapshot in ancestry(table.metadata):
        if snapshot.snapshot_id == base:
            return
        summary = snapshot.summary
        props = summary.additional_properties if summary is not None else {}
        if (
            summary is None
            or summary.operation != Operation.APPEND
            or any(
                int(props.get(key, "0") or 0)
                for key in ("added-delete-files", "deleted-data-files", "removed-delete-files")
            )
        ):
            raise Conflict(
                f"snapshot {snapshot.snapshot_id} ({summary.operation.value if summary else '?'})"
                " changed rows or files since the rewrite read them"
            )
    if base is not None:
        raise Conflict(f"snapshot {base}, which the rewrite read, is no longer in the history")


def run_committed(table: Table, run_id: int, since_ms: int) -> Snapshot | None:
    """The snapshot a run committed to the table, by its tag or its marker. Both are stored
    with the snapshot in one commit, so a run without either did not commit there: another
    writer's expiry, which keeps every tagged snapshot, cannot take the evidence away."""
    ref = table.metadata.refs.get(layout.tag(run_id))
    if ref is not None:
        return table.metadata.snapshot_by_id(ref.snapshot_id)
    return committed(table, Marker.run(run_id), since_ms)


BuildChange = Callable[[Table], "Change | None"]


def commit(
    table: Table,
    build: BuildChange,
    *,
    marker: Marker,
    since_ms: int,
    tag: str | None = None,
    retention_ms: int,
    properties: dict[str, str] | None = None,
    expired: Expiry | None = None,
) -> Snapshot | None:
    """Commit what `build` makes of the table's current state, exactly once, with `tag` on the
    new snapshot and `properties` set on the table; with `expired`, the commit also expires
    the history past the retention (what `expire` would, without a commit of its own), and
    adds what it removed to `expired`. After a concurrent commit the table is
    loaded again and `build` called again on the new state. Returns the snapshot (the one a
    crashed earlier try committed, when the marker shows one), or None when `build` finds
    nothing to commit. Raises Conflict when a file the change removes is gone."""
    change = None
    try:
        for attempt in range(ATTEMPTS):
            ref = table.metadata.refs.get(tag) if tag is not None else None
            if ref is not None:
                return table.metadata.snapshot_by_id(ref.snapshot_id)
            done = committed(table, marker, since_ms)
            if done is not None:
                if tag is not None:
                    _commit_refs(table, tag, done.snapshot_id, retention_ms)
                return done
            change = build(table)
            if change is None:
                return None
            summary = {**change.summary, marker.key: marker.value}
            built = pyiceberg_hooks.build_snapshot(
                table, change.operation, summary, change.data, change.deletes, change.removed
            )
            updates: tuple[TableUpdate, ...] = built.updates
            if tag is not None:
                updates += tag_updates(table.metadata, tag, built.snapshot_id, retention_ms)
            updates += _property_updates(table, properties or {})
            expiry = plan_expiry(table.metadata, retention_ms) if expired is not None else Expiry()
            updates += _expiry_updates(expiry)
            try:
                pyiceberg_hooks.commit(table, updates, built.requirements)
            except (CommitFailedException, pyiceberg_hooks.Stale):
                built.discard()  # its manifests; the change's files serve the next attempt
                _backoff(attempt)
                table.refresh()
                continue
            change = None  # committed: its files are the table's now
            if expired is not None:
                expired.tags += expiry.tags
                expired.snapshots += expiry.snapshots
            return table.metadata.snapshot_by_id(built.snapshot_id)
    except Conflict:
        if change is not None and change.discard:
            change.discard()
        raise
    if change is not None and change.discard:
        change.discard()
    raise ExportError(
        f"{table_name(table)} changed under {ATTEMPTS} commits in a row (other writers): "
        "nothing of this one was committed; run again"
    )


def _backoff(attempt: int) -> None:
    time.sleep(min(2.0, 0.05 * 2**attempt) * (1 + random.random()))  # noqa: S311 - jitter


def _property_updates(table: Table, wanted: dict[str, str]) -> tuple[TableUpdate, ...]:
    changed = {k: v for k, v in wanted.items() if table.properties.get(k) != v}
    return (SetPropertiesUpdate(updates=changed),) if changed else ()


def tag_updates(
    metadata: TableMetadata, tag: str, snapshot_id: int, retention_ms: int
) -> tuple[SetSnapshotRefUpdate, ...]:
    """The run tag on a new snapshot, with no age, and an age ending one retention from now for
    every earlier run tag that had none (the table's newest until now)."""
    now = now_ms()
    updates = [_set_tag(tag, snapshot_id)]
    by_id = _snapshots(metadata)
    for name, ref in metadata.refs.items():
        if name == tag or layout.tag_run(name) is None or ref.max_ref_age_ms is not None:
            continue
        snapshot = by_id.get(ref.snapshot_id)
        if snapshot is None:
            continue
        age = max(1, now - snapshot.timestamp_ms + retention_ms)
        updates.append(_set_tag(name, ref.snapshot_id, age))
    return tuple(updates)


def _set_tag(
    name: str, snapshot_id: int, max_ref_age_ms: int | None = None
) -> SetSnapshotRefUpdate:
    return SetSnapshotRefUpdate.model_validate(
        {
            "ref-name": name,
            "type": SnapshotRefType.TAG,
            "snapshot-id": snapshot_id,
            "max-ref-age-ms": max_ref_age_ms,
        }
    )


def _commit_refs(table: Table, tag: str, snapshot_id: int, retention_ms: int) -> None:
    """Tag a snapshot that is committed already (its commit landed, its tag did not)."""
    for _ in range(ATTEMPTS):
        updates = tag_updates(table.metadata, tag, snapshot_id, retention_ms)
        try:
            pyiceberg_hooks.commit(
                table, updates, (AssertTableUUID(uuid=table.metadata.table_uuid),)
            )
            return
        except (CommitFailedException, pyiceberg_hooks.Stale):
            table.refresh()
            if tag in table.metadata.refs:
                return


# --- the lake as of a run ------------------------------------------------------------------


def tagged_runs(table: Table) -> list[int]:
    """The runs tagged in a table, in order."""
    return sorted(r for r in map(layout.tag_run, table.metadata.refs) if r is not None)


def run_snapshot(table: Table, run_id: int) -> Snapshot | None:
    """The snapshot run `run_id` added to the table (by its tag), None when it added none."""
    ref = table.metadata.refs.get(layout.tag(run_id))
    return table.snapshot_by_id(ref.snapshot_id) if ref is not None else None


def as_of_run(table: Table, run_id: int) -> Snapshot | None:
    """The table as of run `run_id`: the snapshot of its newest run tag at or before it. None
    when it has none: the table was made later, or the run is older than the lake keeps."""
    runs = [r for r in tagged_runs(table) if r <= run_id]
    return run_snapshot(table, runs[-1]) if runs else None


def created_after(table: Table, run_id: int) -> bool:
    """Whether the table did not exist yet at run `run_id`: its oldest tag marks its first
    snapshot ever (sequence number 1), made by a later run."""
    runs = tagged_runs(table)
    if not runs or runs[0] <= run_id:
        return False
    first = run_snapshot(table, runs[0])
    return first is not None and (first.sequence_number or 0) <= 1


# --- expiry ----------------------------------------------------------------------------------


@dataclass
class Expiry:
    """What expiring a table's history removes: tags past their age, then the snapshots no
    ref holds that are older than the retention."""

    tags: list[str] = field(default_factory=list)
    snapshots: list[int] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.tags or self.snapshots)


def plan_expiry(metadata: TableMetadata, retention_ms: int, now: int | None = None) -> Expiry:
    """Iceberg's rules, as every engine applies them: a ref (but main) goes once its snapshot is
    older than its max-ref-age-ms; a snapshot goes once it is older than the retention and no
    remaining ref points at it; main's current snapshot always stays."""
    now = now if now is not None else now_ms()
    by_id = _snapshots(metadata)
    expiry = Expiry()
    kept_refs = {}
    for name, ref in metadata.refs.items():
        snapshot = by_id.get(ref.snapshot_id)
        if (
            name != MAIN_BRANCH
            and ref.max_ref_age_ms is not None
            and (snapshot is None or now - snapshot.timestamp_ms > ref.max_ref_age_ms)
        ):
            expiry.tags.append(name)
        else:
            kept_refs[name] = ref
    held = {ref.snapshot_id for ref in kept_refs.values()}
    if metadata.current_snapshot_id is not None:
        held.add(metadata.current_snapshot_id)
    for snapshot in metadata.snapshots:
        if snapshot.snapshot_id not in held and now - snapshot.timestamp_ms > retention_ms:
            expiry.snapshots.append(snapshot.snapshot_id)
    expiry.tags.sort(key=lambda n: (layout.tag_run(n) or 0, n))
    return expiry


def _expiry_updates(expiry: Expiry) -> tuple[TableUpdate, ...]:
    updates: tuple[TableUpdate, ...] = tuple(
        RemoveSnapshotRefUpdate.model_validate({"ref-name": name}) for name in expiry.tags
    )
    if expiry.snapshots:
        updates += (RemoveSnapshotsUpdate.model_validate({"snapshot-ids": expiry.snapshots}),)
    return updates


def expire(table: Table, retention_ms: int) -> Expiry:
    """Expire what `plan_expiry` finds, in one commit that holds main where it was (retried on
    the new state when another writer moved it). The files only those snapshots referenced are
    left to the orphan sweep, which removes them once past its safety age."""
    for attempt in range(ATTEMPTS):
        expiry = plan_expiry(table.metadata, retention_ms)
        if not expiry:
            return expiry
        updates = _expiry_updates(expiry)
        requirements: tuple[TableRequirement, ...] = (
            AssertTableUUID(uuid=table.metadata.table_uuid),
            AssertRefSnapshotId.model_validate(
                {"ref": MAIN_BRANCH, "snapshot-id": table.metadata.current_snapshot_id}
            ),
        )
        try:
            pyiceberg_hooks.commit(table, updates, requirements)
            return expiry
        except (CommitFailedException, pyiceberg_hooks.Stale):
            _backoff(attempt)
            table.refresh()
    raise ExportError(
        f"{table_name(table)} changed under {ATTEMPTS} expiries in a row (other writers): "
        "nothing was expired; run maintenance again"
    )


def oldest_readable_run(tables: list[Table]) -> int | None:
    """The oldest run that every table can still show: each table either has a run tag at or
    before it, or was made after it."""
    oldest: int | None = None
    floor = None
    for table in tables:
        runs = tagged_runs(table)
        if not runs:
            continue
        first = run_snapshot(table, runs[0])
        made_by_it = first is not None and (first.sequence_number or 0) <= 1
        floor = runs[0] if floor is None else min(floor, runs[0])
        if not made_by_it:
            oldest = runs[0] if oldest is None else max(oldest, runs[0])
    return oldest if oldest is not None else floor


def lake_as_of(tables: list[Table], run_id: int) -> dict[str, Snapshot | None]:
    """Every table as of run `run_id` (None for a table made after it); one line naming the
    oldest run the lake can show when that run's history has expired."""
    found: dict[str, Snapshot | None] = {}
    for table in tables:
        snapshot = as_of_run(table, run_id)
        if snapshot is None and not created_after(table, run_id) and tagged_runs(table):
            oldest = oldest_readable_run(tables)
            raise ExportError(
                f"run {run_id} is no longer kept in {table_name(table)}: snapshots and run "
                "tags expire after the retention (ANIMEDB_LAKE_RETENTION); the oldest run "
                f"every table can show is run {oldest}"
            )
        found[table_name(table)] = snapshot
    return found
