"""Configuration: one immutable value, built from defaults, environment (``SHEETSTREAM_*``) and CLI flags.

Options come in groups (:class:`ExportOptions`, :class:`ImportLimits`, :class:`QueueOptions`,
:class:`LifecycleOptions`); every choice list is defined once, here or beside the code that implements it, and
both the CLI and the environment check against it. A bad value is named with its source:
``SHEETSTREAM_WORKERS='x' is not a whole number``.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from .access import Grants, parse_user_grants
from .errors import ConfigError
from .formats.xlsx import DEFLATERS, MAX_SHEET_ROWS

#: How CPU-heavy work leaves the event loop (:mod:`sheetstream.runtime.strategies`).
STRATEGIES = ("inline", "thread", "process")
START_METHODS = ("forkserver", "spawn", "fork")
#: Texts longer than Excel's cell limit: cut them, or fail the export.
LONG_TEXT = ("truncate", "error")
#: What may be made public (served without credentials) besides the page and /healthz.
PUBLIC = ("metrics", "status", "docs")
#: How the server writes its log lines (``--log-format``).
LOG_FORMATS = ("text", "json")
#: Hosts on which ``serve --no-auth`` is allowed: nobody else can reach the server.
LOOPBACK = ("127.0.0.1", "::1", "localhost")
__all__ = ["DEFLATERS", "LOG_FORMATS", "LONG_TEXT", "LOOPBACK", "PUBLIC", "START_METHODS", "STRATEGIES", "Settings",
           "from_env"]


@dataclass(frozen=True)
class ExportOptions:
    #: Deflate library and level; see docs/performance.md for the choice.
    deflate: str = "isal"
    deflate_level: int = 1
    #: While the client reads slower than the export is written, continue at a higher level (zlib 6): smaller
    #: files on slow links for CPU that would wait anyway (docs/performance.md, "Adaptive deflate level").
    deflate_adaptive: bool = True
    max_sheet_rows: int = MAX_SHEET_ROWS
    long_text: str = "truncate"
    #: A client that takes no chunk for this long is cut off and its worker freed; no export runs longer than
    #: ``export_max_seconds`` (as nginx's one-hour send timeout in deploy/nginx.conf).
    export_stall_seconds: float = 60.0
    export_max_seconds: float = 3600.0
    #: What one download's worker may write ahead of its client, in memory and then in a spool file, so that its
    #: worker is freed when the workbook is complete (0: none; the worker waits for the client). All downloads
    #: together spill at most a quarter of the spool's budget (docs/operations.md).
    export_spill_bytes: int = 256 << 20


@dataclass(frozen=True)
class ImportLimits:
    #: Largest upload accepted (413 beyond it).
    max_upload_bytes: int = 256 << 20
    #: How long the upload of a dry run or of an import with problems is kept (seconds), for its commit
    #: (``POST /jobs/{id}/commit``) and its marked-up copy (``GET /jobs/{id}/problems.xlsx``); then removed.
    keep_upload_seconds: int = 900
    #: An upload that sends nothing for this long is dropped (408) and its spool file removed.
    upload_idle_seconds: float = 30.0
    #: After ``upload_grace_seconds``, an upload must average ``upload_min_rate`` bytes a second over the last
    #: ``upload_grace_seconds`` (Apache mod_reqtimeout's MinRate); slower, it is dropped (408). 0: no minimum.
    upload_min_rate: int = 1024
    upload_grace_seconds: float = 20.0
    #: Uploads one client address may send at once (429 past it), admins and --no-auth included.
    uploads_per_address: int = 8
    #: The spool holds at most this many uploads (arriving or waiting for a worker) and bytes; past it, 429.
    max_spool_files: int = 32
    max_spool_bytes: int = 4 << 30
    #: CPU time one import may use (seconds: its reading, checking and writing, on its worker), checked about
    #: every megabyte of XML read: past it the import fails (422) and its transaction rolls back. An import of
    #: 1,000,000 rows takes about 6 CPU-seconds (docs/performance.md): the bound is for files built to be slow.
    import_cpu_seconds: float = 600.0


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
    #: Tasks (running and waiting) one identity may have at once; default: half of workers + waiting list.
    max_per_identity: int | None = None
    #: Address space a worker process may use (``process`` strategy; 0: no cap). Past it the task fails with a
    #: clear error instead of the machine's out-of-memory killer taking the worker.
    worker_memory_bytes: int = 2 << 30
    #: An import reads its sheet in two processes, its worker and a helper it forks (``process`` strategy, into
    #: PostgreSQL). Off by default: with the compiled scanner it saves at most a few percent of a lone import's
    #: time (none at 200,000 rows) for a third more CPU and a helper's memory, which concurrent imports pay for
    #: (docs/performance.md).
    split_imports: bool = False

    @property
    def worker_count(self) -> int:
        return self.workers or os.cpu_count() or 1

    @property
    def per_identity(self) -> int:
        """The fair share: one identity never holds more, so the others always find room."""
        if self.max_per_identity:
            return self.max_per_identity
        waiting = self.worker_count * 4 if self.max_waiting is None else self.max_waiting
        return max(1, (self.worker_count + waiting) // 2)


@dataclass(frozen=True)
class AccessOptions:
    #: Off only by an explicit choice (``serve --no-auth``, loopback only): then every caller is an admin.
    auth: bool = True
    #: An admin token for this process; empty: ``serve`` makes one at start when the database has no token.
    admin_token: str = ""
    #: Signs session cookies; empty: a random one per process (several instances must share one).
    session_secret: str = ""
    #: A header carrying the user name set by a reverse proxy that signs people on (X-Forwarded-User) ...
    user_header: str = ""
    #: ... believed only from these addresses or networks (the proxy's), never from anyone else.
    trusted_proxies: tuple[str, ...] = ()
    #: Grants of the users named by the proxy: user -> grants (``*`` for any other user).
    user_grants: Mapping[str, Grants] = field(default_factory=dict)
    #: Origins allowed to call the API from scripts (CORS, bearer tokens only); none by default.
    cors_origins: tuple[str, ...] = ()
    #: Of ``metrics``, ``status``, ``docs``: the ones served without credentials (default: admins only).
    public: tuple[str, ...] = ()


@dataclass(frozen=True)
class LifecycleOptions:
    #: How often a running instance marks its jobs as alive (the heartbeat) and looks for dead instances' jobs.
    heartbeat_seconds: float = 5.0
    #: A job whose heartbeat is older than this belongs to a dead instance: it is marked failed (nothing was
    #: written: a worker never commits once its server is gone). Keep it well above ``heartbeat_seconds``.
    heartbeat_timeout: float = 30.0
    #: On SIGTERM, how long running work may go on; then it is rolled back and its jobs are marked failed.
    drain_seconds: float = 10.0


#: The types a named query's parameter may have (a column's kinds).
PARAMETER_KINDS = ("integer", "numeric", "float", "text", "date", "timestamp", "time", "boolean")


@dataclass(frozen=True)
class NamedQuery:
    """A query an admin defined for what a query string cannot say (joins, aggregates): exported at
    ``/exports/q/{name}.xlsx?param=...``, granted like a table of that name. ``sql`` names its parameters
    ``:name``; ``params`` gives each one's kind, in order."""

    name: str
    sql: str
    params: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class ConnectionOptions:
    #: A connection must send a whole request line and headers within this long (from its start, or from the end of
    #: its previous response); one that sends nothing, or half a request, is closed. nginx's client_header_timeout.
    header_seconds: float = 20.0
    #: Open connections at most (fewer when the descriptor limit leaves less room: docs/operations.md); past it a
    #: new connection gets a 503 at once, except a few kept for ``/healthz`` and ``/readyz``.
    max_connections: int = 4096


