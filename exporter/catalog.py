"""The lake: a target's storage, its Iceberg catalog and the namespace its tables live in; which
database it mirrors; and each source table's pair of lake tables, created or brought up to the
source's schema.

Catalogs are configured the way pyiceberg's are (.pyiceberg.yaml,
PYICEBERG_CATALOG__<NAME>__<PROPERTY>), under the name ANIMEDB_CATALOG (default `animedb`); with
nothing configured, a local target gets a SQLite catalog in its folder and an s3:// target the
Glue Data Catalog. The warehouse is the target unless configured.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl, urlencode

from pyiceberg.catalog import Catalog, MetastoreCatalog, load_catalog
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
from exporter.fileio import ROOTS_PROPERTY, escape
from exporter.layout import (
    CHANGES_SUFFIX,
    DELETED_COLUMN,
    EXPORTED_AT_COLUMN,
    KEY_COLUMN,
    LAKE_KEY,
    ROLE,
    SOURCE_DATABASE,
    SOURCE_TABLE,
    SYSTEM_IDENTIFIER,
)
from exporter.storage import Storage, explain_s3, open_storage

if TYPE_CHECKING:
    from pyiceberg.utils.config import Config

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
    warehouse: str = ""  # where new tables go: the target unless the catalog configures one

    @property
    def key(self) -> str:
        """The lake as PostgreSQL's watermarks and runs name it: everything that decides where
        rows land. The canonical target, then, where they are not the defaults, the catalog
        and the warehouse (`?catalog=...&warehouse=...`) and the namespace (`#...`). A
        canonical target holds neither `?` nor `#`, so a key reads back one way."""
        extra = {}
        if self.catalog_name != DEFAULT_CATALOG:
            extra["catalog"] = self.catalog_name
        if self.warehouse and self.warehouse != self.storage.uri:
            extra["warehouse"] = self.warehouse
        query = f"?{urlencode(extra)}" if extra else ""
        suffix = "" if self.namespace == DEFAULT_NAMESPACE else f"#{self.namespace}"
        return f"{self.storage.uri}{query}{suffix}"

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
        """A table of the namespace, None when it does not exist; one whose metadata or folder
        is outside the lake is refused (the catalog may be edited by others)."""
        try:
            table = self.catalog.load_table(self.identifier(name))
        except NoSuchTableError:
            return None
        except ExportError:
            raise
        except Exception as exc:
            if type(exc).__module__.startswith("botocore"):  # S3 or Glue refused or failed
                raise explain_s3(exc, "read", f"the metadata of {self.identifier(name)}") from exc
            raise ExportError(
                f"cannot read the metadata of table {self.identifier(name)}: {first_line(exc)} "
                "(a metadata file is missing or corrupted)"
            ) from exc
        self.storage.confine(table.location())
        return table

    def new_table_location(self, name: str) -> str | None:
        """Where pyiceberg's catalog puts a new table `name`: inside the lake and holding no
        file yet, or refused in one line (another catalog's table there, or a namespace
        location pointing elsewhere)."""
        resolve = getattr(self.catalog, "_resolve_table_location", None)
        if resolve is None:  # a catalog server places its tables itself (REST)
            return None
        try:
            location = str(resolve(None, self.namespace, name))
        except Exception as exc:
            raise ExportError(
                f"cannot place table {self.identifier(name)} in {self.uri}: {first_line(exc)}"
            ) from exc
        self.storage.confine(location)
        # a first metadata file alone is a creation this catalog never registered (killed)
        found = [
            f
            for f in self.storage.list_files(location, limit=2)
            if not re.search(r"/metadata/0+-[^/]*\.metadata\.json$", f)
        ]
        if found:
            raise ExportError(
                f"{escape(location)} already holds files of a table catalog "
                f"{self.catalog_name!r} does not know (another catalog's lake?): nothing was "
                "changed; run with the catalog that made it (--catalog), or export to a target "
                "of its own"
            )
        return location


def parse_key(key: str) -> tuple[str, dict[str, str], str]:
    """(target, {catalog, warehouse}, namespace) of a watermark key (`Lake.key`)."""
    rest, _, namespace = key.partition("#")
    uri, _, query = rest.partition("?")
    return uri, dict(parse_qsl(query)), namespace or DEFAULT_NAMESPACE


def open_key(key: str) -> Lake:
    """The lake a watermark key (`Lake.key`) names: its storage, catalog and namespace (the
    default ones where the key names none, whatever the environment says); refused in one line
    when the catalog's configuration no longer gives the same lake."""
    uri, extra, namespace = parse_key(key)
    lake = open_lake(open_storage(uri), extra.get("catalog", DEFAULT_CATALOG), namespace)
    if lake.key != key:
        raise ExportError(
            f"catalog {lake.catalog_name!r} is now configured with warehouse "
            f"{escape(lake.warehouse)}, but the runs of {escape(key)} used "
            f"{escape(extra.get('warehouse', uri))}: restore its configuration"
        )
    return lake


