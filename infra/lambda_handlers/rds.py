"""Connection settings for a Lambda function: host, port and database from the environment the
template sets, user and password from the RDS-managed master secret, fetched at run time, kept
while the container lives and fetched again after an authentication failure (RDS rotates it).

TLS always: verified against the Amazon RDS CA bundle that build_layers.py puts beside this
module, else required without verifying the server (and every message says so). db.Settings has
no TLS fields, so RdsSettings adds them to every conninfo it hands out, which covers psycopg and
DuckDB's postgres scanner alike.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from animedb import db

if TYPE_CHECKING:
    from mypy_boto3_secretsmanager import SecretsManagerClient

# Set by infra/template.yaml on both functions.
SECRET_ARN_VARIABLE = "ANIMEDB_DB_SECRET_ARN"  # noqa: S105  (a variable's name)
HOST_VARIABLE = "ANIMEDB_DB_HOST"
PORT_VARIABLE = "ANIMEDB_DB_PORT"
NAME_VARIABLE = "ANIMEDB_DB_NAME"
# For tests against a local server without TLS; the template never sets it.
SSLMODE_OVERRIDE_VARIABLE = "ANIMEDB_DB_SSLMODE"
SSLMODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")

CA_BUNDLE_NAME = "rds-ca-bundle.pem"
CA_BUNDLE = Path(__file__).with_name(CA_BUNDLE_NAME)
CA_BUNDLE_URL = "https://truststore.pki.rds.amazonaws.com/global/global-bundle.pem"

# libpq's words when the server turns the login away (FATAL at connection, never a later ERROR)
_AUTH_FAILURE = re.compile(
    r"FATAL:\s+(password authentication failed|PAM authentication failed"
    r'|role "[^"]*" does not exist)'
)
_PASSWORD_PARAMETER = re.compile(r"password\s*=\s*('(?:[^'\\]|\\.)*'|\S+)")

log = logging.getLogger(__name__)
T = TypeVar("T")


class ConfigurationError(RuntimeError):
    """The function's environment or its secret is not what the template sets up."""


@dataclass(frozen=True)
class Tls:
    sslmode: str
    sslrootcert: str | None
    description: str
    verified: bool


@dataclass(frozen=True)
class RdsSettings(db.Settings):
    """db.Settings with libpq's TLS parameters on every connection string."""

    sslmode: str = "require"
    sslrootcert: str | None = None
    tls: str = "TLS required"

    def conninfo(self, **extra: str | int | None) -> str:
        params: dict[str, str | int | None] = {
            "sslmode": self.sslmode,
            "sslrootcert": self.sslrootcert,
        }
        params.update(extra)
        return super().conninfo(**params)

    def environment(self) -> dict[str, str]:
        env = super().environment()
        env["PGSSLMODE"] = self.sslmode
        if self.sslrootcert:
            env["PGSSLROOTCERT"] = self.sslrootcert
        return env

    def describe(self) -> str:
        return f"{super().describe()} ({self.tls})"


def tls(environ: Mapping[str, str] | None = None, bundle: Path | None = None) -> Tls:
    """verify-full with the RDS CA bundle when the package has it, else require (unverified)."""
    env = os.environ if environ is None else environ
    bundle = CA_BUNDLE if bundle is None else bundle
    override = env.get(SSLMODE_OVERRIDE_VARIABLE)
    if override:
        if override not in SSLMODES:
            raise ConfigurationError(
                f"{SSLMODE_OVERRIDE_VARIABLE}={override!r} is not a libpq sslmode "
                f"({', '.join(SSLMODES)})"
            )
        verifying = override in ("verify-ca", "verify-full")
        return Tls(
            override,
            str(bundle) if verifying and bundle.is_file() else None,
            f"sslmode={override} from {SSLMODE_OVERRIDE_VARIABLE}, a test setting",
            verified=verifying,
        )
    if bundle.is_file():
        return Tls(
            "verify-full",
            str(bundle),
            "TLS, server verified against the Amazon RDS CA bundle",
            verified=True,
        )
    return Tls(
        "require",
        None,
        "TLS required, server NOT verified: the package has no Amazon RDS CA bundle; "
        "rebuild it with infra/build_layers.py where it can fetch " + CA_BUNDLE_URL,
        verified=False,
    )


@dataclass(frozen=True)
class Secret:
    username: str
    password: str
    host: str | None = None
    port: int | None = None
    dbname: str | None = None


_client: SecretsManagerClient | None = None
_secrets: dict[str, Secret] = {}
_passwords: set[str] = set()  # every password seen, so that no message ever shows one
fetches = 0  # how many times the secret was read from Secrets Manager (for logs and tests)
_warned: list[str] = []  # an unverified server is said once per container, not every run


def _secrets_client() -> SecretsManagerClient:
    global _client
    if _client is None:
        import boto3  # the Lambda runtime's; imported late so that tools without it still load
        from botocore.config import Config

        # fail within seconds, not at the function's timeout, when the endpoint is missing
        _client = boto3.client(
            "secretsmanager",
            config=Config(
                connect_timeout=5,
                read_timeout=10,
                retries={"max_attempts": 3, "mode": "standard"},
            ),
        )
    return _client