@dataclass(frozen=True)
class Settings:
    #: ``postgresql://...`` or ``sqlite:///path``; default: ``<data_dir>/sheetstream.db``.
    database_url: str = ""
    data_dir: Path = Path("data")
    #: The tables that may be exported and imported (an allow-list).
    tables: tuple[str, ...] = ("orders",)
    #: ``serve`` and ``seed`` retry an unreachable database this long before they give up (a container stack
    #: starts its database and its instances at once; podman-compose does not wait for healthchecks).
    database_wait_seconds: float = 60.0
    #: ``json`` (one object a line, for a log collector) or ``text`` (for a person); empty: text on a
    #: terminal, JSON otherwise (:mod:`sheetstream.server.logs`).
    log_format: str = ""
    export: ExportOptions = field(default_factory=ExportOptions)
    imports: ImportLimits = field(default_factory=ImportLimits)
    queue: QueueOptions = field(default_factory=QueueOptions)
    access: AccessOptions = field(default_factory=AccessOptions)
    lifecycle: LifecycleOptions = field(default_factory=LifecycleOptions)
    connections: ConnectionOptions = field(default_factory=ConnectionOptions)
    #: Named queries (SHEETSTREAM_QUERIES_FILE), checked against the database when the server starts.
    queries: tuple[NamedQuery, ...] = ()

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


