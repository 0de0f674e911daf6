"""DuckDB as the exporter's engine: it reads PostgreSQL through the postgres extension and writes
Parquet. Extensions are LOADed from the files their pip wheels ship, never downloaded.

Reads are single COPY statements with the window pushed down (`pg_use_ctid_scan` off), so
PostgreSQL answers a delta from the cursor's index instead of scanning the table in ctid ranges.
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import duckdb

from animedb import db
from exporter import protocol
from exporter.errors import ExportError, first_line
from exporter.storage import S3Access

READER_APPLICATION = "animedb-exporter-reader"
SPILL_FOLDER = "duckdb-spill"
MEMORY_LIMIT_VARIABLE = "ANIMEDB_DUCKDB_MEMORY_LIMIT"
THREADS_VARIABLE = "ANIMEDB_DUCKDB_THREADS"
TEMP_DIR_VARIABLE = "ANIMEDB_DUCKDB_TEMP_DIR"
# A chunk's PostgreSQL reader and Parquet writer need about 100 MB (a 300,000-row first load ran
# at 96MB and not at 64MB): below this floor a run can only fail, and late, with its files half
# written. Lambda's handler gives DuckDB 60% of the function's memory, 307MB at the least.
MIN_MEMORY_BYTES = 128 * 1000**2
MAX_THREADS = 1024
# DuckDB's memory units: KB, MB, GB, TB are powers of 1000, KiB, MiB, GiB, TiB of 1024
_SIZE = re.compile(r"^(\d+(?:\.\d+)?) ?(?:([KMGT])(iB|B)?|B)$", re.IGNORECASE)


def extension_file(module: ModuleType, name: str) -> Path:
    """The .duckdb_extension file a wheel ships (duckdb-extension-<name> packages)."""
    base = Path(module.__path__[0])
    found = sorted(base.rglob(f"{name}.duckdb_extension"))
    if not found:
        raise ExportError(f"the {name} DuckDB extension is not installed: run `make install`")
    return found[0]


def quote(value: str) -> str:
    """A SQL string literal of `value`."""
    return "'" + value.replace("'", "''") + "'"


def parquet_rows(con: duckdb.DuckDBPyConnection, path: str) -> int:
    """The rows of the Parquet file at `path` (as DuckDB reads it), from its footer."""
    row = con.execute(f"select sum(num_rows) from parquet_file_metadata({quote(path)})").fetchone()
    return int(row[0]) if row and row[0] is not None else 0


@dataclass(frozen=True)
class DuckConfig:
    """DuckDB's resources; Lambda sets them from its environment (memory, /tmp)."""

    memory_limit: str | None = None
    threads: int | None = None
    temp_directory: str | None = None

    @classmethod
    def from_environment(cls) -> DuckConfig:
        """The ANIMEDB_DUCKDB_* variables, checked before a run starts: a value DuckDB would
        refuse, or could not run with, is one line naming it."""
        memory_limit = os.environ.get(MEMORY_LIMIT_VARIABLE, "").strip() or None
        if memory_limit is not None:
            _check_memory_limit(memory_limit)
        threads = os.environ.get(THREADS_VARIABLE, "").strip() or None
        return cls(
            memory_limit=memory_limit,
            threads=None if threads is None else _threads(threads),
            temp_directory=os.environ.get(TEMP_DIR_VARIABLE) or None,
        )


def _check_memory_limit(text: str) -> None:
    found = _SIZE.match(text)
    if found is None:
        raise ExportError(
            f"{MEMORY_LIMIT_VARIABLE}={text!r} is not a size: use a number and a unit, "
            "e.g. 512MB or 2GB (KB, MB, GB, TB count in 1000s, KiB, MiB, GiB, TiB in 1024s)"
        )
    number, prefix, suffix = found.groups()
    base = 1024 if (suffix or "").lower() == "ib" else 1000
    size = float(number) * base ** " KMGT".index((prefix or " ").upper())
    if size < MIN_MEMORY_BYTES:
        raise ExportError(
            f"{MEMORY_LIMIT_VARIABLE}={text!r} is too little for DuckDB to read and write a "
            "chunk (about 100 MB): give it 128MB at the least, e.g. 512MB or 2GB"
        )


def _threads(text: str) -> int:
    try:
        threads = int(text)
    except ValueError:
        threads = 0
    if not 1 <= threads <= MAX_THREADS:
        raise ExportError(
            f"{THREADS_VARIABLE}={text!r} is not a number of threads: use a whole number "
            f"from 1 to {MAX_THREADS}, e.g. 4 (or leave it unset: one per CPU)"
        )
    return threads


def source_columns(con: duckdb.DuckDBPyConnection, table_name: str) -> dict[str, str]:
    """Column -> DuckDB type of an attached table, in table order."""
    rows = con.execute(f"DESCRIBE SELECT * FROM {table_name}").fetchall()
    return {str(r[0]): str(r[1]) for r in rows}


