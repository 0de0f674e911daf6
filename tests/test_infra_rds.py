"""The Lambda handlers' connection settings without a server: TLS always (verified when the RDS CA
bundle is packaged), the secret read as RDS keeps it, a refused login noticed through every
wrapper, no password in any message, and DuckDB sized from the function's memory."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from animedb import db
from exporter import ExportError
from tests.infra_helpers import export, rds

ARN = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:rds!db-1"
SECRET = '{"username": "animedb_admin", "password": "Sup3r-Secret-Pa55word"}'
ENV = {
    rds.SECRET_ARN_VARIABLE: ARN,
    rds.HOST_VARIABLE: "animedb.abc.eu-west-1.rds.amazonaws.com",
    rds.PORT_VARIABLE: "5432",
    rds.NAME_VARIABLE: "animedb",
}


@pytest.fixture(autouse=True)
def fresh_container(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """A container that has read nothing yet; secret reads are counted, not sent."""
    rds.forget()
    reads: list[str] = []

    def fake_fetch(arn: str) -> str:
        reads.append(arn)
        return SECRET

    monkeypatch.setattr(rds, "_fetch", fake_fetch)
    yield reads
    rds.forget()


def test_tls_is_required_and_unverified_without_the_bundle(tmp_path: Path) -> None:
    transport = rds.tls({}, bundle=tmp_path / "missing.pem")
    assert (transport.sslmode, transport.sslrootcert, transport.verified) == (
        "require",
        None,
        False,
    )
    assert "NOT verified" in transport.description


def test_tls_verifies_the_server_with_the_bundle(tmp_path: Path) -> None:
    bundle = tmp_path / rds.CA_BUNDLE_NAME
    bundle.write_text("-----BEGIN CERTIFICATE-----\n")
    transport = rds.tls({}, bundle=bundle)
    assert (transport.sslmode, transport.sslrootcert, transport.verified) == (
        "verify-full",
        str(bundle),
        True,
    )


def test_tls_override_is_checked(tmp_path: Path) -> None:
    assert rds.tls({rds.SSLMODE_OVERRIDE_VARIABLE: "disable"}).sslmode == "disable"
    with pytest.raises(rds.ConfigurationError, match="not a libpq sslmode"):
        rds.tls({rds.SSLMODE_OVERRIDE_VARIABLE: "off"})


def test_settings_map_the_secret_and_the_environment(fresh_container: list[str]) -> None:
    settings = rds.settings(ENV)
    assert (settings.host, settings.port, settings.user, settings.password, settings.dbname) == (
        ENV[rds.HOST_VARIABLE],
        5432,
        "animedb_admin",
        "Sup3r-Secret-Pa55word",
        "animedb",
    )
    conninfo = psycopg.conninfo.conninfo_to_dict(settings.conninfo(application_name="x"))
    assert conninfo["sslmode"] in ("require", "verify-full")
    assert conninfo["application_name"] == "x"
    assert settings.environment()["PGSSLMODE"] == conninfo["sslmode"]
    assert "TLS" in settings.describe()
    rds.settings(ENV)
    assert fresh_container == [ARN]  # read once per container
    rds.settings(ENV, refresh=True)
    assert fresh_container == [ARN, ARN]


def test_secret_may_carry_the_address_and_must_carry_the_login() -> None:
    full = rds.parse_secret(
        '{"username": "u", "password": "p", "host": "h", "port": 6543, "dbname": "d"}', ARN
    )
    assert (full.host, full.port, full.dbname) == ("h", 6543, "d")
    for broken in ('{"username": "u"}', "not json", '["u", "p"]'):
        with pytest.raises(rds.ConfigurationError, match="username and password"):
            rds.parse_secret(broken, ARN)


def test_missing_environment_is_named() -> None:
    with pytest.raises(rds.ConfigurationError, match=rds.SECRET_ARN_VARIABLE):
        rds.settings({})


def _wrapped(message: str) -> Exception:
    """A libpq message as the exporter reports it: ExportError <- DatabaseUnavailable <- psycopg."""
    try:
        try:
            try:
                raise psycopg.OperationalError(message)
            except psycopg.OperationalError as exc:
                raise db.DatabaseUnavailable(f"cannot connect: {exc}") from exc
        except db.DatabaseUnavailable as exc:
            raise ExportError("run failed") from exc
    except ExportError as exc:
        return exc


def test_refused_logins_are_recognised_through_the_wrappers() -> None:
    assert rds.is_authentication_failure(
        _wrapped('connection failed: FATAL:  password authentication failed for user "a"')
    )
    assert rds.is_authentication_failure(
        ExportError('DuckDB cannot attach: IO Error: ... FATAL:  role "old_admin" does not exist')
    )
    assert not rds.is_authentication_failure(_wrapped("connection refused"))
    # SET ROLE to a missing role is a setup problem, not stale credentials
    assert not rds.is_authentication_failure(
        db.DatabaseUnavailable('cannot act as role x: role "animedb_exporter" does not exist')
    )


def test_credentials_are_read_again_once_after_a_refused_login(fresh_container: list[str]) -> None:
    attempts: list[str | None] = []

    def work(settings: rds.RdsSettings) -> str:
        attempts.append(settings.user)
        if len(attempts) == 1:
            raise _wrapped('FATAL:  password authentication failed for user "animedb_admin"')
        return "done"

    assert rds.with_fresh_credentials(work, ENV) == "done"
    assert attempts == ["animedb_admin", "animedb_admin"]
    assert fresh_container == [ARN, ARN]

    def always_refused(settings: rds.RdsSettings) -> str:
        raise _wrapped('FATAL:  password authentication failed for user "animedb_admin"')

    with pytest.raises(ExportError):
        rds.with_fresh_credentials(always_refused, ENV)


def test_messages_never_show_a_password() -> None:
    rds.settings(ENV)
    text = (
        'IO Error: Unable to connect to Postgres at "host=h user=u password=Sup3r-Secret-Pa55word'
        " dbname=d\": FATAL: ... Sup3r-Secret-Pa55word and password='quoted secret'"
    )
    masked = rds.redact(text)
    assert "Sup3r-Secret-Pa55word" not in masked and "quoted secret" not in masked
    assert "password=********" in masked


def test_duckdb_is_sized_from_the_function_memory(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for name in (
        "ANIMEDB_DUCKDB_MEMORY_LIMIT",
        "ANIMEDB_DUCKDB_THREADS",
        "ANIMEDB_DUCKDB_TEMP_DIR",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.setattr("tempfile.tempdir", None)
    monkeypatch.setenv(export.MEMORY_VARIABLE, "2048")
    config = export.duck_config()
    assert config.memory_limit == "1228MB"
    assert config.threads is not None and 1 <= config.threads <= 2
    assert config.temp_directory == str(tmp_path / export.SPILL_FOLDER)
    assert Path(config.temp_directory).is_dir()
    # the exporter's own variables win
    monkeypatch.setenv("ANIMEDB_DUCKDB_MEMORY_LIMIT", "300MB")
    monkeypatch.setenv("ANIMEDB_DUCKDB_THREADS", "3")
    config = export.duck_config()
    assert (config.memory_limit, config.threads) == ("300MB", 3)
