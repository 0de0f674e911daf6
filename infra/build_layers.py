#!/usr/bin/env python3
"""Build what infra/template.yaml deploys, with no Docker and no Cloud9: a Lambda layer per
function from its pinned requirements (manylinux wheels that pip downloads for the target Python
and architecture, never built here), and the function package (the project's packages and
lambda_handlers). Zips are deterministic: the same wheels and sources give the same bytes.

    python infra/build_layers.py                        # Python 3.12, x86_64, into infra/build/
    python infra/build_layers.py --platform arm64       # for Graviton (set the template's too)
    python infra/build_layers.py --python-version 3.11 --out /tmp/layers --no-ca-bundle

Writes, under --out (infra/build/ by default, never committed):
    layers/exporter.zip, layers/generator.zip   python/... as Lambda mounts it under /opt
    function.zip                                animedb, exporter, generators, lambda_handlers
    build.json                                  the target, every wheel with its sha256, sizes
and keeps the downloaded wheels in --wheel-cache (infra/build/wheels/), so a rebuild is offline.

The exporter layer carries DuckDB's postgres_scanner and httpfs extensions inside their wheels'
packages, where exporter.duck LOADs them by path: nothing is downloaded at run time and HOME
may be unset. It has no pyarrow: DuckDB writes the Parquet itself. boto3 is the Lambda
runtime's. The Amazon RDS CA bundle is fetched (where the network allows) into the function
package, beside lambda_handlers/rds.py, which verifies the database's certificate with it.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import shutil
import ssl
import stat
import subprocess
import sys
import urllib.error
import urllib.request
import zipfile
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

INFRA = Path(__file__).resolve().parent
REPO = INFRA.parent
DEFAULT_OUT = INFRA / "build"
REQUIREMENTS = {
    "exporter": INFRA / "requirements-exporter.txt",
    "generator": INFRA / "requirements-generator.txt",
}
# The project's packages every function gets (the handlers import only what they need). Not
# animedb_cli, the `animedb` command and its demo: they compose every tool (Scrapy, dbt) and
# sit above these packages, which never import them.
PROJECT_PACKAGES = (REPO / "animedb", REPO / "exporter", REPO / "generators")
HANDLERS = INFRA / "lambda_handlers"
CA_BUNDLE_URL = "https://truststore.pki.rds.amazonaws.com/global/global-bundle.pem"
CA_BUNDLE_NAME = "rds-ca-bundle.pem"  # lambda_handlers.rds.CA_BUNDLE_NAME

# Lambda's limit on a function's code and layers together, unzipped.
LAMBDA_UNZIPPED_LIMIT_MB = 250
# The python3.12 runtime runs on Amazon Linux 2023 (glibc 2.34): any manylinux_2_X wheel with
# X <= 34 runs there. DuckDB ships manylinux_2_26/2_28 wheels only, psycopg manylinux2014.
GLIBC_MINORS = range(17, 35)
ARCHITECTURES = {"x86_64": "x86_64", "arm64": "aarch64", "aarch64": "aarch64"}
DUCKDB_EXTENSIONS = ("postgres_scanner", "httpfs")
FORBIDDEN = {"exporter": ("pyarrow",)}  # DuckDB writes Parquet; pyarrow would cost ~150 MB
ZIP_TIME = (1980, 1, 1, 0, 0, 0)  # the earliest a zip can hold: no build time in the bytes
_NETWORK_TROUBLE = re.compile(
    r"NewConnectionError|NameResolutionError|Failed to establish a new connection|"
    r"Temporary failure in name resolution|Name or service not known|Network is unreachable|"
    r"Connection refused|"
    r"ConnectTimeout|Read timed out|ProxyError|Could not fetch URL|SSLError|connection broken",
    re.IGNORECASE,
)


class BuildError(RuntimeError):
    """The build cannot go on; the message says what to do."""


class DownloadError(BuildError):
    """pip could not download the wheels; `offline` when the index could not be reached."""

    def __init__(self, message: str, *, offline: bool) -> None:
        super().__init__(message)
        self.offline = offline


@dataclass(frozen=True)
class Target:
    """The Python and CPU the layers are for: pip's tags for them."""

    python_version: str = "3.12"
    platform: str = "x86_64"

    def __post_init__(self) -> None:
        if not re.fullmatch(r"3\.\d{1,2}", self.python_version):
            raise BuildError(f"--python-version {self.python_version!r}: give X.Y, e.g. 3.12")
        if self.platform not in ARCHITECTURES:
            raise BuildError(
                f"--platform {self.platform!r}: give one of {', '.join(sorted(ARCHITECTURES))}"
            )

    @property
    def machine(self) -> str:
        return ARCHITECTURES[self.platform]

    @property
    def abi(self) -> str:
        return "cp" + self.python_version.replace(".", "")

    def platform_tags(self) -> list[str]:
        """manylinux2014 (which pip widens to 2010 and 1) and every manylinux_2_X up to the
        runtime's glibc: DuckDB's wheels carry only manylinux_2_2X tags."""
        return [f"manylinux2014_{self.machine}"] + [
            f"manylinux_2_{minor}_{self.machine}" for minor in GLIBC_MINORS
        ]

    def pip_arguments(self) -> list[str]:
        arguments = [
            "--only-binary=:all:",
            "--implementation",
            "cp",
            "--python-version",
            self.python_version,
            "--abi",
            self.abi,
        ]
        for tag in self.platform_tags():
            arguments += ["--platform", tag]
        return arguments