_GROUPS = (("export", ExportOptions), ("imports", ImportLimits), ("queue", QueueOptions), ("access", AccessOptions),
           ("lifecycle", LifecycleOptions), ("connections", ConnectionOptions))
_TOP = {f.name for f in fields(Settings)} - {group for group, _ in _GROUPS}
_GROUP_OF = {f.name: group for group, cls in _GROUPS for f in fields(cls)}


def _check(settings: Settings) -> None:
    for source, value, allowed in (
        ("strategy", settings.queue.strategy, STRATEGIES),
        ("start_method", settings.queue.start_method, START_METHODS),
        ("deflate", settings.export.deflate, DEFLATERS),
        ("long_text", settings.export.long_text, LONG_TEXT),
        ("log_format", settings.log_format or "text", LOG_FORMATS),
    ):
        if value not in allowed:
            raise ConfigError(f"{source}={value!r} is not one of {', '.join(allowed)}")
    _check_access(settings.access)
    life = settings.lifecycle
    if life.heartbeat_timeout < 2 * life.heartbeat_seconds:
        # Shorter, and a live instance whose beat is a little late would see its jobs settled as failed by another.
        raise ConfigError(f"heartbeat_timeout={life.heartbeat_timeout:g} s must be at least twice "
                          f"heartbeat_seconds={life.heartbeat_seconds:g} s")


def _check_access(access: AccessOptions) -> None:
    for name in access.public:
        if name not in PUBLIC:
            raise ConfigError(f"public={name!r} is not one of {', '.join(PUBLIC)}")
    for proxy in access.trusted_proxies:
        try:
            ipaddress.ip_network(proxy, strict=False)
        except ValueError:
            raise ConfigError(f"trusted proxy {proxy!r} is not an IP address or network") from None
    if access.user_header and not access.trusted_proxies:
        raise ConfigError(f"trusting the {access.user_header} header needs the addresses of the proxy that sets it "
                          "(--trusted-proxies / SHEETSTREAM_TRUSTED_PROXIES); anyone else could set it too")
    for origin in access.cors_origins:
        if not re.match(r"^https?://[^/\s]+$", origin):
            raise ConfigError(f"CORS origin {origin!r} is not scheme://host[:port]")


def check_listen(settings: Settings, host: str) -> None:
    """Auth off is refused unless the server listens on loopback only (nobody else can reach it)."""
    if not settings.access.auth and host not in LOOPBACK:
        raise ConfigError(f"--no-auth is refused on {host}: without authentication anyone who reaches the server may "
                          f"replace its tables; listen on 127.0.0.1 only, or create tokens (sheetstream token create)")


def _whole(text: str) -> int:
    if not text.strip().isdigit():
        raise ValueError("is not a whole number")
    return int(text)


def _bytes(text: str) -> int:
    """A whole number of bytes, or with a unit: ``64M``, ``1G`` (binary: MiB, GiB)."""
    match = re.fullmatch(r"\s*(\d+)\s*([kKmMgG]?)i?[bB]?\s*", text)
    if not match:
        raise ValueError("is not a number of bytes (e.g. 268435456, 256M, 1G)")
    return int(match[1]) << {"": 0, "k": 10, "m": 20, "g": 30}[match[2].lower()]


def _megabytes(text: str) -> int:
    try:
        value = float(text)
    except ValueError:
        raise ValueError("is not a number of megabytes") from None
    if not value > 0:
        raise ValueError("must be more than 0")
    return int(value * 2**20)


def _megabytes_or_none(text: str) -> int:
    """Megabytes, where 0 means no limit."""
    return 0 if text.strip() == "0" else _megabytes(text)


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ValueError("is not a number of seconds") from None
    if not value > 0:
        raise ValueError("must be more than 0")
    return value


def _seconds_or_zero(text: str) -> float:
    """Seconds, where 0 means not at all."""
    return 0.0 if text.strip() == "0" else _seconds(text)


def _names(text: str) -> tuple[str, ...]:
    names = tuple(t.strip() for t in text.split(",") if t.strip())
    if not names:
        raise ValueError("names no table")
    return names


def _words(text: str) -> tuple[str, ...]:
    return tuple(t.strip() for t in text.replace(",", " ").split() if t.strip())


def _on_off(text: str) -> bool:
    if text not in ("on", "off"):
        raise ValueError("is not one of on, off")
    return text == "on"


def _one_of(choices: tuple[str, ...]) -> Callable[[str], str]:
    def check(text: str) -> str:
        if text not in choices:
            raise ValueError(f"is not one of {', '.join(choices)}")
        return text

    return check


