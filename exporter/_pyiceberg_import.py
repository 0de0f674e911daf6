"""pyiceberg reads its configuration file (.pyiceberg.yaml) when `pyiceberg.catalog` is imported,
and a malformed file makes that import fail: every command of the exporter, `--help` included,
would end in a traceback. Here the import happens first, with the file's error put aside;
`exporter.catalog.open_lake` reads the configuration again and names the file in one line, so
only the commands that need a catalog fail."""

from pyiceberg.utils import config as _config

try:
    _config.Config()
except Exception:  # strictyaml's errors, an unreadable file: open_lake says which
    _read_files = _config.Config.__dict__["_from_configuration_files"]
    _config.Config._from_configuration_files = staticmethod(lambda: None)  # type: ignore[method-assign]
    try:
        import pyiceberg.catalog  # noqa: F401
    finally:
        setattr(_config.Config, "_from_configuration_files", _read_files)  # noqa: B010
