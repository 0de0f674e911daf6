"""The lake: a target's storage, its Iceberg catalog and the namespace its tables live in; which
database it mirrors; and each source table's pair of lake tables, created or brought up to the
source's schema.

Catalogs are configured the way pyiceberg's are (.pyiceberg.yaml,
PYICEBERG_CATALOG__<NAME>__<PROPERTY>), under the name ANIMEDB_CATALOG (default `animedb`); with
nothing configured, a local target gets a SQLite catalog in its folder and an s3:// target the
Glue Data Catalog. The warehouse is the target unless configured.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from pyiceberg.catalog import Catalog, load_catalog
from pyiceberg.exceptions import (
    NamespaceAlreadyExistsError,
    NoSuchNamespaceError,
    NoSuchTableError,
)
from pyiceberg.partitioning import PartitionField, PartitionSpec
from pyiceberg.table import Table
from pyiceberg.transforms import DayTransform

from exporter import pyiceberg_hooks, schema
from exporter.errors import ExportError, first_line
from exporter.layout import (
    CHANGES_SUFFIX,
    DELETED_COLUMN,
    EXPORTED_AT_COLUMN,
    KEY_COLUMN,
    ROLE,
    SOURCE_DATABASE,
    SOURCE_TABLE,
    SYSTEM_IDENTIFIER,
)
from exporter.storage import Storage, open_storage

CATALOG_VARIABLE = "ANIMEDB_CATALOG"
NAMESPACE_VARIABLE = "ANIMEDB_NAMESPACE"
DEFAULT_CATALOG = "animedb"
DEFAULT_NAMESPACE = "animedb"
LOCAL_CATALOG_FILE = "catalog.db"  # the serverless default: SQLite inside a local target
FILE_IO = "exporter.fileio.LakeFileIO"


@dataclass
class Lake:
    """An opened target: its storage, its Iceberg catalog and the namespace of its tables."""

    storage: Storage
    catalog: Catalog
    catalog_name: str
    namespace: str

    @property
    def key(self) -> str:
        """The target as PostgreSQL's watermarks and runs name it."""
        suffix = "" if self.namespace == DEFAULT_NAMESPACE else f"#{self.namespace}"
        return f"{self.storage.uri}{suffix}"

    @property
    def uri(self) -> str:
        return self.storage.uri

    def identifier(self, name: str) -> str:
        return f"{self.namespace}.{name}"

    def table_names(self) -> set[str]:
        """The names of the tables in the namespace, from one listing."""
        try:
            return {identifier[-1] for identifier in self.catalog.list_tables(self.namespace)}
        except NoSuchNamespaceError:
            return set()

    def load(self, name: str) -> Table | None:
        """A table of the namespace, None when it does not exist."""
        try:
            return self.catalog.load_table(self.identifier(name))
        except NoSuchTableError:
            return None
        except Exception as exc:
            raise ExportError(
                f"cannot read the metadata of table {self.identifier(name)}: {first_line(exc)} "
                "(a metadata file is missing or corrupted)"
            ) from exc


def open_key(key: str, catalog_name: str | None = None) -> Lake:
    """The lake a watermark key (`Lake.key`) names: its storage, and the key's own namespace
    (the default one when the key names none, whatever ANIMEDB_NAMESPACE says)."""
    uri, _, namespace = key.partition("#")
    return open_lake(open_storage(uri), catalog_name, namespace or DEFAULT_NAMESPACE)


def open_lake(
    storage: Storage, catalog_name: str | None = None, namespace: str | None = None
) -> Lake:
    """The catalog and namespace of a target (see the module's text for which catalog)."""
    name = catalog_name or os.environ.get(CATALOG_VARIABLE) or DEFAULT_CATALOG
    namespace = namespace or os.environ.get(NAMESPACE_VARIABLE) or DEFAULT_NAMESPACE
    if not re.fullmatch(r"[a-z_][a-z0-9_]*", namespace):
        raise ExportError(f"namespace {namespace!r} is not a lowercase name: use e.g. animedb")
    try:
        from pyiceberg.utils.config import Config

        configured = Config().get_catalog_config(name) or {}
    except ValueError as exc:
        raise ExportError(f"pyiceberg configuration of catalog {name!r}: {exc}") from exc
    extra: dict[str, str] = {}
    if "py-io-impl" not in configured:
        extra["py-io-impl"] = FILE_IO
    if "warehouse" not in configured:
        extra["warehouse"] = storage.uri
    if not configured:
        if storage.is_s3:
            extra["type"] = "glue"
        else:
            extra["type"] = "sql"
            extra["uri"] = f"sqlite:///{Path(storage.uri) / LOCAL_CATALOG_FILE}"
    try:
        catalog = pyiceberg_hooks.lean(load_catalog(name, **extra))
    except Exception as exc:  # pyiceberg raises many kinds for a bad configuration
        raise ExportError(
            f"cannot open the Iceberg catalog {name!r} for {storage.uri}: {first_line(exc)} "
            "(check its pyiceberg configuration)"
        ) from exc
    return Lake(storage, catalog, name, namespace)