#: A named query's ``:parameter`` (not a ``::`` cast, not inside a word).
PARAMETER = re.compile(r"(?<![:\w]):([A-Za-z_]\w*)")


def parameters_of(sql: str) -> list[str]:
    """The ``:name`` parameters of ``sql``, once each, in order (``::`` casts are not parameters)."""
    return list(dict.fromkeys(PARAMETER.findall(sql)))


def queries_file(text: str) -> tuple[NamedQuery, ...]:
    """A TOML file of named queries: one table each, ``[monthly] sql = "..."`` with ``params = {since = "date"}``
    naming the kind of every ``:parameter`` of the SQL."""
    import tomllib

    try:
        data = tomllib.loads(Path(text).read_text(encoding="utf-8"))
    except OSError as exc:
        raise ValueError(f"cannot be read ({exc.strerror})") from None
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"is not TOML ({exc})") from None
    queries = []
    for name, entry in data.items():
        if not isinstance(entry, dict) or not isinstance(entry.get("sql"), str) or not entry["sql"].strip():
            raise ValueError(f"has query {name!r} without its sql = \"SELECT ...\"")
        params = entry.get("params", {})
        if not isinstance(params, dict) or any(k not in PARAMETER_KINDS for k in params.values()):
            raise ValueError(f"has query {name!r} whose params are not NAME = KIND with kinds from "
                             f"{', '.join(PARAMETER_KINDS)}")
        used = parameters_of(entry["sql"])
        if set(used) != set(params):
            raise ValueError(f"has query {name!r} whose sql uses {', '.join(used) or 'no parameter'} but whose params "
                             f"name {', '.join(params) or 'none'}: name each :parameter once in params")
        queries.append(NamedQuery(name, entry["sql"].strip().rstrip(";"), tuple((p, params[p]) for p in used)))
    return tuple(queries)


def _user_grants(text: str) -> Mapping[str, Grants]:
    try:
        return parse_user_grants(text)
    except ConfigError as exc:
        raise ValueError(f"cannot be read: {exc.message}") from None


#: Environment variable -> (setting, parser). Parsers raise ValueError with the end of a sentence.
ENVIRONMENT: dict[str, tuple[str, Callable[[str], Any]]] = {
    "SHEETSTREAM_DATABASE_URL": ("database_url", str),
    "SHEETSTREAM_DATA_DIR": ("data_dir", Path),
    "SHEETSTREAM_DATABASE_WAIT_SECONDS": ("database_wait_seconds", _seconds_or_zero),
    "SHEETSTREAM_LOG_FORMAT": ("log_format", _one_of(LOG_FORMATS)),
    "SHEETSTREAM_TABLES": ("tables", _names),
    "SHEETSTREAM_QUERIES_FILE": ("queries", queries_file),
    "SHEETSTREAM_DEFLATE": ("deflate", _one_of(DEFLATERS)),
    "SHEETSTREAM_DEFLATE_LEVEL": ("deflate_level", _whole),
    "SHEETSTREAM_DEFLATE_ADAPTIVE": ("deflate_adaptive", _on_off),
    "SHEETSTREAM_EXECUTOR": ("strategy", _one_of(STRATEGIES)),
    "SHEETSTREAM_WORKERS": ("workers", _whole),
    "SHEETSTREAM_MAX_WAITING": ("max_waiting", _whole),
    "SHEETSTREAM_START_METHOD": ("start_method", _one_of(START_METHODS)),
    "SHEETSTREAM_MAX_UPLOAD_MB": ("max_upload_bytes", _megabytes),
    "SHEETSTREAM_MAX_PER_IDENTITY": ("max_per_identity", _whole),
    "SHEETSTREAM_ADMIN_TOKEN": ("admin_token", str),
    "SHEETSTREAM_SESSION_SECRET": ("session_secret", str),
    "SHEETSTREAM_TRUST_USER_HEADER": ("user_header", str),
    "SHEETSTREAM_TRUSTED_PROXIES": ("trusted_proxies", _words),
    "SHEETSTREAM_USER_GRANTS": ("user_grants", _user_grants),
    "SHEETSTREAM_CORS_ORIGINS": ("cors_origins", _words),
    "SHEETSTREAM_PUBLIC": ("public", _words),
    "SHEETSTREAM_KEEP_UPLOAD_SECONDS": ("keep_upload_seconds", _whole),
    "SHEETSTREAM_HEARTBEAT_SECONDS": ("heartbeat_seconds", _seconds),
    "SHEETSTREAM_HEARTBEAT_TIMEOUT": ("heartbeat_timeout", _seconds),
    "SHEETSTREAM_DRAIN_SECONDS": ("drain_seconds", _seconds),
    "SHEETSTREAM_UPLOAD_IDLE_SECONDS": ("upload_idle_seconds", _seconds),
    "SHEETSTREAM_UPLOAD_MIN_RATE": ("upload_min_rate", _whole),
    "SHEETSTREAM_UPLOAD_GRACE_SECONDS": ("upload_grace_seconds", _seconds),
    "SHEETSTREAM_UPLOADS_PER_ADDRESS": ("uploads_per_address", _whole),
    "SHEETSTREAM_MAX_SPOOL_FILES": ("max_spool_files", _whole),
    "SHEETSTREAM_MAX_SPOOL_MB": ("max_spool_bytes", _megabytes),
    "SHEETSTREAM_IMPORT_CPU_SECONDS": ("import_cpu_seconds", _seconds),
    "SHEETSTREAM_EXPORT_STALL_SECONDS": ("export_stall_seconds", _seconds),
    "SHEETSTREAM_EXPORT_MAX_SECONDS": ("export_max_seconds", _seconds),
    "SHEETSTREAM_WORKER_MEMORY_MB": ("worker_memory_bytes", _megabytes_or_none),
    "SHEETSTREAM_SPLIT_IMPORTS": ("split_imports", _on_off),
    "SHEETSTREAM_EXPORT_SPILL_BYTES": ("export_spill_bytes", _bytes),
    "SHEETSTREAM_HEADER_SECONDS": ("header_seconds", _seconds),
    "SHEETSTREAM_MAX_CONNECTIONS": ("max_connections", _whole),
}