def pyiceberg_configuration() -> Config:
    """pyiceberg's configuration (.pyiceberg.yaml, PYICEBERG_* variables), or one line naming
    the file that cannot be read."""
    from pyiceberg.utils.config import PYICEBERG_HOME, PYICEBERG_YML, Config

    try:
        return Config()
    except Exception as exc:  # strictyaml's errors, an unreadable file
        folders = [os.environ.get(PYICEBERG_HOME), Path.home(), Path.cwd()]
        files = [Path(f) / PYICEBERG_YML for f in folders if f]
        found = next((str(f) for f in files if f.is_file()), PYICEBERG_YML)
        problem, mark = getattr(exc, "problem", None), getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        what = f"{problem}{where}" if problem else first_line(exc)
        raise ExportError(
            f"pyiceberg's configuration file {found} cannot be read ({escape(what)}): fix it, "
            "or move it away"
        ) from exc


def open_lake(
    storage: Storage, catalog_name: str | None = None, namespace: str | None = None
) -> Lake:
    """The catalog and namespace of a target (see the module's text for which catalog)."""
    name = catalog_name or os.environ.get(CATALOG_VARIABLE) or DEFAULT_CATALOG
    namespace = namespace or os.environ.get(NAMESPACE_VARIABLE) or DEFAULT_NAMESPACE
    if not re.fullmatch(r"[a-z_][a-z0-9_]*", namespace):
        raise ExportError(
            f"namespace {escape(repr(namespace))} is not a lowercase name: use e.g. animedb"
        )
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_-]{0,62}", name):
        raise ExportError(
            f"catalog name {escape(repr(name))} is not a name pyiceberg's configuration can "
            "hold: use letters, digits, '_' and '-'"
        )
    try:
        configured = pyiceberg_configuration().get_catalog_config(name) or {}
    except ValueError as exc:
        raise ExportError(f"pyiceberg configuration of catalog {name!r}: {exc}") from exc
    extra: dict[str, str] = {}
    if "py-io-impl" not in configured:
        extra["py-io-impl"] = FILE_IO
    warehouse = storage.uri
    if "warehouse" in configured:
        warehouse = str(configured["warehouse"])
        if warehouse.startswith(("s3://", "file://", "/")):  # a location, not a catalog's name
            warehouse = open_storage(warehouse).uri
            if warehouse not in storage.roots:
                storage.roots.append(warehouse)
    extra["warehouse"] = warehouse
    extra[ROOTS_PROPERTY] = json.dumps(storage.roots)
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
    if not isinstance(catalog, MetastoreCatalog):
        # a catalog server (REST: S3 Tables, Polaris) places its tables where it decides, and
        # is the authority on where they are; the lake's paths are confined with the catalogs
        # whose table locations are rows anyone with rights on them can edit (SQL, Glue, ...)
        storage.roots.clear()
        catalog.properties.pop(ROOTS_PROPERTY, None)
    return Lake(storage, catalog, name, namespace, warehouse)


