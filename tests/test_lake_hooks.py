"""exporter/pyiceberg_hooks.py rests on pyiceberg's private snapshot producer: this fails loudly
when the pinned version changes underneath (a hook renamed, a signature changed, a copy added),
and checks what each hook does on a real table in a SQLite catalog."""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

import duckdb
import pytest
from pyiceberg.catalog import Catalog, load_catalog
from pyiceberg.exceptions import CommitFailedException
from pyiceberg.manifest import DataFile, DataFileContent, ManifestContent
from pyiceberg.schema import Schema
from pyiceberg.table import Table, Transaction
from pyiceberg.table.snapshots import Operation
from pyiceberg.table.update import AddSnapshotUpdate
from pyiceberg.types import LongType, NestedField, StringType

from exporter import datafiles, duck, layout, live, pyiceberg_hooks
from exporter.pyiceberg_hooks import Conflict
from exporter.storage import Storage

SCHEMA = Schema(
    NestedField(1, "id", LongType(), required=False),
    NestedField(2, "name", StringType(), required=False),
)


def test_the_private_names_are_there_as_the_hooks_expect() -> None:
    found = pyiceberg_hooks.hooks()
    producer = found["producer"]
    for name in (*found["hooks"], *found["calls"]):
        assert callable(getattr(producer, name, None)), f"pyiceberg dropped {name}"
    assert list(inspect.signature(producer.__init__).parameters)[:4] == [
        "self",
        "operation",
        "transaction",
        "io",
    ]
    assert "snapshot_properties" in inspect.signature(producer.__init__).parameters
    assert list(inspect.signature(producer._process_manifests).parameters) == [
        "self",
        "manifests",
    ]
    assert isinstance(inspect.getattr_static(Transaction, "table_metadata"), property)
    catalog, *overridden = found["catalog"]
    for name in (*overridden, *found["catalog calls"]):
        assert callable(getattr(catalog, name, None)), f"pyiceberg dropped {name}"
    assert list(inspect.signature(catalog._update_and_stage_table).parameters) == [
        "self",
        "current_table",
        "table_identifier",
        "requirements",
        "updates",
    ]
    assert list(inspect.signature(catalog._convert_orm_to_iceberg).parameters) == [
        "self",
        "orm_table",
    ]


@pytest.fixture
def table(tmp_path: Path) -> Table:
    catalog: Catalog = pyiceberg_hooks.lean(
        load_catalog(
            "hooks",
            type="sql",
            uri=f"sqlite:///{tmp_path / 'catalog.db'}",
            warehouse=str(tmp_path),
            **{"py-io-impl": "exporter.fileio.LakeFileIO"},
        )
    )
    catalog.create_namespace("ns")
    return catalog.create_table(
        "ns.t", SCHEMA, properties={layout.MIN_MANIFESTS_TO_MERGE: "4", "format-version": "2"}
    )


def data_file(table: Table, name: str, ids: range) -> DataFile:
    path = Path(table.location()) / "data" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect()
    con.execute(
        f"copy (select i::bigint as id, 'n' || i as name from range({ids.start}, {ids.stop}) t(i))"
        f" to '{path}' (format parquet, field_ids {{'id': 1, 'name': 2}})"
    )
    return datafiles.data_file(con, str(path), str(path), path.stat().st_size, table.schema())


def delete_file(table: Table, name: str, target: DataFile, positions: list[int]) -> DataFile:
    path = Path(table.location()) / "data" / name
    con = duckdb.connect()
    values = ", ".join(f"({duck.quote(target.file_path)}, {p})" for p in positions)
    con.execute(
        f"copy (select * from (values {values}) v(file_path, pos)) to '{path}'"
        f" (format parquet, field_ids {{'file_path': {layout.FILE_PATH_ID},"
        f" 'pos': {layout.POS_ID}}})"
    )
    return datafiles.data_file(
        con,
        str(path),
        str(path),
        path.stat().st_size,
        table.schema(),
        content=DataFileContent.POSITION_DELETES,
    )


def commit(table: Table, operation: Operation, **files: list[DataFile]) -> None:
    built = pyiceberg_hooks.build_snapshot(table, operation, {"k": "v"}, **files)
    pyiceberg_hooks.commit(table, built.updates, built.requirements)


def rows(table: Table) -> int:
    con = duckdb.connect()
    files = live.live_files(table)
    query = live.rows_sql(con, Storage(table.location()), table.schema(), files)
    found = con.execute(f"select count(*) from ({query})").fetchone()
    assert found is not None
    return int(found[0])


def test_adds_deletes_and_removes_in_one_snapshot_each(table: Table) -> None:
    first = data_file(table, "a.parquet", range(0, 10))
    commit(table, Operation.APPEND, data=[first])
    second = data_file(table, "b.parquet", range(10, 15))
    deletes = delete_file(table, "d.parquet", first, [0, 1, 2])
    commit(table, Operation.OVERWRITE, data=[second], deletes=[deletes])
    snapshot = table.current_snapshot()
    assert snapshot is not None and snapshot.summary is not None
    summary = snapshot.summary.additional_properties
    assert summary["k"] == "v"
    assert summary["added-delete-files"] == "1" and summary["added-position-deletes"] == "3"
    assert summary["total-records"] == "15" and summary["total-position-deletes"] == "3"
    contents = {m.content for m in snapshot.manifests(table.io)}
    assert contents == {ManifestContent.DATA, ManifestContent.DELETES}
    assert rows(table) == 12
    # a rewrite: both data files and the delete file out, one file of the 12 live rows in
    merged = data_file(table, "c.parquet", range(3, 15))
    commit(table, Operation.OVERWRITE, data=[merged], removed=[first, second, deletes])
    files = live.live_files(table)
    assert [f.file_path for f in files.data] == [merged.file_path] and not files.deletes
    snapshot = table.current_snapshot()
    assert snapshot is not None and snapshot.summary is not None
    summary = snapshot.summary.additional_properties
    assert summary["total-records"] == "12" and summary["total-delete-files"] == "0"
    assert summary["removed-delete-files"] == "1" and summary["deleted-data-files"] == "2"
    assert rows(table) == 12


