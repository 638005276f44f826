"""Settings from the environment and flags: every variable read, every bad value named with its source."""

from __future__ import annotations

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


def test_every_variable_is_read() -> None:
    settings = from_env({
        "SHEETSTREAM_DATABASE_URL": "postgresql://u@h/db", "SHEETSTREAM_DATA_DIR": "/tmp/x",
        "SHEETSTREAM_TABLES": " a, b ,", "SHEETSTREAM_DEFLATE": "zlib", "SHEETSTREAM_DEFLATE_LEVEL": "6",
        "SHEETSTREAM_EXECUTOR": "thread", "SHEETSTREAM_WORKERS": "3", "SHEETSTREAM_MAX_WAITING": "7",
        "SHEETSTREAM_START_METHOD": "spawn", "SHEETSTREAM_MAX_UPLOAD_MB": "0.5",
        "SHEETSTREAM_UPLOAD_IDLE_SECONDS": "2.5", "SHEETSTREAM_MAX_SPOOL_FILES": "5", "SHEETSTREAM_MAX_SPOOL_MB": "64",
        "SHEETSTREAM_EXPORT_STALL_SECONDS": "7", "SHEETSTREAM_EXPORT_MAX_SECONDS": "600",
        "SHEETSTREAM_WORKER_MEMORY_MB": "0",
    })
    assert settings.database == "postgresql://u@h/db" and settings.data_dir == Path("/tmp/x")
    assert settings.tables == ("a", "b") and (settings.export.deflate, settings.export.deflate_level) == ("zlib", 6)
    assert (settings.queue.strategy, settings.queue.workers, settings.queue.max_waiting) == ("thread", 3, 7)
    assert settings.queue.start_method == "spawn" and settings.imports.max_upload_bytes == 512 << 10
    assert settings.imports.upload_idle_seconds == 2.5 and settings.imports.max_spool_files == 5
    assert settings.imports.max_spool_bytes == 64 << 20 and settings.queue.worker_memory_bytes == 0
    assert (settings.export.export_stall_seconds, settings.export.export_max_seconds) == (7, 600)
    assert len(ENVIRONMENT) == 16  # a new variable gets a line in this test


@pytest.mark.parametrize("variable,value,message", [
    ("SHEETSTREAM_WORKERS", "x", "SHEETSTREAM_WORKERS='x' is not a whole number"),
    ("SHEETSTREAM_MAX_WAITING", "-1", "SHEETSTREAM_MAX_WAITING='-1' is not a whole number"),
    ("SHEETSTREAM_DEFLATE_LEVEL", "1.5", "SHEETSTREAM_DEFLATE_LEVEL='1.5' is not a whole number"),
    ("SHEETSTREAM_EXECUTOR", "fork", "SHEETSTREAM_EXECUTOR='fork' is not one of inline, thread, process"),
    ("SHEETSTREAM_START_METHOD", "x", "SHEETSTREAM_START_METHOD='x' is not one of forkserver, spawn, fork"),
    ("SHEETSTREAM_DEFLATE", "brotli", "SHEETSTREAM_DEFLATE='brotli' is not one of isal, zlib, zlib-ng"),
    ("SHEETSTREAM_MAX_UPLOAD_MB", "lots", "SHEETSTREAM_MAX_UPLOAD_MB='lots' is not a number of megabytes"),
    ("SHEETSTREAM_MAX_UPLOAD_MB", "0", "SHEETSTREAM_MAX_UPLOAD_MB='0' must be more than 0"),
    ("SHEETSTREAM_TABLES", ",", "SHEETSTREAM_TABLES=',' names no table"),
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


def test_the_command_line_names_a_bad_variable_and_exits_2(monkeypatch, capsys) -> None:
    from sheetstream.cli import main

    monkeypatch.setenv("SHEETSTREAM_WORKERS", "two")
    with pytest.raises(SystemExit) as exited:
        main(["seed", "--rows", "1", "--database-url", "sqlite:////nonexistent/x.db"])
    assert exited.value.code == 2 and "SHEETSTREAM_WORKERS='two' is not a whole number" in capsys.readouterr().err
