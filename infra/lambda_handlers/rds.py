"""Connection settings for a Lambda function: host, port, database and user from the environment
the template sets, and for every connection a fresh RDS IAM authentication token (boto3 signs it
locally with the function's own credentials; the template allows each function `rds-db:connect`
for its own database user only). No function reads the master user's secret. A token admits
logins for 15 minutes, Lambda's longest run: DuckDB opens its further connections from the
string it was attached with, so they stay within that time.

TLS always: verified against the Amazon RDS CA bundle that build_layers.py puts beside this
module, else required without verifying the server (and every message says so). db.Settings has
no TLS fields, so RdsSettings adds them, and the token, to every conninfo it hands out, which
covers psycopg and DuckDB's postgres scanner alike.
"""

from __future__ import annotations

import logging
import os
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from animedb import db

if TYPE_CHECKING:
    from mypy_boto3_rds import RDSClient

# Set by infra/template.yaml on both functions.
HOST_VARIABLE = "ANIMEDB_DB_HOST"
USER_VARIABLE = "ANIMEDB_DB_USER"
PORT_VARIABLE = "ANIMEDB_DB_PORT"
NAME_VARIABLE = "ANIMEDB_DB_NAME"
REGION_VARIABLE = "AWS_REGION"  # Lambda's own
# For tests against a local server without TLS; the template never sets it.
SSLMODE_OVERRIDE_VARIABLE = "ANIMEDB_DB_SSLMODE"
SSLMODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")

CA_BUNDLE_NAME = "rds-ca-bundle.pem"
CA_BUNDLE = Path(__file__).with_name(CA_BUNDLE_NAME)
CA_BUNDLE_URL = "https://truststore.pki.rds.amazonaws.com/global/global-bundle.pem"

log = logging.getLogger(__name__)


class ConfigurationError(RuntimeError):
    """The function's environment is not what the template sets up, or it cannot sign a token."""


@dataclass(frozen=True)
class Tls:
    sslmode: str
    sslrootcert: str | None
    description: str
    verified: bool


@dataclass(frozen=True)
class RdsSettings(db.Settings):
    """db.Settings with libpq's TLS parameters and a new IAM token on every connection string."""

    sslmode: str = "require"
    sslrootcert: str | None = None
    tls: str = "TLS required"
    region: str = ""

    def conninfo(self, **extra: str | int | None) -> str:
        params: dict[str, str | int | None] = {
            "sslmode": self.sslmode,
            "sslrootcert": self.sslrootcert,
        }
        params.update(extra)
        user = str(params.get("user") or self.user)
        host = str(params.get("host") or self.host)
        port = int(params.get("port") or self.port or 5432)
        params["password"] = auth_token(host, port, user, self.region)
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


_client: RDSClient | None = None
_tokens: deque[str] = deque(maxlen=64)  # the latest tokens, so that no message ever shows one
_warned: list[str] = []  # an unverified server is said once per container, not every run
tokens_made = 0  # how many tokens this container signed (for logs and tests)


def _rds_client(region: str) -> RDSClient:
    global _client
    if _client is None or _client.meta.region_name != region:
        import boto3  # the Lambda runtime's; imported late so that tools without it still load

        _client = boto3.session.Session().client("rds", region_name=region)
    return _client


def auth_token(host: str, port: int, user: str, region: str) -> str:
    """An IAM authentication token for `user` at host:port, valid for a login within 15 minutes;
    signing needs no network, only the function's credentials."""
    global tokens_made
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        token = _rds_client(region).generate_db_auth_token(
            DBHostname=host, Port=port, DBUsername=user, Region=region
        )
    except (BotoCoreError, ClientError) as exc:
        raise ConfigurationError(
            f"cannot sign an IAM database token for {user}: {exc} (the function's role "
            "provides the credentials; locally, the AWS SDK's credential chain)"
        ) from exc
    tokens_made += 1
    _tokens.append(token)
    return token


def forget() -> None:
    """Drop what this container remembers (the client, the tokens, the warnings); for tests."""
    global _client, tokens_made
    _client = None
    _tokens.clear()
    _warned.clear()
    tokens_made = 0


def _required(env: Mapping[str, str], name: str) -> str:
    value = env.get(name)
    if not value:
        raise ConfigurationError(f"{name} is not set: the template sets it on the function")
    return value


def settings(role: str, environ: Mapping[str, str] | None = None) -> RdsSettings:
    """The database the template points the function at, as the tool role `role`, which must be
    the user the template names (the one the function's IAM policy may connect as)."""
    env = os.environ if environ is None else environ
    host = _required(env, HOST_VARIABLE)
    user = _required(env, USER_VARIABLE)
    if user != role:
        raise ConfigurationError(
            f"{USER_VARIABLE}={user!r}, but this function logs in as {role}: the template "
            f"sets {USER_VARIABLE}={role} and allows rds-db:connect for that user only"
        )
    port_text = env.get(PORT_VARIABLE)
    try:
        port = int(port_text) if port_text else 5432
    except ValueError:
        raise ConfigurationError(f"{PORT_VARIABLE}={port_text!r} is not a port number") from None
    region = env.get(REGION_VARIABLE) or env.get("AWS_DEFAULT_REGION")
    if not region:
        raise ConfigurationError(
            f"{REGION_VARIABLE} is not set: Lambda sets it; elsewhere set it to the database's "
            "region"
        )
    transport = tls(env)
    if not transport.verified and not _warned:
        _warned.append(transport.description)
        log.warning("database connection: %s", transport.description)
    return RdsSettings(
        host=host,
        port=port,
        user=user,
        password=None,
        dbname=env.get(NAME_VARIABLE) or db.DEFAULT_DATABASE,
        embedded=False,
        sslmode=transport.sslmode,
        sslrootcert=transport.sslrootcert,
        tls=transport.description,
        region=region,
    )


def redact(text: str) -> str:
    """`text` with every token this container made, and any conninfo password, masked (DuckDB
    repeats the whole connection string in its errors)."""
    for token in _tokens:
        text = text.replace(token, "********")
    return db.redact_conninfo(text)
