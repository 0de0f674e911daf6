"""Where the database is, for every tool: libpq's environment variables when any is set,
otherwise an embedded PostgreSQL (from the `pgserver` wheel) kept under `.animedb/`.

Nothing else in the repository reads PG* variables or starts a server; dbt gets the same
answer through `animedb db env`, which prints the variables its profile reads. The one rule for
an unset PGUSER is libpq's (the operating-system user), so the tools, psql and dbt's profile
(`env_var('PGUSER', '')`, which leaves the user to libpq) log in as the same user.
"""

from __future__ import annotations

import contextlib
import dataclasses
import getpass
import os
import re
import shlex
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg import sql
from psycopg.rows import TupleRow

from animedb import REPO
from animedb.errors import first_line

PG_VARIABLES = ("PGHOST", "PGPORT", "PGUSER", "PGPASSWORD", "PGDATABASE")
DEFAULT_DATABASE = "animedb"
EMBEDDED_USER = "postgres"
HOME_VARIABLE = "ANIMEDB_HOME"
_LOGIN_REFUSED = re.compile(
    r"password authentication failed|PAM authentication failed|no pg_hba\.conf entry"
    r'|role "[^"]*" (?:does not exist|is not permitted to log in)|fe_sendauth'
)
_PASSWORD_PARAMETER = re.compile(r"password\s*=\s*('(?:[^'\\]|\\.)*'|\S+)")
# The least-privileged roles the unattended tools log in as (created by dbt, macros/roles.sql).
GENERATOR_ROLE = "animedb_generator"
EXPORTER_ROLE = "animedb_exporter"
CONNECTION_HINT = "check PGHOST, PGPORT, PGUSER, PGPASSWORD, PGDATABASE"
TOOL_LOGIN_HINT = (
    "the tools log in as their own roles, which `animedb db build` creates: on a server that "
    "asks for passwords, give each role one in the libpq password file (~/.pgpass or "
    "$PGPASSFILE), or set PGUSER to the role and PGPASSWORD to its password"
)


class DatabaseUnavailable(RuntimeError):
    """The database named by the settings cannot be reached; the message says which and why."""


@dataclass(frozen=True)
class Settings:
    """libpq connection parameters; None means 'libpq decides' (its own defaults, .pgpass...)."""

    host: str | None
    port: int | None
    user: str | None
    password: str | None
    dbname: str
    embedded: bool

    def conninfo(self, **extra: str | int | None) -> str:
        params: dict[str, str | int | None] = {
            "host": self.host,
            "port": self.port,
            "user": self.user,
            "password": self.password,
            "dbname": self.dbname,
        }
        params.update(extra)
        return psycopg.conninfo.make_conninfo(
            "", **{k: v for k, v in params.items() if v is not None}
        )

    def login(self, role: str) -> Settings:
        """These settings for a tool that logs in as `role`: PGPASSWORD belongs to PGUSER, so it
        goes along only when PGUSER names the role; otherwise the password is libpq's to find in
        its password file (an empty one makes libpq look there, not in the environment)."""
        if self.user == role:
            return self
        return dataclasses.replace(self, user=role, password="")

    def environment(self) -> dict[str, str]:
        """The PG* variables that point any libpq client (psql, dbt, DuckDB) at this database;
        PGUSER always, so that no client falls back to a default user of its own."""
        values = {
            "PGHOST": self.host,
            "PGPORT": None if self.port is None else str(self.port),
            "PGUSER": self.user or default_user(),
            "PGPASSWORD": self.password,
            "PGDATABASE": self.dbname,
        }
        return {k: v for k, v in values.items() if v is not None}

    def describe(self) -> str:
        where = f"{self.host or 'localhost'}:{self.port or 5432}/{self.dbname}"
        return f"embedded PostgreSQL at {where}" if self.embedded else f"PostgreSQL at {where}"


def project_home() -> Path:
    """The folder that holds the embedded server's data: $ANIMEDB_HOME, else `.animedb/`
    beside dbt_project.yml (the repository), else in the current folder."""
    configured = os.environ.get(HOME_VARIABLE)
    if configured:
        return Path(configured).expanduser().resolve()
    base = REPO if (REPO / "dbt_project.yml").exists() else Path.cwd()
    return base / ".animedb"


def default_user() -> str | None:
    """The user libpq logs in as when PGUSER is unset: the operating-system user this process
    runs as (its effective uid's name, not $USER, which a service may not set). None when the
    system has no name for the uid; libpq then refuses to connect and says why."""
    if os.name == "nt":
        return getpass.getuser()
    import pwd

    try:
        return pwd.getpwuid(os.geteuid()).pw_name
    except KeyError:
        return None


def uses_environment(environ: Mapping[str, str] | None = None) -> bool:
    env = os.environ if environ is None else environ
    return any(env.get(name) for name in PG_VARIABLES)