#: The variable naming the configuration file (``serve --config`` too).
CONFIG_VARIABLE = "SHEETSTREAM_CONFIG"


def file_key(variable: str) -> str:
    """A variable's key in the configuration file: ``SHEETSTREAM_MAX_UPLOAD_MB`` -> ``max_upload_mb``."""
    return variable.removeprefix("SHEETSTREAM_").lower()


def read_file(path: Path) -> dict[str, str]:
    """A TOML configuration file as the variables it stands for (``workers = 4`` -> ``SHEETSTREAM_WORKERS="4"``):
    the same names (in lower case, without the prefix), the same values, read by the same parsers. Lists
    (``tables = ["a", "b"]``) and booleans (``split_imports = true``) are written as TOML's own."""
    import tomllib

    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except OSError as exc:
        raise ConfigError(f"cannot read the configuration file {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"the configuration file {path} is not TOML: {exc}") from None
    known = {file_key(variable): variable for variable in ENVIRONMENT}
    variables = {}
    for key, value in data.items():
        if key not in known:
            raise ConfigError(f"{path}: unknown setting {key!r}; the settings are: {', '.join(sorted(known))}")
        if isinstance(value, bool):
            value = "on" if value else "off"
        elif isinstance(value, list):
            value = ",".join(map(str, value))
        elif isinstance(value, dict) and key == "user_grants":  # {alice = "orders:read,append"}
            value = "; ".join(f"{user}={grants}" for user, grants in value.items())
        elif not isinstance(value, (str, int, float)):
            raise ConfigError(f"{path}: {key} = {value!r} is not a string, a number, a boolean or a list")
        variables[known[key]] = str(value)
    return variables


def from_env(environ: Mapping[str, str] | None = None, config_file: Path | None = None) -> Settings:
    """Defaults, overridden by the configuration file's settings (``config_file``, or the file named by
    SHEETSTREAM_CONFIG), overridden by the ``SHEETSTREAM_*`` variables that are set and not empty. One table
    (:data:`ENVIRONMENT`) reads both."""
    env = os.environ if environ is None else environ
    path = config_file or (Path(env[CONFIG_VARIABLE]) if env.get(CONFIG_VARIABLE) else None)
    sources: dict[str, tuple[str, str]] = {}  # variable -> (text, where it was read)
    if path is not None:
        sources.update({v: (text, f"{path}: {file_key(v)}") for v, text in read_file(path).items()})
    sources.update({v: (env[v], v) for v in ENVIRONMENT if env.get(v)})
    changes: dict[str, Any] = {}
    for variable, (text, where) in sources.items():
        name, parse = ENVIRONMENT[variable]
        try:
            changes[name] = parse(text)
        except ValueError as exc:
            raise ConfigError(f"{where}={text!r} {exc}") from None
    return Settings().with_(**changes)
