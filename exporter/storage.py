"""The target's storage: a local folder or s3://bucket/prefix (any S3-compatible endpoint,
through the AWS SDK's usual variables and credential chain), and the local staging folder files
are written in before they are put in place.

The lake itself is a set of Iceberg tables (exporter/catalog.py); this module only puts, finds,
lists and deletes files at the locations the tables give them, atomically (a rename, one S3
upload), and says in one line why a target cannot be used.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import errno
import fcntl
import hashlib
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

from animedb.files import install
from exporter.errors import ExportError
from exporter.fileio import confine, local_path, s3_client, split_s3

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

# what the plain-Parquet lake of earlier versions left at its root
OLD_LAYOUT_MARKER = "_manifests"


def sha256_of(path: Path) -> str:
    with path.open("rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


@dataclass(frozen=True)
class S3Access:
    """What DuckDB's httpfs needs to read the lake, resolved from the AWS SDK's chain."""

    key_id: str
    secret: str
    session_token: str | None
    region: str
    endpoint: str | None  # host[:port], None for AWS itself
    use_ssl: bool


def explain_s3(exc: Exception, action: str, where: str) -> ExportError:
    """One line for an S3 failure, saying what to check."""
    from botocore.exceptions import ClientError, EndpointConnectionError, NoCredentialsError

    if isinstance(exc, NoCredentialsError):
        return ExportError(
            f"no AWS credentials to {action} {where}: set AWS_ACCESS_KEY_ID and "
            "AWS_SECRET_ACCESS_KEY, AWS_PROFILE, or run where a role provides them"
        )
    if isinstance(exc, EndpointConnectionError):
        return ExportError(
            f"cannot reach the S3 endpoint to {action} {where}: {exc} "
            "(check AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL and the network)"
        )
    if isinstance(exc, ClientError):
        code = exc.response.get("Error", {}).get("Code", "")
        if code == "NoSuchBucket" or (code == "404" and action == "reach"):
            bucket = urlparse(where).netloc or where
            return ExportError(f"bucket {bucket} does not exist: create it or fix the target")
        if code in ("InvalidAccessKeyId", "SignatureDoesNotMatch", "403", "AccessDenied"):
            return ExportError(
                f"S3 refused the credentials to {action} {where} ({code}): "
                "check the AWS credentials and the bucket policy"
            )
        return ExportError(f"S3 error while trying to {action} {where}: {code or exc}")
    return ExportError(f"S3 error while trying to {action} {where}: {exc}")


@contextlib.contextmanager
def storage_errors(where: str) -> Iterator[None]:
    """AWS failures below pyiceberg or the SDK (S3, Glue) become one ExportError line."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        yield
    except (BotoCoreError, ClientError) as exc:
        raise explain_s3(exc, "use", where) from exc


STAGING_PREFIX = "animedb-export-"
_LOCK_NAME = ".owner"


