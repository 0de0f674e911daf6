"""pyiceberg's file access for the lake, on local files and on S3 through boto3.

pyiceberg's own FileIOs need pyarrow or s3fs; the exporter needs neither (DuckDB writes the
data, pyiceberg only reads and writes metadata), and keeping pyarrow out keeps the exporter's
Lambda layer small. S3 follows the AWS SDK's variables and credential chain
(AWS_ENDPOINT_URL_S3, AWS_PROFILE, ...); pyiceberg's `s3.endpoint` and `s3.region` catalog
properties override them.
"""

from __future__ import annotations

import functools
import io
import json
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

from pyiceberg.io import FileIO, InputFile, InputStream, OutputFile, OutputStream

from animedb.files import install
from exporter.errors import ExportError

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

_clients: dict[tuple[str | None, str | None], S3Client] = {}


def s3_client(endpoint: str | None = None, region: str | None = None) -> S3Client:
    """One boto3 S3 client per endpoint and region, shared by the process."""
    key = (endpoint, region)
    if key not in _clients:
        import boto3
        from botocore.config import Config

        try:
            _clients[key] = boto3.session.Session().client(
                "s3",
                endpoint_url=endpoint,
                region_name=region,
                config=Config(
                    retries={"max_attempts": 3, "mode": "standard"},
                    connect_timeout=5,
                    read_timeout=60,
                    s3={"addressing_style": "path"},
                ),
            )
        except ValueError as exc:  # botocore's word for an endpoint that is not a URL
            raise ExportError(
                f"the S3 endpoint is not usable: {exc} (set AWS_ENDPOINT_URL, "
                "AWS_ENDPOINT_URL_S3 or the catalog's s3.endpoint to a URL such as "
                "http://127.0.0.1:9000, or unset them for AWS itself)"
            ) from exc
    return _clients[key]


def local_path(location: str) -> Path | None:
    """The file a location names, or None for an object store location."""
    parsed = urlparse(location)
    if parsed.scheme == "file":
        return Path(parsed.path)
    if not parsed.scheme or len(parsed.scheme) == 1:  # a plain path (or a Windows drive)
        return Path(location)
    return None


# the catalog property naming the folders a lake's files may be in (the target, and a warehouse
# configured elsewhere), as JSON; set by exporter.catalog.open_lake
ROOTS_PROPERTY = "animedb.lake-roots"


def confine(location: str, roots: Sequence[str]) -> None:
    """Refuse, in one line, a location outside every root: a path with `..`, a symbolic link
    leading elsewhere, another bucket or prefix. Locations come from the lake's metadata,
    which anyone who may edit the catalog can change; a file elsewhere is never read, written
    or deleted on its word."""
    if not roots:
        return
    if _inside(location, roots):
        return
    path = local_path(location)
    real = os.path.realpath(path) if path is not None else location
    leads = f", it leads to {escape(real)}" if path is not None and real != str(path) else ""
    raise ExportError(
        f"{escape(location)} is outside the lake ({escape(roots[0])}{leads}): a link in the "
        "lake or its metadata points elsewhere (another tool?), so nothing was read, written "
        "or deleted there; remove the link or restore the metadata, or export to a new target"
    )


def _inside(location: str, roots: Sequence[str]) -> bool:
    path = local_path(location)
    if path is not None:
        parsed = urlparse(location)
        if parsed.scheme == "file" and parsed.netloc not in ("", "localhost"):
            return False
        if not path.is_absolute() or ".." in path.parts:
            return False
        real = os.path.realpath(path)  # every symbolic link on the way followed
        return any(real == root or real.startswith(root.rstrip("/") + "/") for root in roots)
    try:
        bucket, key = split_s3(location)
    except ValueError:
        return False
    key = key.rstrip("/")
    if key and any(part in ("", ".", "..") for part in key.split("/")):
        return False
    canonical = f"s3://{bucket}/{key}" if key else f"s3://{bucket}"
    return any(canonical == root or canonical.startswith(root + "/") for root in roots)