def claim(lake: Lake, system_identifier: str, database: str, *, create: bool = True) -> bool:
    """Make sure the namespace holds this lake and mirrors this database: a new namespace
    records both (with `create`); an existing one must name them, or (made by an earlier
    version) have its tables inside this target, and is then given its lake's key. Refused
    with one line, and nothing in the lake changed, otherwise: two targets never share a
    namespace, nor two catalogs a folder. False when the namespace does not exist (and
    `create` is off)."""
    mine = {SYSTEM_IDENTIFIER: system_identifier, SOURCE_DATABASE: database, LAKE_KEY: lake.key}
    # read first: on AWS the namespace (a Glue database) is the stack's, which the exporter
    # may describe and update but not create
    try:
        properties = lake.catalog.load_namespace_properties(lake.namespace)
    except NoSuchNamespaceError:
        if not create:
            return False
        _refuse_used_folder(lake)
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
    owner = properties.get(LAKE_KEY)
    if owner is not None and owner != lake.key:
        raise ExportError(
            f"namespace {lake.namespace} of catalog {lake.catalog_name!r} holds the lake of "
            f"{escape(owner)}, not of {lake.key}: nothing was changed; give this target a "
            "namespace of its own (--namespace or ANIMEDB_NAMESPACE)"
        )
    if theirs == (system_identifier, database):
        if owner is None:  # a lake of an earlier version: its tables say which target it is
            _adopt(lake)
            if create:
                updates = {LAKE_KEY: lake.key}
                lake.catalog.update_namespace_properties(lake.namespace, updates=updates)
        return True
    if theirs == (None, None):
        if lake.catalog.list_tables(lake.namespace):
            raise ExportError(
                f"namespace {lake.namespace} of {lake.uri} holds tables that no "
                "AnimeDataBase export made: export to another target or namespace"
            )
        if not create:
            return False
        _refuse_used_folder(lake)
        lake.catalog.update_namespace_properties(lake.namespace, updates=mine)
        return True
    raise ExportError(
        f"{lake.uri} mirrors database {escape(str(theirs[1]))} of PostgreSQL system "
        f"{escape(str(theirs[0]))}, not {database} of system {system_identifier}: nothing was "
        "changed; export this database to a target of its own"
    )


def _adopt(lake: Lake) -> None:
    """A namespace claimed before lakes named their key: its tables must be in this lake."""
    for identifier in lake.catalog.list_tables(lake.namespace)[:1]:
        table = lake.load(identifier[-1])
        if table is not None and not table.location().startswith(lake.warehouse.rstrip("/") + "/"):
            raise ExportError(
                f"namespace {lake.namespace} of catalog {lake.catalog_name!r} holds the tables "
                f"of another target ({escape(table.location())}), not of {lake.uri}: nothing "
                "was changed; give this target a namespace of its own (--namespace or "
                "ANIMEDB_NAMESPACE)"
            )


def _refuse_used_folder(lake: Lake) -> None:
    """A new namespace's folder in the warehouse must hold no file: files there are another
    catalog's lake (a catalog named differently over the same folder)."""
    base = lake.warehouse.rstrip("/")
    for folder in (f"{base}/{lake.namespace}", f"{base}/{lake.namespace}.db"):
        if lake.storage.list_files(folder, limit=1):
            raise ExportError(
                f"{escape(folder)} already holds a lake that catalog {lake.catalog_name!r} does "
                "not know (made through another catalog?): nothing was changed; run with the "
                "catalog that made it (--catalog), or export to a target of its own"
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
    run_id: int,
) -> Pair:
    """Create the two tables of a source table (with `properties` besides the lake's own), or
    bring their schemas up to the source's.

    Both tables give every column the same field id: the current state is the change log's
    schema less `_deleted` (whose id stays reserved), so a run makes the current state's file
    of a chunk from the change log's by leaving that column out.
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
                location=lake.new_table_location(name),
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
            table = schema.apply(table, evolution, run_id)
        tables[role] = table
    pair = Pair(evolution.source, tables["current"], tables["changes"])
    changes_ids = {f.name: f.field_id for f in pair.changes.schema().fields}
    for f in pair.current.schema().fields:
        if changes_ids.get(f.name) != f.field_id:
            raise ExportError(
                f"lake tables {relname} and {relname}{CHANGES_SUFFIX} give column {escape(f.name)} "
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
