"""Settings from the environment and flags: every variable read, every bad value named with its source."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from sheetstream.config import ENVIRONMENT, Settings, from_env
from sheetstream.errors import ConfigError


def test_defaults() -> None:
    settings = from_env({})
    assert settings.database == "sqlite:///data/sheetstream.db" and settings.tables == ("orders",)
    assert settings.queue.strategy == "process" and settings.export.deflate == "isal"
    assert settings.imports.max_upload_bytes == 256 << 20 and settings.queue.worker_count >= 1
    assert settings.queue.worker_memory_bytes == 2 << 30 and settings.imports.upload_idle_seconds == 30


def test_every_variable_is_read(tmp_path: Path) -> None:
    queries = tmp_path / "queries.toml"
    queries.write_text('[big]\nsql = "SELECT * FROM orders WHERE amount > :least"\nparams = { least = "numeric" }\n')
    settings = from_env({
        "SHEETSTREAM_QUERIES_FILE": str(queries),
        "SHEETSTREAM_DATABASE_URL": "postgresql://u@h/db", "SHEETSTREAM_DATA_DIR": "/tmp/x",
        "SHEETSTREAM_TABLES": " a, b ,", "SHEETSTREAM_DEFLATE": "zlib", "SHEETSTREAM_DEFLATE_LEVEL": "6",
        "SHEETSTREAM_DEFLATE_ADAPTIVE": "off",
        "SHEETSTREAM_EXECUTOR": "thread", "SHEETSTREAM_WORKERS": "3", "SHEETSTREAM_MAX_WAITING": "7",
        "SHEETSTREAM_START_METHOD": "spawn", "SHEETSTREAM_MAX_UPLOAD_MB": "0.5", "SHEETSTREAM_KEEP_UPLOAD_SECONDS": "60",
        "SHEETSTREAM_MAX_PER_IDENTITY": "2", "SHEETSTREAM_ADMIN_TOKEN": "sst_x", "SHEETSTREAM_SESSION_SECRET": "s",
        "SHEETSTREAM_TRUST_USER_HEADER": "X-Forwarded-User", "SHEETSTREAM_TRUSTED_PROXIES": "10.0.0.0/8, ::1",
        "SHEETSTREAM_USER_GRANTS": "alice=orders:read,append b:read; bob=admin",
        "SHEETSTREAM_CORS_ORIGINS": "https://a.example", "SHEETSTREAM_PUBLIC": "metrics,status",
        "SHEETSTREAM_HEARTBEAT_SECONDS": "2", "SHEETSTREAM_HEARTBEAT_TIMEOUT": "20.5", "SHEETSTREAM_DRAIN_SECONDS": "3",
        "SHEETSTREAM_UPLOAD_IDLE_SECONDS": "2.5", "SHEETSTREAM_MAX_SPOOL_FILES": "5", "SHEETSTREAM_MAX_SPOOL_MB": "64",
        "SHEETSTREAM_EXPORT_STALL_SECONDS": "7", "SHEETSTREAM_EXPORT_MAX_SECONDS": "600",
        "SHEETSTREAM_WORKER_MEMORY_MB": "0", "SHEETSTREAM_SPLIT_IMPORTS": "on", "SHEETSTREAM_IMPORT_CPU_SECONDS": "90",
        "SHEETSTREAM_HEADER_SECONDS": "4.5", "SHEETSTREAM_MAX_CONNECTIONS": "100",
        "SHEETSTREAM_EXPORT_SPILL_BYTES": "64M", "SHEETSTREAM_UPLOAD_MIN_RATE": "0",
        "SHEETSTREAM_UPLOAD_GRACE_SECONDS": "5", "SHEETSTREAM_UPLOADS_PER_ADDRESS": "3",
        "SHEETSTREAM_DATABASE_WAIT_SECONDS": "0", "SHEETSTREAM_LOG_FORMAT": "json",
    })
    assert settings.database == "postgresql://u@h/db" and settings.data_dir == Path("/tmp/x")
    assert settings.tables == ("a", "b") and (settings.export.deflate, settings.export.deflate_level) == ("zlib", 6)
    assert (settings.queue.strategy, settings.queue.workers, settings.queue.max_waiting) == ("thread", 3, 7)
    assert settings.queue.start_method == "spawn" and settings.imports.max_upload_bytes == 512 << 10
    access = settings.access
    assert settings.queue.per_identity == 2 and (access.admin_token, access.session_secret) == ("sst_x", "s")
    assert access.user_header == "X-Forwarded-User" and access.trusted_proxies == ("10.0.0.0/8", "::1")
    assert access.user_grants["alice"].on("orders") == ["read", "append"] and access.user_grants["bob"].admin
    assert access.cors_origins == ("https://a.example",) and access.public == ("metrics", "status")
    assert settings.imports.keep_upload_seconds == 60
    assert (settings.lifecycle.heartbeat_seconds, settings.lifecycle.heartbeat_timeout) == (2, 20.5)
    assert settings.lifecycle.drain_seconds == 3
    assert settings.imports.upload_idle_seconds == 2.5 and settings.imports.max_spool_files == 5
    assert settings.imports.max_spool_bytes == 64 << 20 and settings.queue.worker_memory_bytes == 0
    assert (settings.export.export_stall_seconds, settings.export.export_max_seconds) == (7, 600)
    assert not settings.export.deflate_adaptive and from_env({}).export.deflate_adaptive
    assert settings.queue.split_imports is True and not from_env({}).queue.split_imports
    assert settings.imports.import_cpu_seconds == 90
    assert (settings.connections.header_seconds, settings.connections.max_connections) == (4.5, 100)
    assert settings.export.export_spill_bytes == 64 << 20 and settings.imports.upload_min_rate == 0
    assert (settings.imports.upload_grace_seconds, settings.imports.uploads_per_address) == (5, 3)
    assert from_env({"SHEETSTREAM_EXPORT_SPILL_BYTES": "1000"}).export.export_spill_bytes == 1000
    assert settings.database_wait_seconds == 0 and from_env({}).database_wait_seconds == 60
    assert settings.log_format == "json" and from_env({}).log_format == ""
    assert [(q.name, q.params) for q in settings.queries] == [("big", (("least", "numeric"),))]
    assert len(ENVIRONMENT) == 40  # a new variable gets a line in this test


def test_secure_defaults() -> None:
    access = from_env({}).access
    assert access.auth and not access.public and not access.cors_origins and not access.user_header
    assert from_env({"SHEETSTREAM_WORKERS": "2", "SHEETSTREAM_MAX_WAITING": "8"}).queue.per_identity == 5


@pytest.mark.parametrize("variable,value,message", [
    ("SHEETSTREAM_WORKERS", "x", "SHEETSTREAM_WORKERS='x' is not a whole number"),
    ("SHEETSTREAM_MAX_WAITING", "-1", "SHEETSTREAM_MAX_WAITING='-1' is not a whole number"),
    ("SHEETSTREAM_DEFLATE_LEVEL", "1.5", "SHEETSTREAM_DEFLATE_LEVEL='1.5' is not a whole number"),
    ("SHEETSTREAM_DEFLATE_ADAPTIVE", "yes", "SHEETSTREAM_DEFLATE_ADAPTIVE='yes' is not one of on, off"),
    ("SHEETSTREAM_SPLIT_IMPORTS", "1", "SHEETSTREAM_SPLIT_IMPORTS='1' is not one of on, off"),
    ("SHEETSTREAM_EXECUTOR", "fork", "SHEETSTREAM_EXECUTOR='fork' is not one of inline, thread, process"),
    ("SHEETSTREAM_START_METHOD", "x", "SHEETSTREAM_START_METHOD='x' is not one of forkserver, spawn, fork"),
    ("SHEETSTREAM_DEFLATE", "brotli", "SHEETSTREAM_DEFLATE='brotli' is not one of isal, zlib, zlib-ng"),
    ("SHEETSTREAM_MAX_UPLOAD_MB", "lots", "SHEETSTREAM_MAX_UPLOAD_MB='lots' is not a number of megabytes"),
    ("SHEETSTREAM_MAX_UPLOAD_MB", "0", "SHEETSTREAM_MAX_UPLOAD_MB='0' must be more than 0"),
    ("SHEETSTREAM_TABLES", ",", "SHEETSTREAM_TABLES=',' names no table"),
    ("SHEETSTREAM_USER_GRANTS", "bob", "SHEETSTREAM_USER_GRANTS='bob' cannot be read: user grant 'bob' is not "
                                       "USER=GRANT[ GRANT...]"),
    ("SHEETSTREAM_USER_GRANTS", "bob=orders:write", "SHEETSTREAM_USER_GRANTS='bob=orders:write' cannot be read: "
     "grant 'orders:write' is not TABLE:PERMISSION[,PERMISSION...] with permissions from read, append, upsert, replace "
     "(or 'admin')"),
    ("SHEETSTREAM_DRAIN_SECONDS", "soon", "SHEETSTREAM_DRAIN_SECONDS='soon' is not a number of seconds"),
    ("SHEETSTREAM_HEARTBEAT_TIMEOUT", "-1", "SHEETSTREAM_HEARTBEAT_TIMEOUT='-1' must be more than 0"),
    ("SHEETSTREAM_UPLOAD_IDLE_SECONDS", "0", "SHEETSTREAM_UPLOAD_IDLE_SECONDS='0' must be more than 0"),
    ("SHEETSTREAM_EXPORT_STALL_SECONDS", "soon", "SHEETSTREAM_EXPORT_STALL_SECONDS='soon' is not a number of seconds"),
    ("SHEETSTREAM_WORKER_MEMORY_MB", "-5", "SHEETSTREAM_WORKER_MEMORY_MB='-5' must be more than 0"),
])
def test_bad_values_are_named(variable: str, value: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        from_env({variable: value})
    assert caught.value.message == message


def test_flags_override_by_option_name_and_are_checked() -> None:
    settings = Settings().with_(workers=2, deflate_level=3, tables=("x",), data_dir=None)
    assert settings.queue.workers == 2 and settings.export.deflate_level == 3 and settings.tables == ("x",)
    assert settings.data_dir == Path("data")  # None is no change
    with pytest.raises(ConfigError, match="strategy='threads' is not one of inline, thread, process"):
        Settings().with_(strategy="threads")
    with pytest.raises(TypeError, match="unknown setting 'wokers'"):
        Settings().with_(wokers=2)
    with pytest.raises(ConfigError, match="heartbeat_timeout=8 s must be at least twice heartbeat_seconds=5 s"):
        Settings().with_(heartbeat_timeout=8)


def test_access_settings_are_checked() -> None:
    with pytest.raises(ConfigError, match="needs the addresses of the proxy"):
        Settings().with_(user_header="X-Forwarded-User")
    with pytest.raises(ConfigError, match="'10.0.0.300' is not an IP address or network"):
        Settings().with_(trusted_proxies=("10.0.0.300",))
    with pytest.raises(ConfigError, match="public='tables' is not one of metrics, status, docs"):
        Settings().with_(public=("tables",))
    with pytest.raises(ConfigError, match="is not scheme://host"):
        Settings().with_(cors_origins=("example.com",))


def test_no_auth_is_refused_unless_on_loopback() -> None:
    from sheetstream.config import check_listen

    off = Settings().with_(auth=False)
    check_listen(off, "127.0.0.1")
    check_listen(Settings(), "0.0.0.0")
    with pytest.raises(ConfigError, match="--no-auth is refused on 0.0.0.0"):
        check_listen(off, "0.0.0.0")


def test_the_command_line_names_a_bad_variable_and_exits_2(monkeypatch, capsys) -> None:
    from sheetstream.cli import main

    monkeypatch.setenv("SHEETSTREAM_WORKERS", "two")
    with pytest.raises(SystemExit) as exited:
        main(["seed", "--rows", "1", "--database-url", "sqlite:////nonexistent/x.db"])
    assert exited.value.code == 2 and "SHEETSTREAM_WORKERS='two' is not a whole number" in capsys.readouterr().err


def test_a_toml_file_beside_the_variables(tmp_path: Path) -> None:
    """The file's keys are the variables' names (lower case, no prefix), read by the same parsers; the variables
    override it."""
    path = tmp_path / "sheetstream.toml"
    path.write_text('database_url = "postgresql://u@h/db"\nworkers = 3\nmax_upload_mb = 0.5\ntables = ["a", "b"]\n'
                    'split_imports = true\ntrusted_proxies = ["10.0.0.0/8"]\nuser_grants = { alice = "orders:read" }\n'
                    'log_format = "json"\ndrain_seconds = 3\n')
    settings = from_env({}, config_file=path)
    assert settings.database_url == "postgresql://u@h/db" and settings.queue.workers == 3
    assert settings.imports.max_upload_bytes == 512 << 10 and settings.tables == ("a", "b")
    assert settings.queue.split_imports is True and settings.access.trusted_proxies == ("10.0.0.0/8",)
    assert settings.access.user_grants["alice"].on("orders") == ["read"] and settings.log_format == "json"
    assert settings.lifecycle.drain_seconds == 3
    overridden = from_env({"SHEETSTREAM_CONFIG": str(path), "SHEETSTREAM_WORKERS": "5"})
    assert overridden.queue.workers == 5 and overridden.tables == ("a", "b")  # the variable wins, the rest stays


@pytest.mark.parametrize("text,message", [
    ("workers = 'x'", "sheetstream.toml: workers='x' is not a whole number"),
    ("wrokers = 2", "unknown setting 'wrokers'; the settings are: "),
    ("workers = ", "is not TOML"),
    ("executor = 'fork'", "sheetstream.toml: executor='fork' is not one of inline, thread, process"),
])
def test_a_bad_file_setting_is_named_with_its_file(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "sheetstream.toml"
    path.write_text(text + "\n")
    with pytest.raises(ConfigError, match=re.escape(message)):
        from_env({}, config_file=path)
    with pytest.raises(ConfigError, match="cannot read the configuration file"):
        from_env({"SHEETSTREAM_CONFIG": str(tmp_path / "missing.toml")})


def test_serve_and_seed_read_the_file(tmp_path: Path) -> None:
    from sheetstream.cli import main
    from sheetstream.store import open_store

    (tmp_path / "sheetstream.toml").write_text(f'data_dir = "{tmp_path / "data"}"\n')
    assert main(["seed", "--rows", "3", "--config", str(tmp_path / "sheetstream.toml")]) == 0
    assert open_store(f"sqlite:///{tmp_path / 'data' / 'sheetstream.db'}").count("orders") == 3
