"""Configuration: one immutable value, built from defaults, environment (``SHEETSTREAM_*``) and CLI flags."""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from .xlsx.cells import MAX_SHEET_ROWS

DEFAULT_DATA_DIR = Path(os.environ.get("SHEETSTREAM_DATA_DIR", "data"))


@dataclass(frozen=True)
class Settings:
    #: ``postgresql://...`` or ``sqlite:///path``; default: ``<data_dir>/sheetstream.db``.
    database_url: str = ""
    data_dir: Path = DEFAULT_DATA_DIR
    #: The tables that may be exported and imported (an allow-list).
    tables: tuple[str, ...] = ("orders",)
    #: Deflate library (``isal``, ``zlib``, ``zlib-ng``) and level; see the README's benchmark for the choice.
    deflate: str = "isal"
    deflate_level: int = 1
    max_sheet_rows: int = MAX_SHEET_ROWS
    #: Chunks (about 64 kB each) a worker may run ahead of a slow client before it waits.
    max_pending_chunks: int = 8
    #: Texts longer than Excel's cell limit: ``truncate`` or ``error``.
    long_text: str = "truncate"
    #: How CPU-heavy work leaves the event loop: ``inline``, ``thread`` or ``process``.
    executor: str = "thread"
    #: Workers of the processing queue (default: the number of cores) and the waiting list's length
    #: (default: 4 per worker); past that, 429.
    workers: int | None = None
    max_waiting: int | None = None
    #: Process start method for ``executor="process"``: ``forkserver``, ``spawn`` or ``fork``.
    start_method: str = "forkserver"
    #: Largest upload accepted (413 beyond it).
    max_upload_bytes: int = 256 << 20

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
        return replace(self, **{k: v for k, v in changes.items() if v is not None})


def from_env(environ: dict[str, str] | None = None) -> Settings:
    env = os.environ if environ is None else environ
    settings = Settings()
    changes: dict[str, Any] = {}
    if url := env.get("SHEETSTREAM_DATABASE_URL"):
        changes["database_url"] = url
    if data_dir := env.get("SHEETSTREAM_DATA_DIR"):
        changes["data_dir"] = Path(data_dir)
    if tables := env.get("SHEETSTREAM_TABLES"):
        changes["tables"] = tuple(t.strip() for t in tables.split(",") if t.strip())
    if deflate := env.get("SHEETSTREAM_DEFLATE"):
        changes["deflate"] = deflate
    if level := env.get("SHEETSTREAM_DEFLATE_LEVEL"):
        changes["deflate_level"] = int(level)
    if executor := env.get("SHEETSTREAM_EXECUTOR"):
        changes["executor"] = executor
    if workers := env.get("SHEETSTREAM_WORKERS"):
        changes["workers"] = int(workers)
    if waiting := env.get("SHEETSTREAM_MAX_WAITING"):
        changes["max_waiting"] = int(waiting)
    if method := env.get("SHEETSTREAM_START_METHOD"):
        changes["start_method"] = method
    if upload := env.get("SHEETSTREAM_MAX_UPLOAD_MB"):
        changes["max_upload_bytes"] = int(float(upload) * 2**20)
    return settings.with_(**changes)
