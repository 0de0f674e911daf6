"""The one module that rests on pyiceberg's private classes (pyiceberg==0.12.0, pinned): every
snapshot the exporter commits is built here, on the narrowest hooks of pyiceberg's snapshot
producer, and committed through the catalog's public `commit_table`.

Why not pyiceberg's public writers: 0.12 writes no delete files (a run adds position deletes);
its transaction recomputes and deep-copies the whole table metadata each time a producer reads
it (about nine copies a commit), so a commit's cost grew with the table's history; and its
retry after a concurrent commit drops every ref update staged beside the snapshot (the run's
tag) and re-bases a fast append without checking what it deletes. So the producer below is
given the table as loaded (no copies), builds one snapshot from three hooks, and the caller
(exporter/snapshots.py) owns validation and retries.

The hooks, and what each one is for:
- `_existing_manifests`: the parent's manifests, less the files the snapshot removes (a
  manifest holding one is rewritten without it);
- `_deleted_entries`: the removed data files, as DELETED entries;
- `_process_manifests`: the manifest of new (and removed) delete files, then small manifests
  merged once there are `commit.manifest.min-count-to-merge` of a kind;
- `_summary`: counts delete files among the added and removed ones.

The catalog's side (`lean`): the lake's SQL or Glue catalog stages a commit without parsing
again a metadata version this process already holds and without pyiceberg's deep copy of the
staged metadata, both of which cost as much as the retention window is long. It overrides
`_update_and_stage_table` and the catalog's conversion of its record into a table.

tests/test_lake_hooks.py checks each hook's signature and behaviour against the installed
pyiceberg and fails loudly when a new version changes them underneath.
"""

from __future__ import annotations

import contextlib
import datetime
import functools
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pyiceberg.catalog import ICEBERG, METADATA_LOCATION, TABLE_TYPE, Catalog, MetastoreCatalog
from pyiceberg.manifest import (
    DataFile,
    DataFileContent,
    ManifestContent,
    ManifestEntry,
    ManifestEntryStatus,
    ManifestFile,
    ManifestWriter,
    ManifestWriterV2,
)
from pyiceberg.table import StagedTable, Table, Transaction
from pyiceberg.table.locations import load_location_provider
from pyiceberg.table.metadata import TableMetadata
from pyiceberg.table.snapshots import Operation, Summary
from pyiceberg.table.update import (
    AssertTableUUID,
    TableRequirement,
    TableUpdate,
    _apply_table_update,
    _TableMetadataUpdateContext,
    _update_table_metadata_log,
)
from pyiceberg.table.update.snapshot import _SnapshotProducer
from pyiceberg.typedef import EMPTY_DICT, Identifier, Properties
from pyiceberg.utils.datetime import datetime_to_millis
from pyiceberg.utils.properties import property_as_bool, property_as_int

from exporter import layout

if TYPE_CHECKING:
    from pyiceberg.catalog.sql import IcebergTables
    from pyiceberg.io import FileIO


class Conflict(Exception):
    """The table no longer holds a file the snapshot was to remove: another writer changed it."""


class Stale(Exception):
    """Updates that no longer apply to the table as the catalog has it now: another writer
    removed a snapshot or ref they name between our read and our commit."""


class _Base(Transaction):
    """The state a producer builds on: the table as loaded. Nothing is ever staged in it, so
    its metadata is the table's own, not a deep copy made at every read."""

    @property
    def table_metadata(self) -> TableMetadata:
        return self._table.metadata


class _DeleteManifestWriter(ManifestWriterV2):
    """pyiceberg writes data manifests only; position-delete files need a delete manifest."""

    def content(self) -> ManifestContent:
        return ManifestContent.DELETES

    @property
    def _meta(self) -> dict[str, str]:
        return {**super()._meta, "content": "deletes"}


@dataclass
class _Removal:
    """The parent's manifests less the removed files, and what the removal records."""

    kept: list[ManifestFile]
    deleted_data: list[ManifestEntry]
    deleted_deletes: list[ManifestEntry]


