"""The Lambda handlers' connection settings without a server: TLS always (verified when the RDS CA
bundle is packaged), a fresh IAM token signed by boto3 for the function's own user on every
connection, no password or token in any message, and DuckDB sized from the function's memory."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from animedb import db
from tests.infra_helpers import export, rds

HOST = "animedb.abc.eu-west-1.rds.amazonaws.com"
ENV = {
    rds.HOST_VARIABLE: HOST,
    rds.PORT_VARIABLE: "5432",
    rds.NAME_VARIABLE: "animedb",
    rds.USER_VARIABLE: db.EXPORTER_ROLE,
    rds.REGION_VARIABLE: "eu-west-1",
}


@pytest.fixture(autouse=True)
def fresh_container(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A container that has signed nothing yet, with credentials of its own (signing a token
    is local: nothing is sent anywhere)."""
    rds.forget()
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAIOSFODNN7EXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY")
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    yield
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


def test_every_connection_gets_a_token_of_its_own_user() -> None:
    settings = rds.settings(db.EXPORTER_ROLE, ENV)
    assert (settings.host, settings.port, settings.user, settings.password, settings.dbname) == (
        HOST,
        5432,
        db.EXPORTER_ROLE,
        None,
        "animedb",
    )
    first = psycopg.conninfo.conninfo_to_dict(settings.conninfo(application_name="x"))
    second = psycopg.conninfo.conninfo_to_dict(settings.login(db.EXPORTER_ROLE).conninfo())
    assert rds.tokens_made == 2
    assert first["sslmode"] in ("require", "verify-full") and first["application_name"] == "x"
    for conninfo in (first, second):
        token = str(conninfo["password"])
        # botocore's presigned rds-db:connect request for this host, port and user
        assert token.startswith(f"{HOST}:5432/?Action=connect&DBUser={db.EXPORTER_ROLE}&")
        assert "X-Amz-Signature=" in token and "X-Amz-Credential=AKIAIOSFODNN7EXAMPLE" in token
        assert "eu-west-1%2Frds-db%2Faws4_request" in token
    assert "TLS" in settings.describe()
    assert "PGPASSWORD" not in settings.environment()


def test_the_function_logs_in_as_the_user_the_template_names() -> None:
    with pytest.raises(rds.ConfigurationError, match="logs in as animedb_generator"):
        rds.settings(db.GENERATOR_ROLE, ENV)
    assert rds.tokens_made == 0


@pytest.mark.parametrize("missing", [rds.HOST_VARIABLE, rds.USER_VARIABLE, rds.REGION_VARIABLE])
def test_missing_environment_is_named(missing: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_DEFAULT_REGION", raising=False)
    env = {k: v for k, v in ENV.items() if k != missing}
    with pytest.raises(rds.ConfigurationError, match=missing):
        rds.settings(db.EXPORTER_ROLE, env)


def test_a_bad_port_is_named() -> None:
    with pytest.raises(rds.ConfigurationError, match="not a port number"):
        rds.settings(db.EXPORTER_ROLE, {**ENV, rds.PORT_VARIABLE: "54x"})


def test_no_credentials_is_one_clear_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    settings = rds.settings(db.EXPORTER_ROLE, ENV)
    with pytest.raises(rds.ConfigurationError, match="cannot sign an IAM database token"):
        settings.conninfo()


def test_messages_never_show_a_password_or_token() -> None:
    token = str(
        psycopg.conninfo.conninfo_to_dict(rds.settings(db.EXPORTER_ROLE, ENV).conninfo())[
            "password"
        ]
    )
    text = (
        f'IO Error: Unable to connect to Postgres at "host=h user=u password={token}'
        f" dbname=d\": FATAL: ... {token} and password='quoted secret'"
    )
    masked = rds.redact(text)
    assert "X-Amz-Signature" not in masked and "quoted secret" not in masked
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
    # a run spills into its own staging folder (exporter.storage.Staging), which the next run
    # removes when a timeout killed this one; nothing is configured here
    assert config.temp_directory is None
    # the exporter's own variables win
    monkeypatch.setenv("ANIMEDB_DUCKDB_MEMORY_LIMIT", "300MB")
    monkeypatch.setenv("ANIMEDB_DUCKDB_THREADS", "3")
    config = export.duck_config()
    assert (config.memory_limit, config.threads) == ("300MB", 3)