class Staging:
    """A local folder for files before they are put in place, owned by this process for as long
    as it lives (it holds a lock on a file inside). Opening one first removes the folders whose
    owner is gone: a killed run's files, and DuckDB's spill files, do not pile up in the
    temporary folder (on Lambda, /tmp outlives an invocation)."""

    def __init__(self, parent: Path | None = None) -> None:
        self.parent = parent or Path(tempfile.gettempdir())
        self.path: Path | None = None
        self._lock: int | None = None
        self.removed = 0  # folders of dead owners removed on the way in

    def __enter__(self) -> Staging:
        self.removed = sweep_staging(self.parent)
        self.path = Path(tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=self.parent))
        self._lock = os.open(self.path / _LOCK_NAME, os.O_CREAT | os.O_RDWR, 0o600)
        fcntl.flock(self._lock, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.path is not None:
            shutil.rmtree(self.path, ignore_errors=True)
        if self._lock is not None:
            os.close(self._lock)
        self.path, self._lock = None, None

    def file(self, name: str) -> Path:
        """A path in the folder for a file to be written (one exporter at a time)."""
        assert self.path is not None, "the staging folder is used inside its with block"
        return self.path / name.replace("/", "__")

    def folder(self, name: str) -> Path:
        """A subfolder, made empty."""
        path = self.file(name)
        shutil.rmtree(path, ignore_errors=True)
        path.mkdir()
        return path


def sweep_staging(parent: Path) -> int:
    """Remove the staging folders in `parent` whose owner process is gone (their lock is free);
    the number removed."""
    removed = 0
    for folder in parent.glob(f"{STAGING_PREFIX}*"):
        if not folder.is_dir():
            continue
        try:
            fd = os.open(folder / _LOCK_NAME, os.O_RDWR)
        except FileNotFoundError:  # a folder of an older version, or one not yet locked
            if _age(folder) < dt.timedelta(hours=1):
                continue
            fd = None
        except OSError:
            continue
        try:
            if fd is not None:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            continue  # alive: its owner holds the lock
        finally:
            if fd is not None:
                os.close(fd)
        shutil.rmtree(folder, ignore_errors=True)
        removed += 1
    return removed


def _age(path: Path) -> dt.timedelta:
    return dt.datetime.now(dt.UTC) - dt.datetime.fromtimestamp(path.stat().st_mtime, dt.UTC)


@dataclass(frozen=True)
class StoredFile:
    """A file in the target, as a listing shows it."""

    location: str
    size: int
    modified: dt.datetime


class Storage:
    """A target's storage: its URI (the warehouse of the Iceberg catalog, unless one is
    configured) and the file operations the exporter needs at any location inside it."""

    def __init__(self, uri: str) -> None:
        self.uri = uri
        # where the lake's files may be: the target, and a warehouse configured elsewhere
        self.roots = [uri]

    def confine(self, location: str) -> str:
        """`location`, refused in one line unless it is inside the lake (fileio.confine)."""
        confine(location, self.roots)
        return location

    @property
    def is_s3(self) -> bool:
        return self.uri.startswith("s3://")

    def client(self) -> S3Client:
        return s3_client()

    def _s3(self, action: str, where: str, func: Any, **kwargs: Any) -> Any:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return func(**kwargs)
        except (BotoCoreError, ClientError) as exc:
            raise explain_s3(exc, action, where) from exc

    def location(self, relative: str) -> str:
        """A location inside the target."""
        return f"{self.uri.rstrip('/')}/{relative}"

    def check(self) -> None:
        """Fail with one clear line if the target cannot be written, or holds the old layout."""
        if self.is_s3:
            bucket, prefix = split_s3(self.uri)
            self._s3("reach", self.uri, self.client().head_bucket, Bucket=bucket)
            probe = f"{prefix.rstrip('/')}/.write-check-{os.getpid()}".lstrip("/")
            self._s3("write to", self.uri, self.client().put_object, Bucket=bucket, Key=probe)
            self._s3("write to", self.uri, self.client().delete_object, Bucket=bucket, Key=probe)
        else:
            root = Path(self.uri)
            if root.exists() and not root.is_dir():
                raise ExportError(f"target {root} is a file, not a folder: name a folder")
            try:
                root.mkdir(parents=True, exist_ok=True)
                with tempfile.NamedTemporaryFile(dir=root, prefix=".write-check-"):
                    pass
            except OSError as exc:
                raise ExportError(f"cannot write to target {root}: {exc.strerror}") from exc
        self.refuse_old_layout("which cannot be continued as Iceberg tables")

    def refuse_old_layout(self, consequence: str) -> None:
        """Fail with one line if the target holds the plain-Parquet lake of earlier versions;
        `consequence`: what that means for the command, as a relative clause."""
        if self.list_files(self.location(OLD_LAYOUT_MARKER), limit=1):
            raise ExportError(
                f"{self.uri} holds a lake of the earlier plain-Parquet layout (_manifests/), "
                f"{consequence}: export to a new, empty target"
            )

    def put_file(self, staged: Path, location: str) -> None:
        """Put a staged file at `location`, replacing what is there, atomically; the staged
        file is gone afterwards."""
        path = local_path(self.confine(location))
        try:
            if path is not None:
                path.parent.mkdir(parents=True, exist_ok=True)
                with staged.open("rb") as f:
                    os.fsync(f.fileno())
                try:
                    staged.replace(path)
                except OSError as exc:
                    if exc.errno != errno.EXDEV:
                        raise
                    _copy_in_place(staged, path)  # staging and target on other file systems
                _sync_dir(path.parent)
                return
            bucket, key = split_s3(location)
            self._s3(
                "write to",
                location,
                self.client().upload_file,
                Filename=str(staged),
                Bucket=bucket,
                Key=key,
                ExtraArgs={"ChecksumAlgorithm": "SHA256"},
            )
        finally:
            staged.unlink(missing_ok=True)

    def has_file(self, location: str, size: int, sha256: str) -> bool:
        """Whether `location` holds exactly this file (a resumed run keeps such chunks)."""
        path = local_path(self.confine(location))
        if path is not None:
            return path.is_file() and path.stat().st_size == size and sha256_of(path) == sha256
        from botocore.exceptions import ClientError

        bucket, key = split_s3(location)
        try:
            head = self.client().head_object(Bucket=bucket, Key=key, ChecksumMode="ENABLED")
        except ClientError:
            return False
        stored = head.get("ChecksumSHA256")
        expected = base64.b64encode(bytes.fromhex(sha256)).decode()
        return int(head["ContentLength"]) == size and stored == expected

    def size_of(self, location: str) -> int | None:
        """The size of the file at `location`, None when there is none."""
        path = local_path(self.confine(location))
        if path is not None:
            return path.stat().st_size if path.is_file() else None
        from botocore.exceptions import ClientError

        bucket, key = split_s3(location)
        try:
            return int(self.client().head_object(Bucket=bucket, Key=key)["ContentLength"])
        except ClientError:
            return None

    def delete(self, location: str) -> None:
        path = local_path(self.confine(location))
        if path is not None:
            path.unlink(missing_ok=True)
            return
        bucket, key = split_s3(location)
        self._s3("delete from", location, self.client().delete_object, Bucket=bucket, Key=key)

    def list_files(self, prefix: str, limit: int | None = None) -> list[str]:
        """Locations of the files under a folder location (dot-files left out)."""
        found = [
            f.location
            for f in self.listing(prefix, limit=limit)
            if not f.location.rsplit("/", 1)[-1].startswith(".")
        ]
        return found[:limit] if limit else found

    def listing(self, prefix: str, limit: int | None = None) -> list[StoredFile]:
        """Every file under a folder location, dot-files too, with its size and modification
        time, sorted by location."""
        path = local_path(self.confine(prefix))
        found: list[StoredFile] = []
        if path is not None:
            if not path.is_dir():
                return []
            for p in sorted(path.rglob("*")):
                with contextlib.suppress(FileNotFoundError):  # deleted meanwhile
                    stat = p.lstat()
                    if p.is_file() and not p.is_symlink():
                        modified = dt.datetime.fromtimestamp(stat.st_mtime, dt.UTC)
                        found.append(StoredFile(str(p), stat.st_size, modified))
                if limit and len(found) >= limit:
                    break
            return found
        bucket, key = split_s3(prefix)
        paginator = self.client().get_paginator("list_objects_v2")
        try:
            for page in paginator.paginate(Bucket=bucket, Prefix=key.rstrip("/") + "/"):
                for item in page.get("Contents", []):
                    found.append(
                        StoredFile(
                            f"s3://{bucket}/{item['Key']}",
                            int(item["Size"]),
                            item["LastModified"].astimezone(dt.UTC),
                        )
                    )
                if limit and len(found) >= limit:
                    break
        except Exception as exc:
            raise explain_s3(exc, "list", prefix) from exc
        found.sort(key=lambda f: f.location)
        return found[:limit] if limit else found

    def reader_path(self, location: str) -> str:
        """How DuckDB names a file when it reads it (local files without file://); a file
        outside the lake is refused."""
        path = local_path(self.confine(location))
        return str(path) if path is not None else location

    def s3_access(self) -> S3Access | None:
        if not self.is_s3:
            return None
        import boto3

        session = boto3.session.Session()
        credentials = session.get_credentials()
        if credentials is None:
            raise ExportError(f"no AWS credentials to read {self.uri}")
        frozen = credentials.get_frozen_credentials()
        if not frozen.access_key or not frozen.secret_key:
            raise ExportError(f"incomplete AWS credentials to read {self.uri}")
        client = self.client()
        endpoint = urlparse(client.meta.endpoint_url)
        is_aws = endpoint.hostname is not None and endpoint.hostname.endswith(".amazonaws.com")
        return S3Access(
            key_id=frozen.access_key,
            secret=frozen.secret_key,
            session_token=frozen.token,
            region=client.meta.region_name or "us-east-1",
            endpoint=None if is_aws else endpoint.netloc,
            use_ssl=endpoint.scheme == "https",
        )


def _copy_in_place(staged: Path, path: Path) -> None:
    """Copy a staged file beside `path`, then rename it over `path`: atomic across file
    systems."""
    handle, temp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    temp = Path(temp_name)
    try:
        os.close(handle)
        shutil.copyfile(staged, temp)  # the kernel's copy (copy_file_range, sendfile)
        with temp.open("rb") as out:
            os.fsync(out.fileno())
        install(temp, path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise


def _sync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# Characters a target may not hold: they mean something else to a URL (? # %), to DuckDB's file
# globbing ([ ] * { }), or to a terminal and a log line (control characters).
_REFUSED = frozenset("?#%[]*{}\\")
_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
MAX_S3_TARGET = 512  # S3 keys are at most 1,024 bytes; the lake's own paths need the rest
MAX_NAME = 255  # a folder name, in bytes (NAME_MAX of Linux's file systems)
MAX_LOCAL_TARGET = 1024  # PATH_MAX is 4,096; the lake's own paths need the rest


def _refuse_characters(target: str, text: str) -> None:
    for char in text:
        if char in _REFUSED or not char.isprintable():
            raise ExportError(
                f"target {target!r} contains {char!r}, which a target cannot hold: "
                "name a folder or s3://bucket/prefix without it"
            )


def open_storage(target: str) -> Storage:
    """A target in its one canonical form: s3://bucket/prefix, or a folder's absolute real
    path (from a path, relative or not, or file:///path). Anything that is not one, or that
    holds a character with another meaning somewhere on the way, is refused in one line
    before anything is written or recorded."""
    if not target.strip():
        raise ExportError("no target given: use a folder or s3://bucket/prefix")
    scheme, sep, rest = target.partition("://")
    if not sep or len(scheme) == 1:  # a plain path (or a Windows drive)
        return _local(target, target)
    scheme = scheme.lower()
    if scheme == "s3":
        return _s3(target, rest)
    if scheme == "file":
        host, slash, path = rest.partition("/")
        if host not in ("", "localhost"):
            raise ExportError(
                f"target {target!r} names host {host!r}: a file:// target is on this machine "
                "(file:///path)"
            )
        return _local(target, slash + path)
    raise ExportError(f"target {target!r} is not supported: use a folder or s3://bucket/prefix")


def _s3(target: str, rest: str) -> Storage:
    _refuse_characters(target, rest)
    bucket, _, prefix = rest.partition("/")
    if not bucket:
        raise ExportError(f"target {target!r} names no bucket: use s3://bucket/prefix")
    if not _BUCKET.fullmatch(bucket) or ".." in bucket:
        raise ExportError(
            f"target {target!r}: {bucket!r} is not a bucket name (3 to 63 lowercase letters, "
            "digits, dots and hyphens)"
        )
    prefix = prefix.rstrip("/")
    for part in prefix.split("/") if prefix else []:
        if part in ("", ".", ".."):
            shown = "an empty part" if not part else f"{part!r}"
            raise ExportError(
                f"target {target!r} has {shown} in its prefix, which S3 would keep as written: "
                "name the prefix without it"
            )
    uri = f"s3://{bucket}/{prefix}" if prefix else f"s3://{bucket}"
    if len(uri) > MAX_S3_TARGET:
        raise ExportError(
            f"target {target!r} is {len(uri)} characters; an s3:// target may have at "
            f"most {MAX_S3_TARGET} (S3 keys are limited): use a shorter prefix"
        )
    return Storage(uri)


def _local(target: str, path: str) -> Storage:
    _refuse_characters(target, path)
    try:
        resolved = Path(path).expanduser().resolve()
    except (OSError, RuntimeError) as exc:  # a symbolic link loop, an unknown ~user
        raise ExportError(f"target {target!r} cannot be resolved: {exc}") from exc
    for part in resolved.parts:
        if len(os.fsencode(part)) > MAX_NAME:
            raise ExportError(
                f"target {target!r} has a folder name of {len(os.fsencode(part))} bytes; "
                f"a file system allows at most {MAX_NAME}: use a shorter name"
            )
    if len(os.fsencode(str(resolved))) > MAX_LOCAL_TARGET:
        raise ExportError(
            f"target {target!r} is longer than {MAX_LOCAL_TARGET} bytes: use a shorter path"
        )
    _refuse_characters(target, str(resolved))  # a symbolic link may name what the path did not
    return Storage(str(resolved))
