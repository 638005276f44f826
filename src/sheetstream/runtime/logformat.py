"""How log lines look, in the server and in its worker processes: JSON (one object a line, for a collector) or
text (for a person at a terminal). The request id of the line's request rides in a context variable
(:data:`REQUEST_ID`, set by :class:`sheetstream.server.logs.RequestLog`), or in a record's ``extra``.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from contextvars import ContextVar
from typing import Any

REQUEST_ID: ContextVar[str | None] = ContextVar("sheetstream_request_id", default=None)
#: The format chosen by the server, for its worker processes (they inherit the environment).
FORMAT_VARIABLE = "SHEETSTREAM_LOG_FORMAT"
#: Fields every line has; the rest of a record's ``extra`` follows them.
_BASE = ("time", "level", "logger", "message")
_RECORD_ATTRIBUTES = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    extra = {k: v for k, v in vars(record).items() if k not in _RECORD_ATTRIBUTES and not k.startswith("_")}
    if "request_id" not in extra and (request_id := REQUEST_ID.get()):
        extra["request_id"] = request_id
    return extra


def _time(record: logging.LogRecord) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z"


class JsonFormatter(logging.Formatter):
    """One JSON object a line: time (UTC), level, logger, message, then the record's fields."""

    def format(self, record: logging.LogRecord) -> str:
        line = {"time": _time(record), "level": record.levelname.lower(), "logger": record.name,
                "message": record.getMessage(), "pid": record.process}
        line.update({k: v for k, v in _fields(record).items() if k not in _BASE and v is not None})
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """``time LEVEL logger: message key=value ...`` for a person."""

    def format(self, record: logging.LogRecord) -> str:
        fields = " ".join(f"{k}={v}" for k, v in _fields(record).items()
                          if v is not None and k not in ("event", "method", "path", "status"))
        line = f"{_time(record)} {record.levelname:<7} {record.name}: {record.getMessage()}"
        line += f"  {fields}" if fields else ""
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


def default_format(stream: Any = None) -> str:
    """``text`` on a terminal, ``json`` otherwise (a container's log, a file, a pipe)."""
    stream = stream or sys.stderr
    return "text" if getattr(stream, "isatty", lambda: False)() else "json"


def configure(log_format: str = "") -> str:
    """Send sheetstream's and uvicorn's loggers to stderr in ``log_format`` (empty: :func:`default_format`);
    returns the format used. uvicorn's own access log is left off: :class:`sheetstream.server.logs.RequestLog`
    writes those lines. Process-wide: for ``serve`` and its workers."""
    log_format = log_format or default_format()
    os.environ[FORMAT_VARIABLE] = log_format  # for the worker processes: configure_worker()
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    # The root logger keeps no handler of ours (a library's lines are its own business); these loggers still
    # propagate to it, where nothing is written unless something else listens there.
    for name, level in (("sheetstream", logging.INFO), ("uvicorn", logging.WARNING), ("uvicorn.error", logging.INFO)):
        logger = logging.getLogger(name)
        logger.handlers = [handler] if name != "uvicorn.error" else []  # uvicorn.error: through "uvicorn"'s, once
        logger.setLevel(level)
        logger.propagate = True
    logging.getLogger("uvicorn.access").disabled = True
    return log_format


def configure_worker() -> None:
    """In a worker process as it starts: the server's format, when the server chose one (:func:`configure`)."""
    if os.environ.get(FORMAT_VARIABLE):
        configure(os.environ[FORMAT_VARIABLE])
