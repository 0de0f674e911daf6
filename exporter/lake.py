"""The lake: where files go and what they are called. A local folder or s3://bucket/prefix (any
S3-compatible endpoint, through the AWS SDK's usual variables and credential chain).

Layout (Hive style): <target>/<table>/load_date=YYYY-MM-DD/<run id>.parquet, and one manifest per
run, <target>/_manifests/<run id>.json, written last. Readers trust manifests only.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import urlparse

from exporter.errors import ExportError

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

MANIFESTS = "_manifests"
MANIFEST_FORMAT = 1
_MANIFEST_NAME = re.compile(r"^(\d{12})\.json$")


def run_name(run_id: int) -> str:
    """Run ids zero-padded, so that names sort in run order."""
    return f"{run_id:012d}"


def data_key(folder: str, load_date: dt.date, run_id: int) -> str:
    return f"{folder}/load_date={load_date.isoformat()}/{run_name(run_id)}.parquet"


def manifest_key(run_id: int) -> str:
    return f"{MANIFESTS}/{run_name(run_id)}.json"


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@dataclass(frozen=True)
class S3Access:
    """What DuckDB's httpfs needs to read the lake, resolved from the AWS SDK's chain."""

    key_id: str
    secret: str
    session_token: str | None
    region: str
    endpoint: str | None  # host[:port], None for AWS itself
    use_ssl: bool


class Lake(Protocol):
    uri: str

    def check(self) -> None:
        """Fail with one clear line if the target cannot be written."""

    def staging_path(self, key: str) -> Path:
        """Where a file for `key` is written before it is put in place."""

    def put_file(self, staged: Path, key: str) -> None:
        """Put a staged file at `key`, replacing what is there (atomically)."""

    def put_json(self, key: str, document: dict[str, Any]) -> None: ...

    def get_json(self, key: str) -> dict[str, Any] | None: ...

    def delete(self, key: str) -> None: ...

    def list_keys(self, prefix: str) -> list[str]: ...

    def reader_path(self, key: str) -> str:
        """How DuckDB names the file when it reads it."""

    def s3_access(self) -> S3Access | None: ...


class LocalLake:
    def __init__(self, root: Path) -> None:
        self.root = root.expanduser().resolve()
        self.uri = str(self.root)

    def check(self) -> None:
        if self.root.exists() and not self.root.is_dir():
            raise ExportError(f"target {self.root} is a file, not a folder: name a folder")
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile(dir=self.root, prefix=".write-check-"):
                pass
        except OSError as exc:
            raise ExportError(f"cannot write to target {self.root}: {exc.strerror}") from exc

    def staging_path(self, key: str) -> Path:
        path = self.root / key
        path.parent.mkdir(parents=True, exist_ok=True)
        # one exporter at a time (advisory lock): a retry overwrites what a killed run left here
        return path.with_name(f".{path.name}.tmp")

    def put_file(self, staged: Path, key: str) -> None:
        target = self.root / key
        target.parent.mkdir(parents=True, exist_ok=True)
        with staged.open("rb") as f:
            os.fsync(f.fileno())
        staged.replace(target)
        self._sync_dir(target.parent)

    def put_json(self, key: str, document: dict[str, Any]) -> None:
        staged = self.staging_path(key)
        staged.write_text(json.dumps(document, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        self.put_file(staged, key)

    def get_json(self, key: str) -> dict[str, Any] | None:
        path = self.root / key
        if not path.exists():
            return None
        document: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
        return document

    def delete(self, key: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            (self.root / key).unlink()

    def list_keys(self, prefix: str) -> list[str]:
        base = self.root / prefix
        if not base.exists():
            return []
        return sorted(
            str(p.relative_to(self.root))
            for p in base.rglob("*")
            if p.is_file() and not p.name.startswith(".")
        )

    def reader_path(self, key: str) -> str:
        return str(self.root / key)

    def s3_access(self) -> S3Access | None:
        return None

    @staticmethod
    def _sync_dir(folder: Path) -> None:
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


class S3Lake:
    def __init__(self, bucket: str, prefix: str) -> None:
        import boto3
        from botocore.config import Config

        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.uri = f"s3://{bucket}/{self.prefix}" if self.prefix else f"s3://{bucket}"
        self._session = boto3.session.Session()
        # endpoint and region come from the SDK's usual settings (AWS_ENDPOINT_URL_S3, ...)
        self.client: S3Client = self._session.client(
            "s3",
            config=Config(
                retries={"max_attempts": 3, "mode": "standard"},
                connect_timeout=5,
                read_timeout=60,
                s3={"addressing_style": "path"},
            ),
        )
        self._staging = Path(tempfile.mkdtemp(prefix="animedb-export-"))

    def _key(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    def _explain(self, exc: Exception, action: str) -> ExportError:
        from botocore.exceptions import (
            ClientError,
            EndpointConnectionError,
            NoCredentialsError,
        )

        if isinstance(exc, NoCredentialsError):
            return ExportError(
                f"no AWS credentials to {action} {self.uri}: set AWS_ACCESS_KEY_ID and "
                "AWS_SECRET_ACCESS_KEY, AWS_PROFILE, or run where a role provides them"
            )
        if isinstance(exc, EndpointConnectionError):
            return ExportError(
                f"cannot reach the S3 endpoint to {action} {self.uri}: {exc} "
                "(check AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL and the network)"
            )
        if isinstance(exc, ClientError):
            code = exc.response.get("Error", {}).get("Code", "")
            if code in ("NoSuchBucket", "404"):
                return ExportError(
                    f"bucket {self.bucket} does not exist: create it or fix the target"
                )
            if code in ("InvalidAccessKeyId", "SignatureDoesNotMatch", "403", "AccessDenied"):
                return ExportError(
                    f"S3 refused the credentials to {action} {self.uri} ({code}): "
                    "check the AWS credentials and the bucket policy"
                )
            return ExportError(f"S3 error while trying to {action} {self.uri}: {code or exc}")
        return ExportError(f"S3 error while trying to {action} {self.uri}: {exc}")

    def _call(self, action: str, func: Any, **kwargs: Any) -> Any:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return func(**kwargs)
        except (BotoCoreError, ClientError) as exc:
            raise self._explain(exc, action) from exc

    def check(self) -> None:
        self._call("reach", self.client.head_bucket, Bucket=self.bucket)
        probe = self._key(f"{MANIFESTS}/.write-check-{os.getpid()}")
        self._call("write to", self.client.put_object, Bucket=self.bucket, Key=probe, Body=b"")
        self._call("write to", self.client.delete_object, Bucket=self.bucket, Key=probe)

    def staging_path(self, key: str) -> Path:
        return self._staging / key.replace("/", "__")

    def put_file(self, staged: Path, key: str) -> None:
        try:
            self._call(
                "write to",
                self.client.upload_file,
                Filename=str(staged),
                Bucket=self.bucket,
                Key=self._key(key),
                ExtraArgs={"ChecksumAlgorithm": "SHA256"},
            )
        finally:
            staged.unlink(missing_ok=True)

    def put_json(self, key: str, document: dict[str, Any]) -> None:
        body = (json.dumps(document, indent=2, sort_keys=True) + "\n").encode()
        self._call(
            "write to",
            self.client.put_object,
            Bucket=self.bucket,
            Key=self._key(key),
            Body=body,
            ContentType="application/json",
        )

    def get_json(self, key: str) -> dict[str, Any] | None:
        from botocore.exceptions import ClientError

        try:
            response = self.client.get_object(Bucket=self.bucket, Key=self._key(key))
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                return None
            raise self._explain(exc, "read from") from exc
        document: dict[str, Any] = json.loads(response["Body"].read())
        return document

    def delete(self, key: str) -> None:
        self._call("delete from", self.client.delete_object, Bucket=self.bucket, Key=self._key(key))

    def list_keys(self, prefix: str) -> list[str]:
        keys: list[str] = []
        paginator = self.client.get_paginator("list_objects_v2")
        full = self._key(prefix)
        try:
            for page in paginator.paginate(Bucket=self.bucket, Prefix=full):
                for item in page.get("Contents", []):
                    key = item["Key"]
                    keys.append(key[len(self.prefix) + 1 :] if self.prefix else key)
        except Exception as exc:
            raise self._explain(exc, "list") from exc
        return sorted(k for k in keys if not k.rsplit("/", 1)[-1].startswith("."))

    def reader_path(self, key: str) -> str:
        return f"s3://{self.bucket}/{self._key(key)}"

    def s3_access(self) -> S3Access:
        credentials = self._session.get_credentials()
        if credentials is None:
            raise ExportError(f"no AWS credentials to read {self.uri}")
        frozen = credentials.get_frozen_credentials()
        if not frozen.access_key or not frozen.secret_key:
            raise ExportError(f"incomplete AWS credentials to read {self.uri}")
        endpoint = urlparse(self.client.meta.endpoint_url)
        is_aws = endpoint.hostname is not None and endpoint.hostname.endswith(".amazonaws.com")
        return S3Access(
            key_id=frozen.access_key,
            secret=frozen.secret_key,
            session_token=frozen.token,
            region=self.client.meta.region_name or "us-east-1",
            endpoint=None if is_aws else endpoint.netloc,
            use_ssl=endpoint.scheme == "https",
        )


def open_lake(target: str) -> Lake:
    """A folder path (or file://...) or s3://bucket/prefix; anything else is refused."""
    parsed = urlparse(target)
    if parsed.scheme == "s3":
        if not parsed.netloc:
            raise ExportError(f"target {target!r} names no bucket: use s3://bucket/prefix")
        return S3Lake(parsed.netloc, parsed.path)
    if parsed.scheme == "file":
        return LocalLake(Path(parsed.path))
    if parsed.scheme and len(parsed.scheme) > 1:
        raise ExportError(f"target {target!r} is not supported: use a folder or s3://bucket/prefix")
    if not target.strip():
        raise ExportError("no target given: use a folder or s3://bucket/prefix")
    return LocalLake(Path(target))


def committed_manifests(lake: Lake) -> list[dict[str, Any]]:
    """Every manifest in the lake, in run order: the only record of what the lake holds."""
    documents = []
    for key in lake.list_keys(MANIFESTS):
        if _MANIFEST_NAME.match(key.rsplit("/", 1)[-1]):
            document = lake.get_json(key)
            if document is not None:
                documents.append(document)
    return sorted(documents, key=lambda d: int(d["run_id"]))