class _Producer(_SnapshotProducer["_Producer"]):
    """One snapshot: data and delete files added, files (of either kind) removed."""

    def __init__(
        self,
        table: Table,
        operation: Operation,
        summary: dict[str, str],
        data: Iterable[DataFile],
        deletes: Iterable[DataFile],
        removed: Iterable[DataFile],
    ) -> None:
        super().__init__(operation, _Base(table), table.io, snapshot_properties=summary)
        self._added_data_files = list(data)
        self._new_deletes = list(deletes)
        self._removed = {f.file_path: f for f in removed}

    def _writer(self, content: ManifestContent, spec_id: int) -> ManifestWriter:
        if content == ManifestContent.DATA:
            return self.new_manifest_writer(self.spec(spec_id))
        metadata = self._transaction.table_metadata
        return _DeleteManifestWriter(
            self.spec(spec_id),
            metadata.schema(),
            self.new_manifest_output(),
            self._snapshot_id,
            self._compression,
        )

    @functools.cached_property
    def _removal(self) -> _Removal:
        parent = (
            self._transaction.table_metadata.snapshot_by_id(self._parent_snapshot_id)
            if self._parent_snapshot_id is not None
            else None
        )
        removal = _Removal([], [], [])
        if parent is None:
            if self._removed:
                raise Conflict(f"the table has no snapshot, so not {next(iter(self._removed))}")
            return removal
        found: set[str] = set()
        for manifest in parent.manifests(self._io):
            if not self._removed:
                if manifest.has_added_files() or manifest.has_existing_files():
                    removal.kept.append(manifest)
                continue
            entries = manifest.fetch_manifest_entry(self._io, discard_deleted=True)
            gone = [e for e in entries if e.data_file.file_path in self._removed]
            if not gone:
                if entries:
                    removal.kept.append(manifest)
                continue
            found.update(e.data_file.file_path for e in gone)
            for entry in gone:
                deleted = ManifestEntry.from_args(
                    status=ManifestEntryStatus.DELETED,
                    snapshot_id=self._snapshot_id,
                    sequence_number=entry.sequence_number,
                    file_sequence_number=entry.file_sequence_number,
                    data_file=entry.data_file,
                )
                if entry.data_file.content == DataFileContent.DATA:
                    removal.deleted_data.append(deleted)
                else:
                    removal.deleted_deletes.append(deleted)
            rest = [e for e in entries if e.data_file.file_path not in self._removed]
            if rest:
                with self._writer(manifest.content, manifest.partition_spec_id) as writer:
                    for entry in rest:
                        writer.existing(entry)
                removal.kept.append(writer.to_manifest_file())
        missing = sorted(set(self._removed) - found)
        if missing:
            raise Conflict(f"{len(missing)} file(s) to replace are no longer live: {missing[0]}")
        return removal

    # --- the hooks ------------------------------------------------------------------------

    def _existing_manifests(self) -> list[ManifestFile]:
        return self._removal.kept

    def _deleted_entries(self) -> list[ManifestEntry]:
        return self._removal.deleted_data

    def _process_manifests(self, manifests: list[ManifestFile]) -> list[ManifestFile]:
        manifests = list(manifests)
        if self._new_deletes or self._removal.deleted_deletes:
            spec_id = self._transaction.table_metadata.default_spec_id
            with self._writer(ManifestContent.DELETES, spec_id) as writer:
                for delete in self._new_deletes:
                    writer.add(
                        ManifestEntry.from_args(
                            status=ManifestEntryStatus.ADDED,
                            snapshot_id=self._snapshot_id,
                            data_file=delete,
                        )
                    )
                for entry in self._removal.deleted_deletes:
                    writer.add_entry(entry)
            manifests.append(writer.to_manifest_file())
        return self._merged(manifests)

    def _summary(self, snapshot_properties: dict[str, str] | None = None) -> Summary:
        # the collector counts each file by its content: delete files among the added, removed
        # files of both kinds among the deleted
        added = len(self._added_data_files)
        self._added_data_files.extend(self._new_deletes)
        removal = self._removal  # the removed files as the manifests have them (with a spec)
        self._deleted_data_files = {
            e.data_file for e in removal.deleted_data + removal.deleted_deletes
        }
        try:
            return super()._summary(snapshot_properties or {})
        finally:
            del self._added_data_files[added:]
            self._deleted_data_files = set()

    # --- manifest merging -----------------------------------------------------------------

    def _merged(self, manifests: list[ManifestFile]) -> list[ManifestFile]:
        """Small manifests of one kind merged into one once there are enough of them, so that
        planning a read opens a few manifests, not one per commit ever made."""
        properties = self._transaction.table_metadata.properties
        if not property_as_bool(properties, "commit.manifest-merge.enabled", True):
            return manifests
        min_count = property_as_int(
            properties, layout.MIN_MANIFESTS_TO_MERGE, layout.MANIFESTS_TO_MERGE
        )
        target = property_as_int(
            properties, layout.MANIFEST_TARGET_SIZE, layout.MANIFEST_TARGET_BYTES
        )
        assert min_count is not None and target is not None
        groups: dict[tuple[ManifestContent, int], list[ManifestFile]] = defaultdict(list)
        for manifest in manifests:
            groups[(manifest.content, manifest.partition_spec_id)].append(manifest)
        out: list[ManifestFile] = []
        for (content, spec_id), group in groups.items():
            small = [m for m in group if m.manifest_length < target]
            if len(group) < min_count or len(small) < 2:
                out.extend(group)
                continue
            out.extend(m for m in group if m.manifest_length >= target)
            with self._writer(content, spec_id) as writer:
                for manifest in small:
                    for entry in manifest.fetch_manifest_entry(self._io, discard_deleted=False):
                        ours = entry.snapshot_id == self._snapshot_id
                        if entry.status == ManifestEntryStatus.DELETED:
                            if ours:  # only this snapshot's removals are recorded again
                                writer.delete(entry)
                        elif entry.status == ManifestEntryStatus.ADDED and ours:
                            writer.add(entry)
                        else:
                            writer.existing(entry)
            out.append(writer.to_manifest_file())
        return out