def escape(text: str) -> str:
    """Text from the lake as one printable line: control characters (a newline, a terminal's
    escape codes) written as Python escapes."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def split_s3(location: str) -> tuple[str, str]:
    parsed = urlparse(location)
    if parsed.scheme not in ("s3", "s3a", "s3n"):
        raise ValueError(f"not a local or s3:// location: {location}")
    return parsed.netloc, parsed.path.lstrip("/")


class _Reader(io.BytesIO):
    """An object read whole: metadata files are small, and pyiceberg seeks in them."""

    def __enter__(self) -> _Reader:
        return self


class _S3Writer(io.BytesIO):
    """Buffers a metadata file and puts it in one request on close (an object appears whole)."""

    def __init__(self, client: S3Client, bucket: str, key: str) -> None:
        super().__init__()
        self._client, self._bucket, self._key = client, bucket, key

    def close(self) -> None:
        if not self.closed:
            self._client.put_object(Bucket=self._bucket, Key=self._key, Body=self.getvalue())
        super().close()

    def __enter__(self) -> _S3Writer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.close()
        else:  # nothing half-written reaches the bucket
            super().close()


class _LocalWriter(io.FileIO):
    """Writes beside the target and renames on close, so a reader never sees half a file;
    the file gets the umask's mode, not mkstemp's owner-only one, so other engines read it."""

    def __init__(self, target: Path) -> None:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, staged = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
        os.close(fd)
        super().__init__(staged, "wb")
        self._staged, self._target = Path(staged), target

    def close(self) -> None:
        if not self.closed:
            self.flush()
            os.fsync(self.fileno())
            super().close()
            install(self._staged, self._target)

    def __exit__(self, *exc: Any) -> None:
        if exc[0] is None:
            self.close()
        else:
            super().close()
            self._staged.unlink(missing_ok=True)


class LakeInputFile(InputFile):
    def __init__(self, location: str, fileio: LakeFileIO) -> None:
        confine(location, fileio.roots)
        super().__init__(location)
        self._io = fileio

    def __len__(self) -> int:
        path = local_path(self.location)
        if path is not None:
            return path.stat().st_size
        bucket, key = split_s3(self.location)
        return int(self._io.client().head_object(Bucket=bucket, Key=key)["ContentLength"])

    def exists(self) -> bool:
        path = local_path(self.location)
        if path is not None:
            return path.exists()
        from botocore.exceptions import ClientError

        bucket, key = split_s3(self.location)
        try:
            self._io.client().head_object(Bucket=bucket, Key=key)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return False
            raise
        return True

    def open(self, seekable: bool = True) -> InputStream:
        path = local_path(self.location)
        if path is not None:
            return path.open("rb")
        bucket, key = split_s3(self.location)
        body = self._io.client().get_object(Bucket=bucket, Key=key)["Body"].read()
        return _Reader(body)


class LakeOutputFile(OutputFile):
    def __init__(self, location: str, fileio: LakeFileIO) -> None:
        confine(location, fileio.roots)
        super().__init__(location)
        self._io = fileio

    def __len__(self) -> int:
        return len(self.to_input_file())

    def exists(self) -> bool:
        return self.to_input_file().exists()

    def to_input_file(self) -> LakeInputFile:
        return LakeInputFile(self.location, self._io)

    def create(self, overwrite: bool = False) -> OutputStream:
        if not overwrite and self.exists():
            raise FileExistsError(f"{self.location} already exists")
        path = local_path(self.location)
        if path is not None:
            return _LocalWriter(path)
        bucket, key = split_s3(self.location)
        return _S3Writer(self._io.client(), bucket, key)


class LakeFileIO(FileIO):
    """pyiceberg's FileIO for local paths and s3:// (catalog property py-io-impl), inside the
    lake's roots (catalog property animedb.lake-roots) alone."""

    @functools.cached_property
    def roots(self) -> list[str]:
        text = self.properties.get(ROOTS_PROPERTY)
        return list(json.loads(text)) if text else []

    def client(self) -> S3Client:
        return s3_client(self.properties.get("s3.endpoint"), self.properties.get("s3.region"))

    def new_input(self, location: str) -> LakeInputFile:
        return LakeInputFile(location, self)

    def new_output(self, location: str) -> LakeOutputFile:
        return LakeOutputFile(location, self)

    def delete(self, location: str | InputFile | OutputFile) -> None:
        name = location if isinstance(location, str) else location.location
        confine(name, self.roots)
        path = local_path(name)
        if path is not None:
            path.unlink(missing_ok=True)
            return
        bucket, key = split_s3(name)
        self.client().delete_object(Bucket=bucket, Key=key)