def load_iceberg(con: duckdb.DuckDBPyConnection) -> None:
    """DuckDB's own Iceberg reader (iceberg_scan), an engine that is not the exporter: tests,
    benchmarks and users read the lake with it. It needs avro first."""
    import duckdb_extension_avro
    import duckdb_extension_iceberg

    con.execute(f"LOAD {quote(str(extension_file(duckdb_extension_avro, 'avro')))}")
    con.execute(f"LOAD {quote(str(extension_file(duckdb_extension_iceberg, 'iceberg')))}")


def explain(exc: duckdb.Error, target: str) -> str:
    """One line for a DuckDB failure while it read or wrote the lake at `target`."""
    kind = protocol.timeout_kind(str(exc))
    if kind is not None:  # PostgreSQL's, not the lake's (no connection here to name a holder)
        return str(protocol.timed_out(kind, None))
    hint = (
        " (check the S3 endpoint, AWS_ENDPOINT_URL_S3 or AWS_ENDPOINT_URL, and the network)"
        if target.startswith("s3://")
        else ""
    )
    return f"DuckDB could not read or write the lake at {target}: {first_line(exc)}{hint}"


def _session_settings(con: duckdb.DuckDBPyConnection) -> None:
    con.execute("SET TimeZone = 'UTC'")  # timestamptz values print and hash the same everywhere
    # rows need no order in a file; keeping it makes DuckDB buffer whole tables in memory
    con.execute("SET preserve_insertion_order = false")


def connect(
    config: DuckConfig | None = None, *, s3: S3Access | None = None
) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB with the postgres extension loaded from its wheel, and nothing
    fetched from the network; with `s3`, httpfs too and those credentials, to read s3://."""
    import duckdb_extension_httpfs  # type: ignore[import-untyped]
    import duckdb_extension_postgres_scanner  # type: ignore[import-untyped]

    config = config or DuckConfig.from_environment()
    settings: dict[str, str | bool | int | float | list[str]] = {
        "autoinstall_known_extensions": False,
        "autoload_known_extensions": False,
    }
    home = os.environ.get("HOME")
    if not home or not os.access(home, os.W_OK):
        # Lambda runs without a usable HOME; DuckDB wants one for its own files
        settings["home_directory"] = tempfile.gettempdir()
    if config.memory_limit:
        settings["memory_limit"] = config.memory_limit
    if config.threads:
        settings["threads"] = config.threads
    # where DuckDB spills: a run gives its staging folder (swept when a killed run left it);
    # otherwise the temporary folder, never the working directory (read-only on Lambda)
    settings["temp_directory"] = config.temp_directory or str(
        Path(tempfile.gettempdir()) / SPILL_FOLDER
    )
    try:
        con = duckdb.connect(config=settings)
    except duckdb.Error as exc:
        raise ExportError(
            f"DuckDB refused its settings ({first_line(exc)}): check {MEMORY_LIMIT_VARIABLE}, "
            f"{THREADS_VARIABLE} and {TEMP_DIR_VARIABLE}"
        ) from exc
    _session_settings(con)
    postgres = extension_file(duckdb_extension_postgres_scanner, "postgres_scanner")
    con.execute(f"LOAD {quote(str(postgres))}")
    if s3 is not None:  # only reading s3:// paths needs it; uploads go through the AWS SDK
        con.execute(f"LOAD {quote(str(extension_file(duckdb_extension_httpfs, 'httpfs')))}")
        use_s3(con, s3)
    return con


def cursor(con: duckdb.DuckDBPyConnection) -> duckdb.DuckDBPyConnection:
    """Another connection to con's database (its extensions, secrets and attached PostgreSQL),
    with the session settings of `connect`, for work in another thread."""
    other = con.cursor()
    _session_settings(other)
    return other


def attach_postgres(
    con: duckdb.DuckDBPyConnection,
    settings: db.Settings,
    *,
    alias: str = "pg",
    role: str | None = db.EXPORTER_ROLE,
    application_name: str = READER_APPLICATION,
    limits: protocol.SessionLimits | None = None,
) -> None:
    """Attach PostgreSQL read-only, logged in as `role` (None: as the settings' own user); every
    connection DuckDB opens to it carries the exporter's session limits (the environment's
    unless given), as libpq options."""
    limits = protocol.SessionLimits.from_environment() if limits is None else limits
    if role:
        settings = settings.login(role)
    conninfo = settings.conninfo(
        application_name=application_name, connect_timeout="10", options=limits.options()
    )
    con.execute("SET pg_use_ctid_scan = false")
    con.execute("SET pg_pool_max_connections = 0")
    try:
        con.execute(f"ATTACH {quote(conninfo)} AS {alias} (TYPE postgres, READ_ONLY)")
    except duckdb.Error as exc:
        raise ExportError(
            f"DuckDB cannot attach {settings.describe()}: {_masked(first_line(exc), settings)}"
        ) from exc