@dataclass
class SnapshotBuild:
    """A snapshot written (its manifests and manifest list are in place) and not committed."""

    snapshot_id: int
    updates: tuple[TableUpdate, ...]
    requirements: tuple[TableRequirement, ...]
    _producer: _Producer

    def discard(self) -> None:
        """Delete the manifests and manifest list of a snapshot that will never be committed."""
        self._producer._clean_all_uncommitted()


def build_snapshot(
    table: Table,
    operation: Operation,
    summary: dict[str, str],
    data: Iterable[DataFile] = (),
    deletes: Iterable[DataFile] = (),
    removed: Iterable[DataFile] = (),
) -> SnapshotBuild:
    """Write one snapshot on the table's current state: its new manifests and manifest list.
    The updates add it and move main to it; the requirements hold main where it was, so the
    catalog refuses the commit if another writer moved it meanwhile. Raises Conflict when a
    file to remove is not live any more."""
    producer = _Producer(table, operation, summary, data, deletes, removed)
    try:
        updates, requirements = producer._commit()
    except BaseException:
        producer._clean_all_uncommitted()
        raise
    requirements = (*requirements, AssertTableUUID(uuid=table.metadata.table_uuid))
    return SnapshotBuild(producer.snapshot_id, updates, requirements, producer)


def commit(
    table: Table, updates: tuple[TableUpdate, ...], requirements: tuple[TableRequirement, ...]
) -> None:
    """Commit updates through the catalog; the table then holds the new metadata. The metadata
    files that fell out of its log are deleted when the table says so
    (write.metadata.delete-after-commit.enabled). Raises pyiceberg's CommitFailedException when
    a requirement no longer holds, Stale when an update no longer applies (the catalog applies
    them to its newest metadata): nothing was committed then."""
    try:
        response = table.catalog.commit_table(table, requirements, updates)
    except ValueError as exc:  # pyiceberg's word for an update that does not apply
        raise Stale(str(exc).splitlines()[0][:300]) from exc
    base = table.metadata
    table.metadata = response.metadata
    table.metadata_location = response.metadata_location
    if property_as_bool(response.metadata.properties, layout.DELETE_AFTER_COMMIT, False):
        kept = {entry.metadata_file for entry in response.metadata.metadata_log}
        for entry in base.metadata_log:
            if entry.metadata_file not in kept:
                _delete_quietly(table, entry.metadata_file)


def _delete_quietly(table: Table, location: str) -> None:
    """A metadata file nothing reads any more: gone now, or by the orphan sweep later (a file
    left behind is the sweep's, not an error)."""
    with contextlib.suppress(Exception):
        table.io.delete(location)


# --- the catalog's side of a commit -------------------------------------------------------------

PARSED_KEPT = 64  # metadata versions this process keeps parsed (a run touches a few tables)