@dataclass
class Artifact:
    name: str
    path: str
    unzipped_bytes: int
    zipped_bytes: int
    sha256: str
    wheels: dict[str, str] = field(default_factory=dict)  # file name -> sha256


@dataclass
class Report:
    target: Target
    artifacts: dict[str, Artifact]
    ca_bundle: str | None
    function_totals_mb: dict[str, float]

    def to_json(self) -> dict[str, object]:
        return {
            "python_version": self.target.python_version,
            "platform": self.target.platform,
            "platform_tags": self.target.platform_tags(),
            "ca_bundle": self.ca_bundle,
            "artifacts": {name: asdict(a) for name, a in self.artifacts.items()},
            "function_totals_mb": self.function_totals_mb,
            "limit_mb": LAMBDA_UNZIPPED_LIMIT_MB,
        }


def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def _sha256(path: Path) -> str:
    with path.open("rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def _pinned(requirements: Path) -> list[str]:
    """The requirement lines, each one `name==version`: the layer is exactly these."""
    lines = []
    for raw in requirements.read_text(encoding="utf-8").splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        if not re.fullmatch(r"[A-Za-z0-9._-]+==[A-Za-z0-9.+!-]+", line.split(" ")[0]):
            raise BuildError(f"{requirements.name}: {line!r} is not pinned as name==version")
        lines.append(line)
    if not lines:
        raise BuildError(f"{requirements.name} names no package")
    return lines


def _pip(arguments: Sequence[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pip", "--disable-pip-version-check", *arguments],
        capture_output=True,
        text=True,
        check=False,
    )


def download(requirements: Path, target: Target, cache: Path) -> None:
    """Every pinned wheel into `cache`: from the cache alone when it has them (offline, fast),
    else from the index."""
    cache.mkdir(parents=True, exist_ok=True)
    base = [
        "download",
        "--no-deps",
        "--dest",
        str(cache),
        "--find-links",
        str(cache),
        *target.pip_arguments(),
        "--requirement",
        str(requirements),
    ]
    if _pip([*base, "--no-index"]).returncode == 0:
        return
    _say(f"  downloading the wheels of {requirements.name} into {cache}")
    result = _pip([*base, "--retries", "2", "--timeout", "30"])
    if result.returncode != 0:
        output = (result.stderr or result.stdout).strip()
        tail = "\n".join(output.splitlines()[-6:])
        offline = bool(_NETWORK_TROUBLE.search(output))
        reason = "the package index cannot be reached" if offline else "pip refused"
        raise DownloadError(
            f"cannot download the wheels of {requirements.name} for Python "
            f"{target.python_version} {target.platform} ({reason}):\n{tail}",
            offline=offline,
        )


def install(requirements: Path, target: Target, cache: Path, dest: Path, report: Path) -> None:
    """The pinned wheels, unpacked into `dest` from the cache only, with no bytecode (it would
    be for this interpreter and carry timestamps); pip's account of it in `report`."""
    result = _pip(
        [
            "install",
            "--report",
            str(report),
            "--no-deps",
            "--no-index",
            "--find-links",
            str(cache),
            "--no-compile",
            "--target",
            str(dest),
            *target.pip_arguments(),
            "--requirement",
            str(requirements),
        ]
    )
    if result.returncode != 0:
        tail = "\n".join((result.stderr or result.stdout).strip().splitlines()[-6:])
        raise BuildError(f"pip could not install {requirements.name} into {dest}:\n{tail}")


def _installed_wheels(pip_report: Path) -> dict[str, str]:
    """The wheel files pip installed (from its --report), with their sha256, for build.json."""
    report = json.loads(pip_report.read_text(encoding="utf-8"))
    wheels = {}
    for item in report.get("install", []):
        url = item.get("download_info", {}).get("url", "")
        path = Path(urllib.request.url2pathname(url.removeprefix("file://")))
        if path.is_file():
            wheels[path.name] = _sha256(path)
    return dict(sorted(wheels.items()))


def _clean(tree: Path) -> None:
    for cache in sorted(tree.rglob("__pycache__"), reverse=True):
        shutil.rmtree(cache)
    for compiled in tree.rglob("*.py[co]"):
        compiled.unlink()


def _tree_bytes(tree: Path) -> int:
    return sum(p.stat().st_size for p in tree.rglob("*") if p.is_file())


def check_layer(name: str, python_dir: Path) -> None:
    """What a layer must (and must not) hold: the exporter's DuckDB extensions, no pyarrow."""
    for package in FORBIDDEN.get(name, ()):
        if (python_dir / package).exists():
            raise BuildError(f"the {name} layer holds {package}, which it must not need")
    if name == "exporter":
        for extension in DUCKDB_EXTENSIONS:
            found = sorted(python_dir.glob(f"duckdb_extension_*/**/{extension}.duckdb_extension"))
            if not found:
                raise BuildError(
                    f"the exporter layer has no {extension}.duckdb_extension: pin "
                    f"duckdb-extension-{extension.replace('_', '-')} in {REQUIREMENTS[name].name}"
                )


def deterministic_zip(source: Path, destination: Path) -> None:
    """Zip every file under `source` in path order, with a fixed time and permissions (0755 or
    0644 as the file is executable or not): the bytes depend on the contents only."""
    files = sorted(
        (p for p in source.rglob("*") if p.is_file() or p.is_symlink()),
        key=lambda p: p.relative_to(source).as_posix(),
    )
    destination.parent.mkdir(parents=True, exist_ok=True)
    partial = destination.with_name(destination.name + ".partial")
    with zipfile.ZipFile(partial, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for path in files:
            if path.is_symlink():
                raise BuildError(f"{path} is a symbolic link: Lambda's zips hold files only")
            info = zipfile.ZipInfo(path.relative_to(source).as_posix(), date_time=ZIP_TIME)
            mode = 0o755 if path.stat().st_mode & 0o111 else 0o644
            info.external_attr = (stat.S_IFREG | mode) << 16
            info.create_system = 3  # unix, so that the permissions above are read
            info.compress_type = zipfile.ZIP_DEFLATED
            info.file_size = path.stat().st_size
            with path.open("rb") as src, archive.open(info, "w") as dst:
                shutil.copyfileobj(src, dst, 1 << 20)
    partial.replace(destination)


def ca_bundle(out: Path, source: Path | None, fetch: bool) -> Path | None:
    """The Amazon RDS CA bundle: a given file, else fetched (kept in `out` for the next build
    and for psql through the tunnel), else the one an earlier build fetched, else none."""
    kept = out / CA_BUNDLE_NAME
    text: str | None = None
    if source is not None:
        text = source.read_text(encoding="ascii")
        where = str(source)
    elif fetch:
        where = CA_BUNDLE_URL
        try:
            with urllib.request.urlopen(CA_BUNDLE_URL, timeout=15) as response:
                text = response.read().decode("ascii")
        except (urllib.error.URLError, OSError, UnicodeDecodeError) as exc:
            if kept.exists():
                _say(f"  cannot fetch {CA_BUNDLE_URL} ({exc}); using {kept} from an earlier build")
                return kept
            _say(
                f"  WARNING: cannot fetch {CA_BUNDLE_URL} ({exc}): the functions will require "
                "TLS but cannot verify the database server. Rebuild where it is reachable, or "
                "pass --ca-bundle FILE."
            )
            return None
    else:
        return None
    count = text.count("-----BEGIN CERTIFICATE-----")
    try:
        ssl.create_default_context(cadata=text)
    except ssl.SSLError as exc:
        raise BuildError(f"{where} is not a PEM bundle of certificates: {exc}") from exc
    if count == 0:
        raise BuildError(f"{where} holds no certificate")
    out.mkdir(parents=True, exist_ok=True)
    kept.write_text(text, encoding="ascii")
    _say(f"  Amazon RDS CA bundle: {count} certificates from {where}")
    return kept


def _copy_package(source: Path, dest: Path) -> None:
    shutil.copytree(
        source,
        dest,
        # a CA bundle comes from this build only, never from a stale copy in the sources
        ignore=shutil.ignore_patterns("__pycache__", "*.py[co]", ".*", "*.pem"),
    )


def build_function(out: Path, bundle: Path | None) -> Artifact:
    stage = out / "stage" / "function"
    if stage.exists():
        shutil.rmtree(stage)
    stage.mkdir(parents=True)
    for package in (*PROJECT_PACKAGES, HANDLERS):
        _copy_package(package, stage / package.name)
    if bundle is not None:
        shutil.copyfile(bundle, stage / HANDLERS.name / CA_BUNDLE_NAME)
    zipped = out / "function.zip"
    deterministic_zip(stage, zipped)
    return Artifact(
        "function",
        str(zipped),
        _tree_bytes(stage),
        zipped.stat().st_size,
        _sha256(zipped),
    )


def build_layer(name: str, target: Target, out: Path, cache: Path) -> Artifact:
    requirements = REQUIREMENTS[name]
    _pinned(requirements)
    _say(f"layer {name}: {requirements.name} for Python {target.python_version} {target.platform}")
    download(requirements, target, cache)
    stage = out / "stage" / name
    if stage.exists():
        shutil.rmtree(stage)
    python_dir = stage / "python"
    python_dir.mkdir(parents=True)
    pip_report = stage.with_name(f"{name}-pip-report.json")
    install(requirements, target, cache, python_dir, pip_report)
    _clean(python_dir)
    check_layer(name, python_dir)
    zipped = out / "layers" / f"{name}.zip"
    deterministic_zip(stage, zipped)
    return Artifact(
        name,
        str(zipped),
        _tree_bytes(stage),
        zipped.stat().st_size,
        _sha256(zipped),
        _installed_wheels(pip_report),
    )


def build(
    target: Target,
    out: Path = DEFAULT_OUT,
    *,
    layers: Iterable[str] = tuple(REQUIREMENTS),
    wheel_cache: Path | None = None,
    ca_source: Path | None = None,
    fetch_ca: bool = True,
    limit_mb: float = LAMBDA_UNZIPPED_LIMIT_MB,
) -> Report:
    """Build the layers named and the function package into `out`; fail if a function (its
    package and its layer, unzipped) would pass Lambda's limit."""
    out = out.resolve()
    layers = tuple(layers)
    cache = (wheel_cache or out / "wheels").resolve()
    artifacts = {name: build_layer(name, target, out, cache) for name in layers}
    bundle = ca_bundle(out, ca_source, fetch_ca)
    artifacts["function"] = build_function(out, bundle)
    function_bytes = artifacts["function"].unzipped_bytes
    totals = {
        name: round((artifacts[name].unzipped_bytes + function_bytes) / 1e6, 1) for name in layers
    }
    report = Report(target, artifacts, str(bundle) if bundle else None, totals)
    (out / "build.json").write_text(json.dumps(report.to_json(), indent=2) + "\n")
    check_limit(totals, limit_mb)
    return report


def check_limit(function_totals_mb: dict[str, float], limit_mb: float) -> None:
    """Fail if a function, its package and its layer unzipped, passes Lambda's limit."""
    over = {name: mb for name, mb in function_totals_mb.items() if mb > limit_mb}
    if over:
        raise BuildError(
            f"over Lambda's limit of {limit_mb:g} MB unzipped: "
            + ", ".join(f"the {name} function needs {mb} MB" for name, mb in over.items())
        )


def _summary(report: Report) -> str:
    lines = [
        f"Python {report.target.python_version} {report.target.platform}",
        f"{'artifact':<12}{'unzipped MB':>13}{'zip MB':>9}  sha256",
    ]
    for artifact in report.artifacts.values():
        lines.append(
            f"{artifact.name:<12}{artifact.unzipped_bytes / 1e6:>13.1f}"
            f"{artifact.zipped_bytes / 1e6:>9.1f}  {artifact.sha256[:16]}"
        )
    for name, mb in report.function_totals_mb.items():
        lines.append(f"{name} function, code and layer: {mb} MB of {LAMBDA_UNZIPPED_LIMIT_MB} MB")
    lines.append(f"RDS CA bundle: {report.ca_bundle or 'NONE (TLS required, server not verified)'}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0] if __doc__ else None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--python-version", default="3.12", help="the runtime's (default 3.12)")
    parser.add_argument(
        "--platform",
        default="x86_64",
        choices=sorted(ARCHITECTURES),
        help="the functions' architecture (default x86_64)",
    )
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="default infra/build")
    parser.add_argument(
        "--layer",
        dest="layers",
        action="append",
        choices=sorted(REQUIREMENTS),
        help="build only this layer (repeatable; default all)",
    )
    parser.add_argument("--wheel-cache", type=Path, help="downloaded wheels (default OUT/wheels)")
    bundle = parser.add_mutually_exclusive_group()
    bundle.add_argument("--ca-bundle", type=Path, help="use this Amazon RDS CA bundle file")
    bundle.add_argument(
        "--no-ca-bundle", action="store_true", help="do not fetch the RDS CA bundle"
    )
    args = parser.parse_args(argv)
    try:
        report = build(
            Target(args.python_version, args.platform),
            args.out,
            layers=args.layers or tuple(REQUIREMENTS),
            wheel_cache=args.wheel_cache,
            ca_source=args.ca_bundle,
            fetch_ca=not args.no_ca_bundle,
        )
    except BuildError as exc:
        _say(f"error: {exc}")
        return 1
    print(_summary(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
