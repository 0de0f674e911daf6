"""infra/build_layers.py: pip's tags for the target, pinned requirements in step with pyproject,
deterministic zips, and a real build (for this interpreter's Python, the code path of the 3.12
build) whose exporter layer, unzipped, loads DuckDB's extensions with HOME unset and no network,
holds every package its packages require (pip installs them with --no-deps), and opens pyiceberg's
Glue catalog with the runtime's boto3 and no pyarrow."""

from __future__ import annotations

import importlib.util
import itertools
import json
import os
import re
import subprocess
import sys
import tomllib
import zipfile
from importlib.metadata import Distribution, distributions
from pathlib import Path

import pytest
from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from animedb import REPO
from tests.infra_helpers import INFRA, build_layers

# Wheels are downloaded once (about 46 MB for the exporter and generator layers of one Python)
# and kept here, beside the real builds' wheels, so that reruns are offline and fast.
WHEEL_CACHE = INFRA / "build" / "wheels"
RUNNING = f"{sys.version_info.major}.{sys.version_info.minor}"
# What the Lambda runtime itself puts on sys.path after the layers: the AWS SDK (its other
# dependencies, python-dateutil, six and urllib3, are in the exporter layer, which comes first).
RUNTIME_PACKAGES = ("boto3", "botocore", "s3transfer", "jmespath")


def test_target_asks_pip_for_manylinux_wheels_of_the_runtime() -> None:
    arguments = build_layers.Target("3.12", "x86_64").pip_arguments()
    assert "--only-binary=:all:" in arguments
    pairs = set(itertools.pairwise(arguments))
    assert {("--python-version", "3.12"), ("--abi", "cp312"), ("--implementation", "cp")} <= pairs
    platforms = {value for flag, value in pairs if flag == "--platform"}
    # psycopg's wheels are manylinux2014, DuckDB's manylinux_2_28; AL2023 has glibc 2.34
    assert {"manylinux2014_x86_64", "manylinux_2_28_x86_64", "manylinux_2_34_x86_64"} <= platforms
    assert "manylinux_2_35_x86_64" not in platforms
    arm = build_layers.Target("3.12", "arm64").platform_tags()
    assert "manylinux_2_28_aarch64" in arm and all(t.endswith("_aarch64") for t in arm)
    with pytest.raises(build_layers.BuildError, match="--platform"):
        build_layers.Target("3.12", "sparc")
    with pytest.raises(build_layers.BuildError, match="--python-version"):
        build_layers.Target("python3.12", "x86_64")


def _pins(lines: list[str]) -> dict[str, str]:
    return {
        re.sub(r"[-_.]+", "-", line.split("==")[0]).lower(): line.split("==")[1].split(";")[0]
        for line in lines
        if "==" in line
    }


def test_requirements_are_pinned_and_in_step_with_the_project() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    project_pins = _pins([d.replace(" ", "") for d in project])
    for name, requirements in build_layers.REQUIREMENTS.items():
        pins = _pins(build_layers._pinned(requirements))
        assert "pyarrow" not in pins
        assert pins["psycopg"] == pins["psycopg-binary"]
        for package, version in pins.items():
            if package in project_pins:
                assert version == project_pins[package], (name, package)
    exporter = _pins(build_layers._pinned(build_layers.REQUIREMENTS["exporter"]))
    assert {"duckdb", "duckdb-extension-postgres-scanner", "duckdb-extension-httpfs"} <= set(
        exporter
    )
    assert exporter["pyiceberg"] == "0.12.0"
    # pyiceberg without extras: no pyarrow, no s3fs (the exporter has its own boto3 FileIO)
    assert not {"pyarrow", "s3fs", "sqlalchemy", "pandas", "boto3"} & set(exporter)


