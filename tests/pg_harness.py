"""Real PostgreSQL servers for the tests, and a throw-away copy of the dbt project to build in them.

Debian's PostgreSQL 15 (`/usr/lib/postgresql/15/bin`, or $ANIMEDB_TEST_PG_BIN) is started by the
harness on a free loopback port, as the `postgres` system user when the tests run as root.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg import sql
from psycopg.rows import TupleRow

from animedb import REPO, db

PG_BIN = Path(os.environ.get("ANIMEDB_TEST_PG_BIN", "/usr/lib/postgresql/15/bin"))
FIXTURE_SEEDS = REPO / "tests" / "dbt_fixture" / "seeds"
VENV_BIN = Path(sys.executable).parent
# The database in which the tool roles must give their password (tests of the Lambda handlers).
PASSWORD_DATABASE = "animedb_iam"
PASSWORD_RULE = (
    f"host {PASSWORD_DATABASE} {db.GENERATOR_ROLE},{db.EXPORTER_ROLE} 127.0.0.1/32 scram-sha-256\n"
)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    host: str
    port: int
    user: str
    data: Path | None = None

    def settings(self, dbname: str) -> db.Settings:
        return db.Settings(
            host=self.host,
            port=self.port,
            user=self.user,
            password=None,
            dbname=dbname,
            embedded=False,
        )

    def env(self, dbname: str) -> dict[str, str]:
        """A process environment pointing libpq, dbt and the tools at one database."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env.update(self.settings(dbname).environment())
        env["PATH"] = f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}"
        return env

    def connect(self, dbname: str, *, autocommit: bool = False) -> psycopg.Connection[TupleRow]:
        return psycopg.connect(self.settings(dbname).conninfo(), autocommit=autocommit)

    def create_database(self, name: str, template: str | None = None) -> None:
        with self.connect("postgres", autocommit=True) as conn:
            conn.execute(
                sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name))
            )
            query = sql.SQL("create database {}").format(sql.Identifier(name))
            if template:
                query = sql.SQL("{} template {}").format(query, sql.Identifier(template))
            conn.execute(query)
            if template:
                # CREATE DATABASE copies the contents, not the database's own privileges (dbt
                # took TEMPORARY from PUBLIC on the template): a faithful copy has them too
                conn.execute(
                    "update pg_database set datacl = (select datacl from pg_database"
                    " where datname = %s) where datname = %s",
                    (template, name),
                )


def _as_postgres(cmd: list[str]) -> list[str]:
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--", *cmd]
    return cmd


def start_debian_pg() -> Server:
    """initdb + pg_ctl start of Debian's PostgreSQL in a new temporary folder (outside pytest's
    private tmp, which the postgres user cannot enter); stop_debian_pg removes it."""
    if not (PG_BIN / "pg_ctl").exists():
        raise FileNotFoundError(f"no PostgreSQL binaries in {PG_BIN} (set ANIMEDB_TEST_PG_BIN)")
    base = Path(tempfile.mkdtemp(prefix="animedb-test-pg-"))
    data, sockets = base / "data", base / "sockets"
    sockets.mkdir(exist_ok=True)
    if os.geteuid() == 0:
        shutil.chown(base, "postgres", "postgres")
        shutil.chown(sockets, "postgres", "postgres")
    subprocess.run(
        _as_postgres(
            [
                str(PG_BIN / "initdb"),
                "-D",
                str(data),
                "-U",
                "postgres",
                "--auth=trust",
                "--encoding=UTF8",
                "--locale=C.UTF-8",
                "--no-sync",
            ]
        ),
        check=True,
        capture_output=True,
    )
    # One database asks the tool roles for a password, as RDS asks them for an IAM token; the
    # rest trusts loopback as initdb set it up.
    hba = data / "pg_hba.conf"
    hba.write_text(PASSWORD_RULE + hba.read_text())
    port = free_port()
    options = (
        f"-c listen_addresses=127.0.0.1 -p {port} -k {sockets} -c fsync=off "
        "-c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
        # logical decoding (exporter/pgoutput.py reads a slot of this server)
        " -c wal_level=logical"
    )
    subprocess.run(
        _as_postgres(
            [
                str(PG_BIN / "pg_ctl"),
                "-D",
                str(data),
                "-o",
                options,
                "-l",
                str(base / "server.log"),
                "-w",
                "start",
            ]
        ),
        check=True,
        capture_output=True,
    )
    return Server(host="127.0.0.1", port=port, user="postgres", data=data)


def stop_debian_pg(server: Server) -> None:
    if server.data is not None:
        subprocess.run(
            _as_postgres(
                [str(PG_BIN / "pg_ctl"), "-D", str(server.data), "-m", "immediate", "stop"]
            ),
            check=False,
            capture_output=True,
        )
        shutil.rmtree(server.data.parent, ignore_errors=True)


def make_dbt_project(dest: Path, seeds: Path = FIXTURE_SEEDS) -> Path:
    """A copy of the repository's dbt project whose seeds are `seeds` (CSV files) and whose
    seed properties are the repository's; the profile is profiles.yml.example as shipped."""
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copy(REPO / "dbt_project.yml", dest)
    shutil.copy(REPO / "profiles.yml.example", dest / "profiles.yml")
    for folder in ("models", "macros", "snapshots"):
        shutil.copytree(REPO / folder, dest / folder, dirs_exist_ok=True)
    shutil.copytree(REPO / "tests" / "dbt", dest / "tests" / "dbt", dirs_exist_ok=True)
    (dest / "seeds").mkdir(exist_ok=True)
    for csv in seeds.glob("*.csv"):
        shutil.copy(csv, dest / "seeds")
    shutil.copy(REPO / "seeds" / "_seeds.yml", dest / "seeds")
    return dest


def run_dbt(
    project: Path, env: Mapping[str, str], *args: str, check: bool = True
) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [
            str(VENV_BIN / "dbt"),
            *args,
            "--project-dir",
            str(project),
            "--profiles-dir",
            str(project),
            "--no-use-colors",
        ],
        env=dict(env),
        capture_output=True,
        text=True,
        cwd=project,
    )
    if check and proc.returncode != 0:
        raise AssertionError(
            f"dbt {' '.join(args)} failed:\n{proc.stdout[-6000:]}\n{proc.stderr[-2000:]}"
        )
    return proc
