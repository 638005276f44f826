"""Configuration: one immutable value, built from defaults, environment (``SHEETSTREAM_*``) and CLI flags.

Options come in groups (:class:`ExportOptions`, :class:`ImportLimits`, :class:`QueueOptions`,
:class:`LifecycleOptions`); every choice list is defined once, here or beside the code that implements it, and
both the CLI and the environment check against it. A bad value is named with its source:
``SHEETSTREAM_WORKERS='x' is not a whole number``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from .errors import ConfigError
from .formats.xlsx import DEFLATERS, MAX_SHEET_ROWS

#: How CPU-heavy work leaves the event loop (:mod:`sheetstream.runtime.strategies`).
STRATEGIES = ("inline", "thread", "process")
START_METHODS = ("forkserver", "spawn", "fork")
#: Texts longer than Excel's cell limit: cut them, or fail the export.
LONG_TEXT = ("truncate", "error")
__all__ = ["DEFLATERS", "LONG_TEXT", "START_METHODS", "STRATEGIES", "Settings", "from_env"]


@dataclass(frozen=True)
class ExportOptions:
    #: Deflate library and level; see docs/performance.md for the choice.
    deflate: str = "isal"
    deflate_level: int = 1
    max_sheet_rows: int = MAX_SHEET_ROWS
    long_text: str = "truncate"


@dataclass(frozen=True)
class ImportLimits:
    #: Largest upload accepted (413 beyond it).
    max_upload_bytes: int = 256 << 20


@dataclass(frozen=True)
class QueueOptions:
    #: ``inline``, ``thread`` or ``process``: the study's measurements recommend ``process`` (docs/performance.md).
    strategy: str = "process"
    #: Workers (default: the number of cores) and the waiting list's length (default: 4 per worker); past it, 429.
    workers: int | None = None
    max_waiting: int | None = None
    #: Process start method for the ``process`` strategy.
    start_method: str = "forkserver"
    #: Chunks (about 64 kB each) a worker may run ahead of a slow client before it waits.
    max_pending_chunks: int = 8

    @property
    def worker_count(self) -> int:
        return self.workers or os.cpu_count() or 1


@dataclass(frozen=True)
class LifecycleOptions:
    #: How often a running instance marks its jobs as alive (the heartbeat) and looks for dead instances' jobs.
    heartbeat_seconds: float = 5.0
    #: A job whose heartbeat is older than this belongs to a dead instance: it is marked failed (nothing was
    #: written: a worker never commits once its server is gone). Keep it well above ``heartbeat_seconds``.
    heartbeat_timeout: float = 30.0
    #: On SIGTERM, how long running work may go on; then it is rolled back and its jobs are marked failed.
    drain_seconds: float = 10.0


@dataclass(frozen=True)
class Settings:
    #: ``postgresql://...`` or ``sqlite:///path``; default: ``<data_dir>/sheetstream.db``.
    database_url: str = ""
    data_dir: Path = Path("data")
    #: The tables that may be exported and imported (an allow-list).
    tables: tuple[str, ...] = ("orders",)
    export: ExportOptions = field(default_factory=ExportOptions)
    imports: ImportLimits = field(default_factory=ImportLimits)
    queue: QueueOptions = field(default_factory=QueueOptions)
    lifecycle: LifecycleOptions = field(default_factory=LifecycleOptions)

    @property
    def spool_dir(self) -> Path:
        return self.data_dir / "spool"

    @property
    def database(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / 'sheetstream.db'}"

    @property
    def is_default_database(self) -> bool:
        return not self.database_url

    def with_(self, **changes: Any) -> Settings:
        """A copy with ``changes`` by option name, top-level or of any group (``workers=2``); ``None`` is no change."""
        top: dict[str, Any] = {}
        groups: dict[str, dict[str, Any]] = {}
        for name, value in changes.items():
            if value is None:
                continue
            group = _GROUP_OF.get(name)
            if group is None and name not in _TOP:
                raise TypeError(f"unknown setting {name!r}")
            if group is None:
                top[name] = value
            else:
                groups.setdefault(group, {})[name] = value
        for group, values in groups.items():
            top[group] = replace(getattr(self, group), **values)
        settings = replace(self, **top)
        _check(settings)
        return settings


_GROUPS = (("export", ExportOptions), ("imports", ImportLimits), ("queue", QueueOptions),
           ("lifecycle", LifecycleOptions))
_TOP = {f.name for f in fields(Settings)} - {group for group, _ in _GROUPS}
_GROUP_OF = {f.name: group for group, cls in _GROUPS for f in fields(cls)}


def _check(settings: Settings) -> None:
    for source, value, allowed in (
        ("strategy", settings.queue.strategy, STRATEGIES),
        ("start_method", settings.queue.start_method, START_METHODS),
        ("deflate", settings.export.deflate, DEFLATERS),
        ("long_text", settings.export.long_text, LONG_TEXT),
    ):
        if value not in allowed:
            raise ConfigError(f"{source}={value!r} is not one of {', '.join(allowed)}")
    life = settings.lifecycle
    if life.heartbeat_timeout < 2 * life.heartbeat_seconds:
        # Shorter, and a live instance whose beat is a little late would see its jobs settled as failed by another.
        raise ConfigError(f"heartbeat_timeout={life.heartbeat_timeout:g} s must be at least twice "
                          f"heartbeat_seconds={life.heartbeat_seconds:g} s")


def _whole(text: str) -> int:
    if not text.strip().isdigit():
        raise ValueError("is not a whole number")
    return int(text)


def _megabytes(text: str) -> int:
    try:
        value = float(text)
    except ValueError:
        raise ValueError("is not a number of megabytes") from None
    if not value > 0:
        raise ValueError("must be more than 0")
    return int(value * 2**20)


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ValueError("is not a number of seconds") from None
    if not value > 0:
        raise ValueError("must be more than 0")
    return value


def _names(text: str) -> tuple[str, ...]:
    names = tuple(t.strip() for t in text.split(",") if t.strip())
    if not names:
        raise ValueError("names no table")
    return names


def _one_of(choices: tuple[str, ...]) -> Callable[[str], str]:
    def check(text: str) -> str:
        if text not in choices:
            raise ValueError(f"is not one of {', '.join(choices)}")
        return text

    return check


#: Environment variable -> (setting, parser). Parsers raise ValueError with the end of a sentence.
ENVIRONMENT: dict[str, tuple[str, Callable[[str], Any]]] = {
    "SHEETSTREAM_DATABASE_URL": ("database_url", str),
    "SHEETSTREAM_DATA_DIR": ("data_dir", Path),
    "SHEETSTREAM_TABLES": ("tables", _names),
    "SHEETSTREAM_DEFLATE": ("deflate", _one_of(DEFLATERS)),
    "SHEETSTREAM_DEFLATE_LEVEL": ("deflate_level", _whole),
    "SHEETSTREAM_EXECUTOR": ("strategy", _one_of(STRATEGIES)),
    "SHEETSTREAM_WORKERS": ("workers", _whole),
    "SHEETSTREAM_MAX_WAITING": ("max_waiting", _whole),
    "SHEETSTREAM_START_METHOD": ("start_method", _one_of(START_METHODS)),
    "SHEETSTREAM_MAX_UPLOAD_MB": ("max_upload_bytes", _megabytes),
    "SHEETSTREAM_HEARTBEAT_SECONDS": ("heartbeat_seconds", _seconds),
    "SHEETSTREAM_HEARTBEAT_TIMEOUT": ("heartbeat_timeout", _seconds),
    "SHEETSTREAM_DRAIN_SECONDS": ("drain_seconds", _seconds),
}


def from_env(environ: Mapping[str, str] | None = None) -> Settings:
    """Defaults overridden by the ``SHEETSTREAM_*`` variables that are set and not empty."""
    env = os.environ if environ is None else environ
    changes: dict[str, Any] = {}
    for variable, (name, parse) in ENVIRONMENT.items():
        text = env.get(variable)
        if not text:
            continue
        try:
            changes[name] = parse(text)
        except ValueError as exc:
            raise ConfigError(f"{variable}={text!r} {exc}") from None
    return Settings().with_(**changes)