def use_s3(con: duckdb.DuckDBPyConnection, access: S3Access) -> None:
    """Give httpfs the credentials the AWS SDK resolved (DuckDB's own chain needs the aws
    extension, which is not shipped as a wheel)."""
    parts = [
        "TYPE s3",
        f"KEY_ID {quote(access.key_id)}",
        f"SECRET {quote(access.secret)}",
        f"REGION {quote(access.region)}",
        f"USE_SSL {'true' if access.use_ssl else 'false'}",
    ]
    if access.session_token:
        parts.append(f"SESSION_TOKEN {quote(access.session_token)}")
    if access.endpoint:
        parts += [f"ENDPOINT {quote(access.endpoint)}", "URL_STYLE 'path'"]
    con.execute(f"CREATE OR REPLACE SECRET lake ({', '.join(parts)})")


def _masked(text: str, settings: db.Settings) -> str:
    """DuckDB repeats the whole connection string in its errors: never show the password (nor
    a token a subclass of Settings puts in the connection string)."""
    if settings.password:
        text = text.replace(settings.password, "********")
    return db.redact_conninfo(text)


@contextmanager
def session(
    settings: db.Settings,
    config: DuckConfig | None = None,
    *,
    application_name: str = READER_APPLICATION,
    s3: S3Access | None = None,
) -> Iterator[duckdb.DuckDBPyConnection]:
    """`connect`, with PostgreSQL attached as `pg` (as the exporter's role); closed on the way
    out. A read PostgreSQL ended for a session limit comes out as ExportError, naming the
    session that holds the lock it waited for."""
    con = connect(config, s3=s3)
    try:
        attach_postgres(con, settings, application_name=application_name)
        yield con
    except duckdb.Error as exc:
        timed_out = postgres_timeout(con, exc)
        if timed_out is None:
            raise
        raise timed_out from exc
    finally:
        con.close()


def postgres_timeout(con: duckdb.DuckDBPyConnection, exc: duckdb.Error) -> ExportError | None:
    """The one line for a read PostgreSQL ended for its lock or statement timeout, naming the
    session that holds the lock (asked through con's attached PostgreSQL); None for any other
    failure."""
    kind = protocol.timeout_kind(str(exc))
    if kind is None:
        return None
    holder = None
    if kind == "lock":
        try:
            attached = con.execute(
                "select database_name from duckdb_databases() where type = 'postgres' limit 1"
            ).fetchone()
            if attached is not None:
                holder = con.execute(
                    f"select * from postgres_query({quote(str(attached[0]))},"
                    f" {quote(protocol.LOCK_HOLDER_SQL)})"
                ).fetchone()
        except duckdb.Error:
            holder = None
    return protocol.timed_out(kind, holder)


def copy_to_parquet(
    con: duckdb.DuckDBPyConnection,
    query: str,
    destination: Path,
    *,
    parallel_scan: bool = False,
    field_ids: str | None = None,
    options: str = "",
) -> int:
    """Write the rows of `query` to a zstd Parquet file; the number of rows written.
    parallel_scan: read the table in ctid ranges over several connections (fast for a whole
    table); otherwise one COPY whose WHERE clause PostgreSQL answers from an index (a delta).
    field_ids: DuckDB's FIELD_IDS struct, so that Iceberg readers find columns by id."""
    con.execute(f"SET pg_use_ctid_scan = {'true' if parallel_scan else 'false'}")
    ids = f", FIELD_IDS {field_ids}" if field_ids else ""
    ids += f", {options}" if options else ""
    try:
        result = con.execute(
            f"COPY ({query}) TO {quote(str(destination))} (FORMAT parquet, COMPRESSION zstd{ids})"
        ).fetchone()
    except duckdb.Error as exc:
        raise postgres_timeout(con, exc) or ExportError(
            f"reading from PostgreSQL or writing Parquet failed: {first_line(exc)}"
        ) from exc
    return int(result[0]) if result else 0


def write_parquet(
    con: duckdb.DuckDBPyConnection,
    query: str,
    destination: Path,
    *,
    field_ids: str,
    level: int | None = None,
) -> int:
    """Write the rows of `query`, which reads files only (no PostgreSQL), to a zstd Parquet
    file with these field ids (at zstd `level`, DuckDB's default 3 unless given); the number
    of rows written."""
    options = f", COMPRESSION_LEVEL {int(level)}" if level is not None else ""
    try:
        result = con.execute(
            f"COPY ({query}) TO {quote(str(destination))}"
            f" (FORMAT parquet, COMPRESSION zstd, FIELD_IDS {field_ids}{options})"
        ).fetchone()
    except duckdb.Error as exc:
        raise ExportError(f"writing Parquet failed: {first_line(exc)}") from exc
    return int(result[0]) if result else 0