class _LeanCommits(MetastoreCatalog):
    """Mixed into the lake's SQL or Glue catalog (`lean`). pyiceberg's `commit_table` loads the
    table's newest metadata again (a parse of the whole file) and deep-copies the metadata it
    stages; both grow with the snapshots and tags of the retention window (profiled at 170
    snapshots: 10 ms parsing and 27 ms copying a commit). Here a metadata version this process has
    already read or written is not parsed again (its location names one immutable file), and the
    staged metadata is not copied: every one of pyiceberg's updates copies what it changes and
    changes nothing in place, so the new version may share what it keeps with the old one. What
    the catalog checks and writes is unchanged: requirements against its newest metadata, the
    new metadata file, then the pointer swap that refuses a concurrent commit."""

    _parsed: dict[str, TableMetadata]

    def _load_file_io(
        self, properties: Properties = EMPTY_DICT, location: str | None = None
    ) -> FileIO:
        # pyiceberg lets a table's properties override the catalog's for its FileIO (the class
        # to import, its endpoint, the lake's roots): they are the lake's, which anyone who may
        # edit the catalog can set, so here the catalog's own configuration alone counts
        return super()._load_file_io(EMPTY_DICT, location)

    def _remember(self, location: str, metadata: TableMetadata) -> None:
        if len(self._parsed) >= PARSED_KEPT:
            del self._parsed[next(iter(self._parsed))]
        self._parsed[location] = metadata

    def _known(self, identifier: Identifier, location: str) -> Table | None:
        metadata = self._parsed.get(location)
        if metadata is None:
            return None
        io = self._load_file_io(metadata.properties, location)
        return Table(identifier, metadata, location, io, catalog=self)

    def _update_and_stage_table(
        self,
        current_table: Table | None,
        table_identifier: Identifier,
        requirements: tuple[TableRequirement, ...],
        updates: tuple[TableUpdate, ...],
    ) -> StagedTable:
        if current_table is None:  # a new table: pyiceberg's own path, fully validated
            staged: StagedTable = super()._update_and_stage_table(
                current_table, table_identifier, requirements, updates
            )
            return staged
        base = current_table.metadata
        for requirement in requirements:
            requirement.validate(base)
        context = _TableMetadataUpdateContext()
        metadata = base
        for update in updates:
            metadata = _apply_table_update(update, metadata, context)
        if context.has_changes():
            metadata = _update_table_metadata_log(
                metadata, current_table.metadata_location, base.last_updated_ms
            )
            if metadata.last_updated_ms == base.last_updated_ms:
                now = datetime_to_millis(datetime.datetime.now().astimezone())
                metadata = metadata.model_copy(update={"last_updated_ms": now})
        metadata.spec().check_compatible(metadata.schema())
        metadata.sort_order().check_compatible(metadata.schema())
        version = self._parse_metadata_version(current_table.metadata_location) + 1
        provider = load_location_provider(metadata.location, metadata.properties)
        location = provider.new_table_metadata_file_location(version)
        self._remember(location, metadata)
        return StagedTable(
            identifier=table_identifier,
            metadata=metadata,
            metadata_location=location,
            io=self._load_file_io(properties=metadata.properties, location=location),
            catalog=self,
        )


@functools.cache
def _lean_sql() -> type[Catalog]:
    from pyiceberg.catalog.sql import SqlCatalog  # SQLAlchemy: not in the Lambda layer

    class _LeanSqlCatalog(_LeanCommits, SqlCatalog):
        def _convert_orm_to_iceberg(self, orm_table: IcebergTables) -> Table:
            namespace = Catalog.identifier_to_tuple(orm_table.table_namespace)
            location = orm_table.metadata_location or ""
            known = self._known((*namespace, orm_table.table_name), location)
            if known is None:
                known = super()._convert_orm_to_iceberg(orm_table)
                self._remember(known.metadata_location, known.metadata)
            return known

    return _LeanSqlCatalog


@functools.cache
def _lean_glue() -> type[Catalog]:
    from pyiceberg.catalog.glue import GlueCatalog  # boto3: imported only for a Glue catalog

    class _LeanGlueCatalog(_LeanCommits, GlueCatalog):
        def _convert_glue_to_iceberg(self, glue_table: Any) -> Table:
            parameters = glue_table.get("Parameters") or {}
            known = None
            if str(parameters.get(TABLE_TYPE, "")).lower() == ICEBERG:  # else pyiceberg refuses
                identifier = (glue_table.get("DatabaseName"), glue_table.get("Name"))
                known = self._known(identifier, parameters.get(METADATA_LOCATION) or "")
            if known is None:
                known = super()._convert_glue_to_iceberg(glue_table)
                self._remember(known.metadata_location, known.metadata)
            return known

    return _LeanGlueCatalog


def lean(catalog: Catalog) -> Catalog:
    """The lake's catalog with lean commits when it is pyiceberg's SQL or Glue catalog (the two
    the exporter opens by default); any other kind is returned as it is."""
    kind = (type(catalog).__module__, type(catalog).__name__)
    if kind == ("pyiceberg.catalog.sql", "SqlCatalog"):
        lean_kind = _lean_sql()
    elif kind == ("pyiceberg.catalog.glue", "GlueCatalog"):
        lean_kind = _lean_glue()
    else:
        return catalog
    catalog.__class__ = lean_kind
    catalog._parsed = {}  # type: ignore[attr-defined]
    return catalog


def hooks() -> dict[str, Any]:
    """The private names this module overrides or calls, for the test that checks them."""
    from pyiceberg.catalog.sql import SqlCatalog

    return {
        "producer": _SnapshotProducer,
        "hooks": ("_existing_manifests", "_deleted_entries", "_process_manifests", "_summary"),
        "calls": ("_commit", "_clean_all_uncommitted", "new_manifest_writer", "spec"),
        "catalog": (SqlCatalog, "_update_and_stage_table", "_convert_orm_to_iceberg"),
        "catalog calls": ("_parse_metadata_version", "_load_file_io"),
    }