def test_a_file_no_longer_live_is_a_conflict(table: Table) -> None:
    first = data_file(table, "a.parquet", range(0, 10))
    commit(table, Operation.APPEND, data=[first])
    ghost = data_file(table, "ghost.parquet", range(0, 1))
    with pytest.raises(Conflict):
        pyiceberg_hooks.build_snapshot(table, Operation.OVERWRITE, {}, removed=[ghost])
    assert [f.file_path for f in live.live_files(table).data] == [first.file_path]


def test_a_commit_on_a_moved_main_is_refused(table: Table) -> None:
    commit(table, Operation.APPEND, data=[data_file(table, "a.parquet", range(0, 10))])
    stale = table.catalog.load_table("ns.t")
    commit(table, Operation.APPEND, data=[data_file(table, "b.parquet", range(10, 20))])
    built = pyiceberg_hooks.build_snapshot(
        stale, Operation.APPEND, {}, data=[data_file(stale, "c.parquet", range(20, 30))]
    )
    with pytest.raises(CommitFailedException):
        pyiceberg_hooks.commit(stale, built.updates, built.requirements)
    built.discard()
    [added] = [u for u in built.updates if isinstance(u, AddSnapshotUpdate)]
    assert not Path(added.snapshot.manifest_list).exists()
    table.refresh()
    assert rows(table) == 20


def test_manifests_merge_at_the_minimum_count(table: Table) -> None:
    for i in range(10):
        commit(table, Operation.APPEND, data=[data_file(table, f"{i}.parquet", range(i, i + 1))])
        snapshot = table.current_snapshot()
        assert snapshot is not None
        assert len(snapshot.manifests(table.io)) < 4 + 1, i  # merged at 4
    assert rows(table) == 10


def counting(monkeypatch: pytest.MonkeyPatch, table: Table) -> dict[str, int]:
    """Deep copies of the table's metadata, and metadata files parsed, from now on."""
    from pyiceberg.serializers import FromInputFile

    counts = {"copies": 0, "parses": 0}
    kind = type(table.metadata)
    copy, parse = kind.__deepcopy__, FromInputFile.table_metadata

    def copied(self: Any, memo: Any = None) -> Any:
        counts["copies"] += 1
        return copy(self, memo)

    def parsed(*args: object, **kwargs: object) -> object:
        counts["parses"] += 1
        return parse(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(kind, "__deepcopy__", copied)
    monkeypatch.setattr(FromInputFile, "table_metadata", staticmethod(parsed))
    return counts


def test_a_commit_neither_copies_nor_parses_the_metadata_again(
    table: Table, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """pyiceberg's transaction deep-copies the metadata at every read, and its catalog parses
    the newest metadata again and deep-copies what it stages: costs that grow with the
    retention window. The hooks' producer reads the table's own metadata, and the lean catalog
    knows the version it read; what it writes is what pyiceberg's own catalog reads back."""
    counts = counting(monkeypatch, table)
    first = data_file(table, "a.parquet", range(0, 10))
    built = pyiceberg_hooks.build_snapshot(table, Operation.APPEND, {"k": "v"}, data=[first])
    pyiceberg_hooks.commit(table, built.updates, built.requirements)
    assert counts == {"copies": 0, "parses": 0}
    plain = load_catalog(
        "hooks", type="sql", uri=f"sqlite:///{tmp_path / 'catalog.db'}", warehouse=str(tmp_path)
    )
    assert type(plain).__name__ == "SqlCatalog"
    read_back = plain.load_table("ns.t")
    assert read_back.metadata_location == table.metadata_location
    assert read_back.metadata.model_dump() == table.metadata.model_dump()
    assert rows(read_back) == 10
    # pyiceberg's own catalog, for the record: it copies what it stages
    second = data_file(table, "b.parquet", range(10, 20))
    built = pyiceberg_hooks.build_snapshot(read_back, Operation.APPEND, {}, data=[second])
    before = counts["copies"]
    pyiceberg_hooks.commit(read_back, built.updates, built.requirements)
    assert counts["copies"] > before


def test_the_lean_catalog_reads_another_writers_version(table: Table, tmp_path: Path) -> None:
    """A version the lean catalog has not seen is parsed, so a commit is checked against the
    newest metadata, whoever wrote it."""
    plain = load_catalog(
        "hooks", type="sql", uri=f"sqlite:///{tmp_path / 'catalog.db'}", warehouse=str(tmp_path)
    )
    theirs = plain.load_table("ns.t")
    commit(theirs, Operation.APPEND, data=[data_file(theirs, "a.parquet", range(0, 5))])
    ours = table.catalog.load_table("ns.t")
    assert ours.metadata_location == theirs.metadata_location
    commit(ours, Operation.APPEND, data=[data_file(ours, "b.parquet", range(5, 10))])
    with pytest.raises(CommitFailedException):  # `table` still holds the version before theirs
        commit(table, Operation.APPEND, data=[data_file(table, "c.parquet", range(10, 12))])
    assert rows(plain.load_table("ns.t")) == 10