def claim(lake: Lake, system_identifier: str, database: str, *, create: bool = True) -> bool:
    """Make sure the lake mirrors this database: a new namespace records it (with `create`),
    an existing one must name it. Refused with one line, and nothing in the lake changed,
    otherwise. False when the namespace does not exist (and `create` is off)."""
    mine = {SYSTEM_IDENTIFIER: system_identifier, SOURCE_DATABASE: database}
    # read first: on AWS the namespace (a Glue database) is the stack's, which the exporter
    # may describe and update but not create
    try:
        properties = lake.catalog.load_namespace_properties(lake.namespace)
    except NoSuchNamespaceError:
        if not create:
            return False
        try:
            lake.catalog.create_namespace(lake.namespace, mine)
            return True
        except NamespaceAlreadyExistsError:
            properties = lake.catalog.load_namespace_properties(lake.namespace)
    except Exception as exc:
        raise ExportError(
            f"cannot read namespace {lake.namespace} of {lake.uri}: {first_line(exc)}"
        ) from exc
    theirs = (properties.get(SYSTEM_IDENTIFIER), properties.get(SOURCE_DATABASE))
    if theirs == (system_identifier, database):
        return True
    if theirs == (None, None):
        if lake.catalog.list_tables(lake.namespace):
            raise ExportError(
                f"namespace {lake.namespace} of {lake.uri} holds tables that no "
                "AnimeDataBase export made: export to another target or namespace"
            )
        if not create:
            return False
        lake.catalog.update_namespace_properties(lake.namespace, updates=mine)
        return True
    raise ExportError(
        f"{lake.uri} mirrors database {theirs[1]} of PostgreSQL system {theirs[0]}, not "
        f"{database} of system {system_identifier}: nothing was changed; export this database "
        "to a target of its own"
    )


@dataclass
class Pair:
    """A source table's two lake tables."""

    source: str
    current: Table
    changes: Table

    @property
    def tables(self) -> tuple[Table, Table]:
        return self.current, self.changes


def load_pair(lake: Lake, relname: str) -> tuple[Table | None, Table | None]:
    """A source table's (current, changes) lake tables, None where one does not exist yet."""
    return lake.load(relname), lake.load(relname + CHANGES_SUFFIX)


def ensure_pair(
    lake: Lake,
    relname: str,
    key_column: str,
    evolution: schema.Evolution,
    existing: tuple[Table | None, Table | None],
    properties: dict[str, str],
) -> Pair:
    """Create the two tables of a source table (with `properties` besides the lake's own), or
    bring their schemas up to the source's.

    Both tables give every column the same field id: the current state is the change log's
    schema less `_deleted` (whose id stays reserved), so one file DuckDB writes is a valid
    data file of either, and a run stores a copy of it in each instead of writing it twice.
    """
    tables: dict[str, Table] = {}
    loaded = {"current": existing[0], "changes": existing[1]}
    for role, name in (("changes", relname + CHANGES_SUFFIX), ("current", relname)):
        table = loaded[role]
        if table is None:
            new_schema = schema.new_schema(evolution.columns, with_change_columns=True)
            spec = PartitionSpec()
            if role == "changes":
                source_id = new_schema.find_field(EXPORTED_AT_COLUMN).field_id
                spec = PartitionSpec(
                    PartitionField(source_id, 1000, DayTransform(), "export_day"), spec_id=0
                )
            table = lake.catalog.create_table(
                lake.identifier(name),
                new_schema,
                partition_spec=spec,
                properties={
                    "format-version": "2",
                    "write.delete.mode": "merge-on-read",
                    "write.update.mode": "merge-on-read",
                    **properties,
                    SOURCE_TABLE: evolution.source,
                    KEY_COLUMN: key_column,
                    ROLE: role,
                },
            )
            if role == "current":
                with table.update_schema() as update:
                    update.delete_column(DELETED_COLUMN)
        else:
            table = schema.apply(table, evolution)
        tables[role] = table
    pair = Pair(evolution.source, tables["current"], tables["changes"])
    changes_ids = {f.name: f.field_id for f in pair.changes.schema().fields}
    for f in pair.current.schema().fields:
        if changes_ids.get(f.name) != f.field_id:
            raise ExportError(
                f"lake tables {relname} and {relname}{CHANGES_SUFFIX} give column {f.name} "
                "different field ids (changed by another tool?): export to a new target"
            )
    return pair


def pairs(lake: Lake) -> list[Pair]:
    """Every exported table's pair in the namespace, by source table."""
    by_source: dict[str, dict[str, Table]] = {}
    for name in sorted(lake.table_names()):
        table = lake.load(name)
        if table is None:
            continue
        source = table.properties.get(SOURCE_TABLE)
        role = table.properties.get(ROLE)
        if source and role in ("current", "changes"):
            by_source.setdefault(source, {})[role] = table
    return [
        Pair(source, roles["current"], roles["changes"])
        for source, roles in sorted(by_source.items())
        if "current" in roles and "changes" in roles
    ]


def table_name(table: Table) -> str:
    """A table's identifier as one string, namespace first."""
    return ".".join(table.name())