def test_an_unreachable_index_is_told_apart_from_a_bad_pin(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What lets the build test skip, with its reason, when PyPI cannot be reached."""
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("PIP_INDEX_URL", "https://pypi.invalid/simple")
    monkeypatch.setenv("PIP_FIND_LINKS", "")
    monkeypatch.setenv("PIP_EXTRA_INDEX_URL", "")
    target = build_layers.Target(RUNNING, "x86_64")
    with pytest.raises(build_layers.DownloadError, match="cannot be reached") as failed:
        build_layers.download(build_layers.REQUIREMENTS["generator"], target, tmp_path)
    assert failed.value.offline


def test_zips_depend_on_contents_only(tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    (tree / "python" / "pkg").mkdir(parents=True)
    (tree / "python" / "pkg" / "__init__.py").write_text("x = 1\n")
    library = tree / "python" / "pkg" / "lib.so"
    library.write_bytes(b"\x7fELF")
    library.chmod(0o755)
    first, second = tmp_path / "a.zip", tmp_path / "b.zip"
    build_layers.deterministic_zip(tree, first)
    for path in tree.rglob("*"):
        os.utime(path, (1_000_000_000, 1_000_000_000))
    build_layers.deterministic_zip(tree, second)
    assert first.read_bytes() == second.read_bytes()
    with zipfile.ZipFile(first) as archive:
        infos = {i.filename: i for i in archive.infolist()}
    assert list(infos) == ["python/pkg/__init__.py", "python/pkg/lib.so"]
    assert infos["python/pkg/lib.so"].external_attr >> 16 & 0o777 == 0o755
    assert infos["python/pkg/__init__.py"].external_attr >> 16 & 0o777 == 0o644
    assert {i.date_time for i in infos.values()} == {build_layers.ZIP_TIME}


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> build_layers.Report:
    """Both layers and the function package, for the running Python on manylinux x86_64."""
    if os.uname().machine != "x86_64":
        pytest.skip("the layer build test imports x86_64 wheels: run it on an x86_64 machine")
    out = tmp_path_factory.mktemp("layers")
    try:
        return build_layers.build(
            build_layers.Target(RUNNING, "x86_64"), out, wheel_cache=WHEEL_CACHE, fetch_ca=False
        )
    except build_layers.DownloadError as exc:
        if exc.offline:
            pytest.skip(f"PyPI is unreachable, so the layers' wheels cannot be downloaded: {exc}")
        raise


# Any attempt to fetch something (a DuckDB extension) goes here and fails.
NO_NETWORK = {"http_proxy": "http://127.0.0.1:9", "https_proxy": "http://127.0.0.1:9"}

# Runs in the clean interpreter: what the Lambda runtime does, minus the runtime.
IMPORT_AND_LOAD = """
import importlib.util, json, os, sys
sys.path[:0] = sys.argv[1:3]
sys.path.append(sys.argv[3])  # the runtime's boto3, after the layer
layer = sys.argv[2]
from lambda_handlers import export
import duckdb, duckdb_extension_httpfs, exporter, exporter.duck
assert duckdb.__file__.startswith(layer), duckdb.__file__
con = exporter.duck.connect(export.duck_config())  # the postgres extension, as run_export does
httpfs = exporter.duck.extension_file(duckdb_extension_httpfs, "httpfs")  # reads s3:// (verify)
con.execute(f"LOAD '{httpfs}'")
loaded = sorted(r[0] for r in con.execute(
    "select extension_name from duckdb_extensions() where loaded and install_path <> '(BUILT-IN)'"
).fetchall())
settings = dict(con.execute(
    "select name, value from duckdb_settings() where name in "
    "('memory_limit', 'threads', 'temp_directory', 'home_directory')"
).fetchall())
print(json.dumps({
    "home": os.environ.get("HOME"),
    "loaded": loaded,
    "settings": settings,
    "pyarrow": importlib.util.find_spec("pyarrow") is not None,
    "psycopg": __import__("psycopg").pq.__impl__,
}))
"""


def _unzip(archive: str, dest: Path) -> Path:
    with zipfile.ZipFile(archive) as z:
        z.extractall(dest)
    return dest


def _run_bare(script: str, *paths: Path, env: dict[str, str], timeout: float) -> str:
    """`script` (its arguments: `paths`) in an interpreter as bare as Lambda's, with only PATH
    and `env` set; asserts that it succeeds and returns what it printed. -I: no user site, no
    PYTHON* variables; -S: not even this venv's site-packages."""
    result = subprocess.run(
        [sys.executable, "-I", "-S", "-c", script, *map(str, paths)],
        env={"PATH": "/usr/bin:/bin", **env},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def _lambda_runtime(dest: Path) -> Path:
    """A folder of the packages the Lambda runtime provides (links to this environment's)."""
    dest.mkdir()
    for name in RUNTIME_PACKAGES:
        spec = importlib.util.find_spec(name)
        assert spec and spec.submodule_search_locations, f"{name} is not installed here"
        (dest / name).symlink_to(next(iter(spec.submodule_search_locations)))
    return dest


@pytest.mark.slow
def test_exporter_layer_loads_duckdb_extensions_without_home_or_network(
    built: build_layers.Report, tmp_path: Path
) -> None:
    layer = _unzip(built.artifacts["exporter"].path, tmp_path / "opt") / "python"
    task = _unzip(built.artifacts["function"].path, tmp_path / "task")
    runtime = _lambda_runtime(tmp_path / "runtime")
    env = {"AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "1024", "TMPDIR": str(tmp_path), **NO_NETWORK}
    report = json.loads(_run_bare(IMPORT_AND_LOAD, task, layer, runtime, env=env, timeout=120))
    assert report["home"] is None
    assert report["loaded"] == ["httpfs", "postgres_scanner"]
    assert report["settings"]["home_directory"] == str(tmp_path)
    assert report["settings"]["temp_directory"] == str(tmp_path / "duckdb-spill")
    assert report["settings"]["threads"] == "1"
    assert report["pyarrow"] is False
    assert report["psycopg"] == "binary"


def _requirements_unmet(distribution: Distribution, found: dict[str, str]) -> list[str]:
    """The requirements of `distribution` (extras left out) that no version in `found` meets."""
    environment = {key: str(value) for key, value in default_environment().items()}
    environment |= {"python_version": RUNNING, "extra": ""}
    unmet = []
    for line in distribution.requires or []:
        requirement = Requirement(line)
        if requirement.marker and not requirement.marker.evaluate(environment):
            continue
        version = found.get(canonicalize_name(requirement.name))
        if version is None or not requirement.specifier.contains(version, prereleases=True):
            unmet.append(f"{distribution.metadata['Name']} needs {requirement} (has {version})")
    return unmet


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(build_layers.REQUIREMENTS))
def test_layer_holds_everything_its_packages_require(
    built: build_layers.Report, tmp_path: Path, name: str
) -> None:
    """pip installs the pins with --no-deps: a dependency left out would fail only on Lambda."""
    layer = _unzip(built.artifacts[name].path, tmp_path / "opt") / "python"
    installed = list(distributions(path=[str(layer)]))
    found: dict[str, str] = {canonicalize_name(d.metadata["Name"]): d.version for d in installed}
    pinned = _pins(build_layers._pinned(build_layers.REQUIREMENTS[name]))
    assert found == pinned  # exactly the pins, each at its version
    unmet = [line for d in installed for line in _requirements_unmet(d, found)]
    assert unmet == []


# pyiceberg as the exporter uses it on AWS: the Glue catalog (the runtime's boto3, credentials
# from the environment), a table's metadata and expressions; none of it may need pyarrow.
OPEN_GLUE_CATALOG = """
import importlib.util, json, sys
sys.path[:0] = [sys.argv[1]]
sys.path.append(sys.argv[2])
import pyiceberg.expressions, pyiceberg.io, pyiceberg.table, pyiceberg.table.update
from pyiceberg.catalog import load_catalog
catalog = load_catalog("animedb", type="glue", **{"glue.region": "eu-west-1"})
print(json.dumps({
    "catalog": type(catalog).__name__,
    "pyiceberg": sys.modules["pyiceberg"].__file__,
    "boto3": sys.modules["boto3"].__file__,
    "pyarrow": importlib.util.find_spec("pyarrow") is not None,
}))
"""


@pytest.mark.slow
def test_exporter_layer_opens_a_glue_catalog_without_pyarrow(
    built: build_layers.Report, tmp_path: Path
) -> None:
    layer = _unzip(built.artifacts["exporter"].path, tmp_path / "opt") / "python"
    runtime = _lambda_runtime(tmp_path / "runtime")
    env = {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_EC2_METADATA_DISABLED": "true",
        **NO_NETWORK,
    }
    report = json.loads(_run_bare(OPEN_GLUE_CATALOG, layer, runtime, env=env, timeout=120))
    assert report["catalog"] == "GlueCatalog"
    assert report["pyiceberg"].startswith(str(layer))
    assert report["boto3"].startswith(str(runtime))
    assert report["pyarrow"] is False


@pytest.mark.slow
def test_generator_layer_imports_the_generators(built: build_layers.Report, tmp_path: Path) -> None:
    layer = _unzip(built.artifacts["generator"].path, tmp_path / "opt") / "python"
    task = _unzip(built.artifacts["function"].path, tmp_path / "task")
    script = (
        "import sys; sys.path[:0] = sys.argv[1:3]\n"
        "import psycopg, generators\n"
        "from lambda_handlers import generate\n"
        "assert psycopg.__file__.startswith(sys.argv[2]) and psycopg.pq.__impl__ == 'binary'\n"
        "assert 'duckdb' not in sys.modules\n"
        "print(sorted(generate.TICK_FIELDS)[0])"
    )
    assert _run_bare(script, task, layer, env={}, timeout=60).strip() == "active_users"


@pytest.mark.slow
def test_layers_stay_under_lambdas_limit(built: build_layers.Report) -> None:
    limit = build_layers.LAMBDA_UNZIPPED_LIMIT_MB
    assert set(built.function_totals_mb) == {"exporter", "generator"}
    assert all(mb < limit for mb in built.function_totals_mb.values()), built.function_totals_mb
    with zipfile.ZipFile(built.artifacts["exporter"].path) as archive:
        names = archive.namelist()
    assert all(n.startswith("python/") for n in names)
    assert not any(n.endswith((".pyc", ".pyo")) or "__pycache__" in n for n in names)
    assert sum(n.endswith(".duckdb_extension") for n in names) == 2
    with zipfile.ZipFile(built.artifacts["function"].path) as archive:
        packages = {n.split("/")[0] for n in archive.namelist()}
    assert packages == {"animedb", "exporter", "generators", "lambda_handlers"}
    recorded = json.loads(
        (Path(built.artifacts["function"].path).parent / "build.json").read_text()
    )
    assert recorded["python_version"] == RUNNING
    assert any(w.startswith("duckdb-1.5.5-") for w in recorded["artifacts"]["exporter"]["wheels"])


def test_oversized_functions_fail_the_build() -> None:
    build_layers.check_limit({"exporter": 136.0, "generator": 11.9}, 250)
    with pytest.raises(
        build_layers.BuildError, match=re.escape("the exporter function needs 251.0 MB")
    ):
        build_layers.check_limit({"exporter": 251.0, "generator": 11.9}, 250)