def from_environment(environ: Mapping[str, str] | None = None) -> Settings:
    env = os.environ if environ is None else environ
    port_text = env.get("PGPORT")
    try:
        port = int(port_text) if port_text else None
    except ValueError:
        raise DatabaseUnavailable(
            f"PGPORT={port_text!r} is not a port number: set it to the server's port, e.g. 5432"
        ) from None
    return Settings(
        host=env.get("PGHOST") or None,
        port=port,
        user=env.get("PGUSER") or None,
        password=env.get("PGPASSWORD") or None,
        dbname=env.get("PGDATABASE") or DEFAULT_DATABASE,
        embedded=False,
    )


def _pgdata(home: Path) -> Path:
    return home / "pgdata"


def embedded_settings(home: Path | None = None, *, start: bool = True) -> Settings:
    """Settings of the embedded server, started (and its database created) on first use."""
    home = project_home() if home is None else home
    pgdata = _pgdata(home)
    if not start and not (pgdata / "postmaster.pid").exists():
        raise DatabaseUnavailable(
            f"the embedded PostgreSQL under {home} is not running: "
            "run `animedb db start` (or any tool) to start it"
        )
    home.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        # platformdirs warns that XDG_RUNTIME_DIR is unset on servers; it falls back to /tmp.
        warnings.simplefilter("ignore")
        import pgserver

        try:
            server = pgserver.get_server(pgdata, cleanup_mode=None)  # type: ignore[attr-defined]
            info = server.get_postmaster_info()
        except Exception as exc:
            raise DatabaseUnavailable(
                f"could not start the embedded PostgreSQL in {pgdata}: {exc} "
                f"(its log is {pgdata / 'log'})"
            ) from exc
    host = str(info.socket_dir) if info.socket_dir is not None else info.hostname
    settings = Settings(
        host=host,
        port=info.port,
        user=EMBEDDED_USER,
        password=None,
        dbname=DEFAULT_DATABASE,
        embedded=True,
    )
    _ensure_database(settings)
    return settings


def _ensure_database(settings: Settings) -> None:
    with psycopg.connect(settings.conninfo(dbname="postgres"), autocommit=True) as conn:
        exists = conn.execute(
            "select 1 from pg_database where datname = %s", (settings.dbname,)
        ).fetchone()
        if exists:
            return
        # Two tools starting at once may both get here; the loser's error means "done".
        with contextlib.suppress(psycopg.errors.DuplicateDatabase):
            conn.execute(sql.SQL("create database {}").format(sql.Identifier(settings.dbname)))


def resolve(*, start: bool = True) -> Settings:
    """The settings every tool uses: PG* variables if any is set, else the embedded server."""
    if uses_environment():
        return from_environment()
    return embedded_settings(start=start)


def stop_embedded(home: Path | None = None) -> bool:
    """Stop the embedded server; False when it was not running."""
    home = project_home() if home is None else home
    pgdata = _pgdata(home)
    if not (pgdata / "postmaster.pid").exists():
        return False
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from pgserver import _commands

    user = "pgserver" if hasattr(os, "geteuid") and os.geteuid() == 0 else None
    _commands.pg_ctl(["-w", "-m", "fast", "stop"], pgdata=pgdata, user=user)  # type: ignore[attr-defined]
    return True


def connect(
    settings: Settings | None = None,
    *,
    application_name: str,
    autocommit: bool = False,
    role: str | None = None,
    connect_timeout: int = 10,
) -> psycopg.Connection[TupleRow]:
    """Open a connection, naming the tool in pg_stat_activity; with `role`, logged in as that
    role itself (never SET ROLE from a stronger user, which RESET ROLE would give back).
    Failures become DatabaseUnavailable with one clear line."""
    settings = resolve() if settings is None else settings
    if role is not None:
        settings = settings.login(role)
    try:
        return psycopg.connect(
            settings.conninfo(application_name=application_name, connect_timeout=connect_timeout),
            autocommit=autocommit,
        )
    except psycopg.OperationalError as exc:
        reason = first_line(exc)
        as_role = "" if role is None else f" as {role}"
        # the server answered and turned the login away, or asked for a password libpq has
        # not got: a matter of the role's credentials
        refused = role is not None and bool(_LOGIN_REFUSED.search(str(exc)))
        hint = TOOL_LOGIN_HINT if refused else CONNECTION_HINT
        raise DatabaseUnavailable(
            f"cannot connect to {settings.describe()}{as_role}: {reason} ({hint})"
        ) from exc


def redact_conninfo(text: str) -> str:
    """`text` with the value of any `password=` connection parameter masked (DuckDB and libpq
    can repeat a whole connection string in their errors)."""
    return _PASSWORD_PARAMETER.sub("password=********", text)


@contextlib.contextmanager
def connection(
    settings: Settings | None = None,
    *,
    application_name: str,
    autocommit: bool = False,
    role: str | None = None,
) -> Iterator[psycopg.Connection[TupleRow]]:
    conn = connect(settings, application_name=application_name, autocommit=autocommit, role=role)
    try:
        yield conn
    finally:
        conn.close()


def shell_exports(settings: Settings) -> str:
    """`export` lines for a POSIX shell; variables the settings leave to libpq are unset."""
    env = settings.environment()
    lines = [f"export {name}={shlex.quote(env[name])}" for name in PG_VARIABLES if name in env]
    lines += [f"unset {name}" for name in PG_VARIABLES if name not in env]
    return "\n".join(lines)