def _fetch(arn: str) -> str:
    global fetches
    from botocore.exceptions import BotoCoreError, ClientError

    fetches += 1
    try:
        response = _secrets_client().get_secret_value(SecretId=arn)
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "error")
        raise ConfigurationError(
            f"cannot read the database secret {arn} ({code}): check that it exists and that the "
            "function's role may call secretsmanager:GetSecretValue on it"
        ) from exc
    except BotoCoreError as exc:
        raise ConfigurationError(
            f"cannot reach Secrets Manager for {arn}: {exc} "
            "(in the VPC this needs the Secrets Manager interface endpoint)"
        ) from exc
    text = response.get("SecretString")
    if not text:
        raise ConfigurationError(f"the database secret {arn} holds no text (SecretString)")
    return text


def parse_secret(text: str, arn: str) -> Secret:
    """The JSON RDS keeps for a managed master user ({"username", "password"}); host, port and
    dbname are read too when a hand-made secret carries them."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        data = None
    if not isinstance(data, dict) or not data.get("username") or "password" not in data:
        raise ConfigurationError(
            f"the database secret {arn} is not JSON with username and password, as RDS keeps "
            "the master user's secret"
        )
    port = data.get("port")
    return Secret(
        username=str(data["username"]),
        password=str(data["password"]),
        host=str(data["host"]) if data.get("host") else None,
        port=int(port) if port else None,
        dbname=str(data["dbname"]) if data.get("dbname") else None,
    )


def secret(arn: str, *, refresh: bool = False) -> Secret:
    """The secret, from this container's memory unless `refresh` (or never read)."""
    if refresh or arn not in _secrets:
        value = parse_secret(_fetch(arn), arn)
        _secrets[arn] = value
        if value.password:
            _passwords.add(value.password)
    return _secrets[arn]


def forget() -> None:
    """Drop what this container remembers (the client and the secrets); for tests."""
    global _client, fetches
    _client = None
    _secrets.clear()
    _warned.clear()
    fetches = 0


def _required(env: Mapping[str, str], name: str) -> str:
    value = env.get(name)
    if not value:
        raise ConfigurationError(f"{name} is not set: the template sets it on the function")
    return value


def settings(environ: Mapping[str, str] | None = None, *, refresh: bool = False) -> RdsSettings:
    """The database the template points the function at, as the secret's user."""
    env = os.environ if environ is None else environ
    found = secret(_required(env, SECRET_ARN_VARIABLE), refresh=refresh)
    host = env.get(HOST_VARIABLE) or found.host
    if not host:
        raise ConfigurationError(
            f"{HOST_VARIABLE} is not set and the secret names no host: the template sets it"
        )
    port_text = env.get(PORT_VARIABLE)
    try:
        port = int(port_text) if port_text else (found.port or 5432)
    except ValueError:
        raise ConfigurationError(f"{PORT_VARIABLE}={port_text!r} is not a port number") from None
    transport = tls(env)
    if not transport.verified and not _warned:
        _warned.append(transport.description)
        log.warning("database connection: %s", transport.description)
    return RdsSettings(
        host=host,
        port=port,
        user=found.username,
        password=found.password,
        dbname=env.get(NAME_VARIABLE) or found.dbname or db.DEFAULT_DATABASE,
        embedded=False,
        sslmode=transport.sslmode,
        sslrootcert=transport.sslrootcert,
        tls=transport.description,
    )


def is_authentication_failure(exc: BaseException) -> bool:
    """Whether the server refused the login (stale credentials), anywhere in the chain: psycopg
    and DuckDB both pass libpq's message on, wrapped by db, the exporter or the generators."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if _AUTH_FAILURE.search(str(current)):
            return True
        current = current.__cause__ or current.__context__
    return False


def with_fresh_credentials(
    work: Callable[[RdsSettings], T], environ: Mapping[str, str] | None = None
) -> T:
    """Run `work` with the remembered credentials; if the server refuses them, read the secret
    again (it was rotated) and run it once more. Work that fails at login has done nothing."""
    try:
        return work(settings(environ))
    except Exception as exc:
        if not is_authentication_failure(exc):
            raise
        log.warning(
            "the database refused the remembered credentials; reading the secret again "
            "(rotated?): %s",
            redact(str(exc).splitlines()[0] if str(exc) else type(exc).__name__),
        )
    return work(settings(environ, refresh=True))


def redact(text: str) -> str:
    """`text` with every password this container has seen, and any conninfo password, masked
    (DuckDB repeats the whole connection string in its errors)."""
    for password in sorted(_passwords, key=len, reverse=True):
        if len(password) >= 4:  # masking one letter would mangle the message, not protect it
            text = text.replace(password, "********")
    return _PASSWORD_PARAMETER.sub("password=********", text)
