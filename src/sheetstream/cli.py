"""``sheetstream``: serve, seed, token, download, upload, commit, round trip, load test, study, bench."""

from __future__ import annotations

import argparse
import asyncio
import importlib
import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path

from . import config
from .access import parse_user_grants
from .errors import ConfigError, Conflict, StoreUnavailable
from .formats import FORMATS
from .store import MODES

DEMO_ROWS = 200_000  # about 12 MB of xlsx: past the 10 MB the study asks for


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="sheetstream", description=__doc__)
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    commands = parser.add_subparsers(dest="command", required=True)
    for add in (_add_serve, _add_seed, _add_token, _add_transfers, _add_load, _add_bench):
        add(commands)
    args = parser.parse_args(argv)
    try:
        return args.run(args) or 0
    except (ConfigError, Conflict) as exc:  # a setting it cannot use, a token name already taken
        parser.exit(2, f"sheetstream: {exc.message}\n")
    except StoreUnavailable as exc:  # the database never answered (serve and seed wait for it first)
        parser.exit(1, f"sheetstream: {exc.message}\n")


def _add_serve(commands: argparse._SubParsersAction) -> None:
    serve = commands.add_parser("serve", help="run the HTTP server (seeds the demo table on first run)")
    _database_options(serve)
    serve.add_argument("--host", default=os.environ.get("SHEETSTREAM_HOST") or "127.0.0.1",
                       help="address to listen on (env SHEETSTREAM_HOST; default %(default)s)")
    serve.add_argument("--port", type=int, default=int(os.environ.get("SHEETSTREAM_PORT") or 8000),
                       help="port to listen on (env SHEETSTREAM_PORT; default %(default)s)")
    serve.add_argument("--demo-rows", type=int, default=DEMO_ROWS, help="rows seeded on first run (default %(default)s)")
    serve.add_argument("--no-seed", action="store_true", help="do not seed the demo table when it is missing")
    _wait_option(serve)
    serve.add_argument("--log-format", choices=config.LOG_FORMATS,
                       help="log lines as JSON objects or as text (env SHEETSTREAM_LOG_FORMAT; default: text on a "
                            "terminal, JSON otherwise)")
    serve.add_argument("--executor", choices=config.STRATEGIES,
                       help="how CPU work leaves the event loop (env SHEETSTREAM_EXECUTOR; default process)")
    serve.add_argument("--workers", type=int, help="workers of the processing queue (default: the number of cores)")
    serve.add_argument("--max-waiting", type=int, help="tasks that may wait for a worker before 429 (default 4 per worker)")
    serve.add_argument("--start-method", choices=config.START_METHODS, help="for --executor process")
    serve.add_argument("--split-imports", choices=["on", "off"],
                       help="read an import's sheet in two processes (--executor process, PostgreSQL; default off)")
    serve.add_argument("--tables", help="comma-separated allow-list of tables (env SHEETSTREAM_TABLES; default orders)")
    serve.add_argument("--deflate", choices=config.DEFLATERS, help="deflate library (default isal)")
    serve.add_argument("--deflate-level", type=int, help="deflate level (default 1)")
    serve.add_argument("--deflate-adaptive", choices=["on", "off"],
                       help="zlib 6 while the client reads slower than the export is written (default on)")
    access = serve.add_argument_group("access (default: tokens required; a sign-in URL with an admin start token, "
                                      "valid for this run only, is printed when the database has no live admin "
                                      "token)")
    access.add_argument("--no-auth", action="store_true",
                        help="no authentication: everyone is an admin (refused unless --host is loopback)")
    access.add_argument("--trust-user-header", metavar="HEADER",
                        help="believe this header's user name (X-Forwarded-User) from --trusted-proxies only")
    access.add_argument("--trusted-proxies", metavar="ADDRESSES", help="comma-separated addresses or networks of the "
                                                                      "reverse proxy (env SHEETSTREAM_TRUSTED_PROXIES)")
    access.add_argument("--user-grant", action="append", metavar="USER=GRANTS",
                        help="grants of a proxy's user, such as 'alice=orders:read,append' (repeatable; '*' for others)")
    access.add_argument("--public", help="comma-separated: metrics, status, docs served without credentials")
    access.add_argument("--max-per-identity", type=int,
                        help="exports and imports one caller may have running or waiting (default: half the queue)")
    serve.set_defaults(run=_serve)


def _add_token(commands: argparse._SubParsersAction) -> None:
    token = commands.add_parser("token", help="API tokens: create (shown once), list, revoke")
    actions = token.add_subparsers(dest="action", required=True)
    create = actions.add_parser("create", help="create a token and print it (only its hash is kept)")
    create.add_argument("name")
    create.add_argument("--grant", action="append", default=[], metavar="TABLE:PERMISSIONS",
                        help="such as orders:read,append (repeatable; permissions: read, append, upsert, replace; "
                             "table * for every table)")
    create.add_argument("--admin", action="store_true", help="every table, every job, metrics, status, audit")
    create.add_argument("--expires", metavar="DURATION", help="such as 30d, 12h (default: never)")
    create.set_defaults(run=_lazy_cli("tokens", "create"))
    listing = actions.add_parser("list", help="the tokens: name, grants, created, expires, revoked")
    listing.set_defaults(run=_lazy_cli("tokens", "show"))
    revoke = actions.add_parser("revoke", help="revoke a token (its sessions end too)")
    revoke.add_argument("name")
    revoke.set_defaults(run=_lazy_cli("tokens", "revoke"))
    for action in (create, listing, revoke):
        _database_options(action)


def _add_seed(commands: argparse._SubParsersAction) -> None:
    seed = commands.add_parser("seed", help="(re)create a table with deterministic demo rows")
    _database_options(seed)
    _wait_option(seed)
    seed.add_argument("--rows", type=int, required=True)
    seed.add_argument("--table", default="orders")
    seed.add_argument("--if-empty", action="store_true",
                      help="only when the table is missing or empty: rows already there are left as they are")
    seed.set_defaults(run=_seed)


def _add_transfers(commands: argparse._SubParsersAction) -> None:
    download = commands.add_parser("download", help="download an export (several at once with --parallel)")
    download.add_argument("--url", default="http://127.0.0.1:8000", help="server base URL (default %(default)s)")
    _token_option(download)
    download.add_argument("--table", default="orders")
    download.add_argument("--format", choices=sorted(FORMATS), default="xlsx", help="file format (default %(default)s)")
    download.add_argument("--columns", help="comma-separated columns")
    download.add_argument("--limit", type=int)
    download.add_argument("--filter", action="append", metavar="COLUMN=OP.VALUE",
                          help="only rows where this holds, such as amount=lt.100 (repeatable; docs/exports.md)")
    download.add_argument("--order", help="sort keys, such as created_at.desc,id")
    download.add_argument("--query", help="a raw query string, added as it is (such as a URL's part after ?)")
    download.add_argument("--parallel", type=int, default=1, metavar="N", help="N downloads at once")
    download.add_argument("--to-dir", type=Path, help="save each download in this folder")
    download.add_argument("-o", "--output", type=Path, help="file to save a single download to")
    download.add_argument("--quiet", action="store_true", help="no progress bars")
    download.set_defaults(run=_lazy("transfers", "run_downloads", run_async=True))

    upload = commands.add_parser("upload", help="import an .xlsx or .csv into a table, streamed, with progress")
    upload.add_argument("file", type=Path)
    upload.add_argument("--url", default="http://127.0.0.1:8000", help="server base URL (default %(default)s)")
    _token_option(upload)
    upload.add_argument("--table", default="orders")
    upload.add_argument("--mode", choices=MODES, help="append: add rows; upsert: update the rows whose key exists and "
                        "add the others; replace: the whole table (default: the server's, upsert where the table has "
                        "a primary key and the token may upsert, else append)")
    upload.add_argument("--dry-run", action="store_true", help="validate only; nothing is written")
    upload.add_argument("--sheet", help="sheet to import (default: the first)")
    upload.add_argument("--extra-columns", choices=("ignore", "error"), default="ignore",
                        help="header columns the table does not have: ignore them with a warning (default), or refuse")
    upload.add_argument("--problems-xlsx", type=Path, metavar="FILE",
                        help="when the import finds problems, save the workbook with them marked to FILE")
    upload.add_argument("--quiet", action="store_true", help="no progress bars")
    upload.set_defaults(run=_lazy("transfers", "run_upload", run_async=True))

    commit = commands.add_parser("commit", help="import the file a dry run (upload --dry-run) checked, without "
                                                "sending it again")
    commit.add_argument("job", metavar="JOB_ID", help="the dry run's job id (upload --dry-run prints it)")
    commit.add_argument("--wait", action="store_true",
                        help="follow the import until it ends and report its outcome (default: report it started)")
    commit.add_argument("--url", default="http://127.0.0.1:8000", help="server base URL (default %(default)s)")
    _token_option(commit)
    commit.add_argument("--problems-xlsx", type=Path, metavar="FILE",
                        help="with --wait, when the import finds problems, save the workbook with them marked to FILE")
    commit.add_argument("--quiet", action="store_true", help="no progress bar")
    commit.set_defaults(run=_lazy("transfers", "run_commit", run_async=True))

    roundtrip = commands.add_parser("roundtrip", help="N users download and re-import at once; integrity checked")
    roundtrip.add_argument("--users", type=int, default=5)
    roundtrip.add_argument("--rows", type=int, help="seed the source table with N demo rows first (default: "
                                                    "20,000 when it is missing)")
    roundtrip.add_argument("--table", default="orders")
    roundtrip.add_argument("--database-url", help="database to use (default: a temporary SQLite file)")
    roundtrip.add_argument("--url", help="use a running server (its allow-list must include TABLE_roundtrip_1..N) "
                                         "instead of starting one; needs --database-url")
    _token_option(roundtrip)
    roundtrip.set_defaults(run=_lazy("roundtrip", "run"))


def _add_load(commands: argparse._SubParsersAction) -> None:
    load = commands.add_parser("loadtest", help="N users x R rounds of download/upload/roundtrip; latency, lag, memory")
    load.add_argument("--users", type=int, default=5)
    load.add_argument("--rounds", type=int, default=2)
    load.add_argument("--mix", default="roundtrip", help="comma-separated: download, upload, roundtrip")
    load.add_argument("--table", default="orders")
    load.add_argument("--rows", type=int, help="seed the table with N demo rows first (default 20,000 when missing)")
    load.add_argument("--url", help="a running server on loopback (its allow-list must include TABLE_load_1..N)")
    load.add_argument("--database-url", help="database for its own server (default: a temporary SQLite file)")
    load.add_argument("--executor", choices=config.STRATEGIES, default="process")
    load.add_argument("--workers", type=int)
    load.add_argument("--start-method", choices=config.START_METHODS)
    load.add_argument("--max-seconds", type=float, default=600.0, help="stop the load after this long")
    load.add_argument("--settle", type=float, default=5.0,
                      help="read the server's memory this many seconds after the load (0: not)")
    load.add_argument("--json", type=Path, help="write the results here")
    _token_option(load)
    load.set_defaults(run=_lazy("loadtest", "run"))

    study = commands.add_parser("study", help="every strategy and peer, measured; results.json, study.md, plots")
    study.add_argument("--quick", action="store_true", help="small sizes: a smoke run in well under 2 minutes")
    study.add_argument("--out", type=Path, default=Path("study-results"))
    study.add_argument("--database-url", help="database to use (default: a temporary SQLite file)")
    study.set_defaults(run=_lazy("study", "run"))


def _add_bench(commands: argparse._SubParsersAction) -> None:
    bench = commands.add_parser("bench", help="benchmarks; JSON results and a printed table")
    kinds = bench.add_subparsers(dest="kind", required=True)
    export = kinds.add_parser("export", help="sheetstream vs XlsxWriter, openpyxl, rustpy-xlsxwriter, pandas, "
                              "polars and ExcelJS, and HTTP time to first byte")
    export.add_argument("--rows", type=int, nargs="+", default=[200_000])
    export.add_argument("--peers", default="copy-floor,xlsxwriter,openpyxl,rustpy-xlsxwriter,pandas,polars,exceljs",
                        help="comma-separated peers (also pyexcelerate), or none (default %(default)s)")
    export.add_argument("--repeats", type=int, default=5,
                        help="interleaved repeats of each size's writers; ratios are taken pair by pair (default 5)")
    export.add_argument("--source", choices=["postgres", "mysql", "demo"], default="postgres",
                        help="rows read from PostgreSQL through a server-side cursor (default), from MySQL/MariaDB "
                             "(also serves the HTTP runs from it), or generated")
    export.add_argument("--deflate-choices", choices=["all", "default"], default="all",
                        help="every deflate library and level, or only the default (isal level 1)")
    export.add_argument("--no-postgres-read", dest="postgres_read", action="store_false",
                        help="skip the PostgreSQL read-path comparison")
    export.add_argument("--http-rows", type=int, nargs="*", default=[100_000, 1_000_000],
                        help="table sizes for the HTTP time-to-first-byte and server memory runs")
    export.add_argument("--out", type=Path, default=Path("bench-results/export.json"))
    export.set_defaults(run=_lazy("bench.export", "run"))

    imports = kinds.add_parser("import", help="whole import vs calamine, pandas, polars and openpyxl; parsers")
    imports.add_argument("--rows", type=int, nargs="+", default=[200_000])
    imports.add_argument("--databases", default="sqlite,postgres", help="of sqlite, postgres, mysql (default %(default)s)")
    imports.add_argument("--peers", default="copy-floor,calamine-copy,pandas-copy,polars-adbc,openpyxl-executemany,pandas-to_sql,"
                         "csv-load-data", help="comma-separated peers, or none (default %(default)s)")
    imports.add_argument("--repeats", type=int, default=5,
                         help="interleaved repeats of each size's cases; ratios are taken pair by pair (default 5)")
    imports.add_argument("--openpyxl-max", type=int, default=200_000,
                         help="skip the (slow) openpyxl cases above this many rows")
    imports.add_argument("--writer", choices=["sheetstream", "xlsxwriter"], default="sheetstream",
                         help="who writes the workbook: sheetstream (inline strings) or XlsxWriter (shared strings "
                         "and cell references, as Excel writes; default %(default)s)")
    imports.add_argument("--tables", default="empty", help="empty: into an empty table; full: replacing the "
                         "table's rows with the same rows; or both, empty,full (default %(default)s)")
    imports.add_argument("--no-parse", action="store_true", help="skip the parse-only cases (a quicker run)")
    imports.add_argument("--out", type=Path, default=Path("bench-results/import.json"))
    imports.set_defaults(run=_lazy("bench.imports", "run"))

    throttled = kinds.add_parser("throttled", help="adaptive vs fixed deflate level: bytes on the wire, time and "
                                 "server CPU for a throttled and an unthrottled client")
    throttled.add_argument("--rows", type=int, default=200_000, help="demo rows exported (default %(default)s)")
    throttled.add_argument("--rate", type=float, default=2.0, help="the throttled client's MB/s (default %(default)s)")
    throttled.add_argument("--repeats", type=int, default=1, help="runs of each client and mode (default 1)")
    throttled.add_argument("--out", type=Path, default=Path("bench-results/throttled.json"))
    throttled.set_defaults(run=_lazy("bench.throttled", "run"))

    slow = kinds.add_parser("slow-clients", help="worker-seconds per export and exports per minute for readers at "
                            "given rates, spill on vs off; first byte and CPU per row of a lone fast export")
    slow.add_argument("--rows", type=int, default=100_000, help="demo rows exported (default %(default)s)")
    slow.add_argument("--readers", type=int, default=4, help="clients downloading at once (default %(default)s)")
    slow.add_argument("--workers", type=int, default=2, help="the servers' workers (default %(default)s)")
    slow.add_argument("--rates", type=float, nargs="+", default=[1.0, 10.0, 100.0],
                      help="the readers' MB/s, beside unthrottled (default %(default)s)")
    slow.add_argument("--repeats", type=int, default=1, help="runs of each rate and mode (default 1)")
    slow.add_argument("--out", type=Path, default=Path("bench-results/slow-clients.json"))
    slow.set_defaults(run=_lazy("bench.slow_clients", "run"))

    channel = kinds.add_parser("channel", help="cost of moving chunks from a worker to the event loop")
    channel.add_argument("--megabytes", type=int, default=512)
    channel.add_argument("--out", type=Path, default=Path("bench-results/channel.json"))
    channel.set_defaults(run=_lazy("bench.channel", "run"))

    csv = kinds.add_parser("csv", help="CSV both ways on PostgreSQL against COPY TO/FROM STDIN (the floor) and "
                                       "polars + ADBC; the CSV writer and reader alone against the stdlib loop")
    csv.add_argument("--rows", type=int, nargs="+", default=[200_000, 1_000_000])
    csv.add_argument("--repeats", type=int, default=3)
    csv.add_argument("--quick", action="store_true", help="20,000 rows, 2 repeats (a smoke run)")
    csv.add_argument("--no-parts", action="store_true", help="end to end only: not the writer and reader alone")
    csv.add_argument("--out", type=Path, default=Path("bench-results/csv.json"))
    csv.set_defaults(run=_lazy("bench.csvbench", "run"))

    hostile = kinds.add_parser("hostile", help="files made to hurt, uploaded to a server: the answer, its time, and "
                               "the whole server's peak memory")
    hostile.add_argument("--out", type=Path, default=Path("bench-results/hostile.json"))
    hostile.set_defaults(run=_lazy("bench.hostile", "run"))

    markup = kinds.add_parser("markup", help="the marked-up workbook with every problem cell marked: time and peak "
                              "memory per number of problems")
    markup.add_argument("--problems", type=int, nargs="+", default=[20_000, 200_000])
    markup.add_argument("--repeats", type=int, default=3)
    markup.add_argument("--out", type=Path, default=Path("bench-results/markup.json"))
    markup.set_defaults(run=_lazy("bench.markup", "run"))

    profile = kinds.add_parser("profile-import", help="CPU-time profile of one import into PostgreSQL per size, "
                               "and the functions that grow faster than the rows")
    profile.add_argument("--rows", type=int, nargs="+", default=[200_000, 1_000_000])
    profile.add_argument("--out", type=Path, default=Path("bench-results/profile"),
                         help="folder for profile.json, profile.md and the .pstats files")
    profile.add_argument("--no-profile", dest="profile", action="store_false",
                         help="skip the profiled runs (cProfile slows the import several times)")
    profile.add_argument("--no-stages", dest="stages", action="store_false",
                         help="skip the unprofiled stage runs (read, validate, copy, job)")
    profile.add_argument("--no-server", dest="server", action="store_false",
                         help="skip the unprofiled import through a server")
    profile.set_defaults(run=_lazy("bench.profile_import", "run"))


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("sheetstream")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "(not installed)"


def _lazy(module: str, function: str, run_async: bool = False):
    """A command that imports its module only when it runs (``sheetstream --help`` stays quick)."""

    def run(args: argparse.Namespace) -> int:
        target = getattr(importlib.import_module(f".tools.{module}", __package__), function)
        return asyncio.run(target(args)) if run_async else target(args)

    return run


def _token_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--token", default=os.environ.get("SHEETSTREAM_TOKEN"),
                        help="API token for a server with --url (env SHEETSTREAM_TOKEN)")


def _lazy_cli(module: str, function: str):
    """A command of the service's own (beside the tools), imported when it runs."""

    def run(args: argparse.Namespace) -> int:
        return getattr(importlib.import_module(f".{module}", __package__), function)(args, _settings(args))

    return run


def _database_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, metavar="FILE",
                        help="a TOML file of settings, named as the SHEETSTREAM_* variables without the prefix, in "
                             "lower case (env SHEETSTREAM_CONFIG); the variables override it, the flags both")
    parser.add_argument("--database-url", help="postgresql://... or sqlite:///path (env SHEETSTREAM_DATABASE_URL; "
                                               "default: a SQLite file in the data directory)")
    parser.add_argument("--data-dir", type=Path, help="where the default SQLite database lives (default ./data)")


def _wait_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--database-wait", type=float, metavar="SECONDS",
                        help="retry an unreachable database this long before giving up (env "
                             "SHEETSTREAM_DATABASE_WAIT_SECONDS; default 60; 0: do not wait)")


def _switch(args: argparse.Namespace, name: str) -> bool | None:
    """An ``on``/``off`` flag as a setting; None when not given (the environment's or the default stands)."""
    return {"on": True, "off": False}.get(getattr(args, name, None) or "")


def _settings(args: argparse.Namespace) -> config.Settings:
    return config.from_env(config_file=getattr(args, "config", None)).with_(
        database_url=getattr(args, "database_url", None),
        data_dir=getattr(args, "data_dir", None),
        deflate=getattr(args, "deflate", None),
        deflate_level=getattr(args, "deflate_level", None),
        deflate_adaptive=_switch(args, "deflate_adaptive"),
        tables=tuple(t.strip() for t in args.tables.split(",")) if getattr(args, "tables", None) else None,
        strategy=getattr(args, "executor", None),
        workers=getattr(args, "workers", None),
        max_waiting=getattr(args, "max_waiting", None),
        start_method=getattr(args, "start_method", None),
        split_imports=_switch(args, "split_imports"),
        auth=False if getattr(args, "no_auth", False) else None,
        user_header=getattr(args, "trust_user_header", None),
        trusted_proxies=_split(getattr(args, "trusted_proxies", None)),
        user_grants=parse_user_grants(";".join(args.user_grant)) if getattr(args, "user_grant", None) else None,
        public=_split(getattr(args, "public", None)),
        max_per_identity=getattr(args, "max_per_identity", None),
        database_wait_seconds=getattr(args, "database_wait", None),
        log_format=getattr(args, "log_format", None),
    )


def _split(text: str | None) -> tuple[str, ...] | None:
    return tuple(t.strip() for t in text.split(",") if t.strip()) if text else None


def _serve(args: argparse.Namespace) -> int:
    from .server import create_app
    from .server.logs import configure
    from .server.routes.meta import compiled_scanner
    from .store import open_store, safe_url, wait_for
    from .store.demo import seed
    from .tokens import start_token

    settings = _settings(args)
    config.check_listen(settings, args.host)
    configure(settings.log_format)
    if settings.is_default_database:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    store = open_store(settings.database)
    # Wait for the database (0: start without it; /readyz says when it answers).
    found = wait_for(store, settings.database_wait_seconds, _say) if settings.database_wait_seconds else None
    if not args.no_seed and "orders" in settings.tables and "orders" not in (found or store.tables()):
        print(f"seeding the demo table 'orders' with {args.demo_rows:,} rows in {safe_url(store.url)} ...", flush=True)
        seed(store, args.demo_rows)
    settings, token = start_token(settings, store)
    app = create_app(settings, store)
    url = f"http://{'[' + args.host + ']' if ':' in args.host else args.host}:{args.port}/"
    scanner = compiled_scanner()
    logging.getLogger("sheetstream.server").log(
        logging.INFO if scanner else logging.WARNING, "imports read with the %s",
        "compiled scanner" if scanner else "Python loop: the compiled scanner was not built (no C compiler at "
        "install?), imports are about 4x slower", extra={"event": "start", "compiled_scanner": scanner})
    banner = (f"sheetstream serving {safe_url(store.url)} ({settings.queue.strategy} strategy, "
              f"{'compiled scanner' if scanner else 'NO compiled scanner: imports about 4x slower'})\n")
    if not settings.access.auth:
        banner += f"  page:   {url}\n  authentication is OFF (--no-auth): anyone on this machine is an admin"
    elif token:
        # In the fragment (#), which a browser never sends: no proxy or server log ever sees the token.
        banner += (f"  page:   {url}#token={token}\n"
                   f"  (an admin start token, valid for this run only: it stops working when this server stops. "
                   f"Open the page with this URL, or send 'Authorization: Bearer {token}'. A lasting admin token: "
                   f"sheetstream token create NAME --admin)")
    else:
        banner += (f"  page:   {url}  (sign in with one of the tokens in the database: sheetstream token list; "
                   f"a new one: sheetstream token create NAME --admin, or --grant orders:read for read-only)")
    _run_server(app, args.host, args.port, settings.lifecycle.drain_seconds, lambda: print(banner, flush=True))
    return 0


def _run_server(app, host: str, port: int, drain_seconds: float, listening: Callable[[], None]) -> None:
    """uvicorn, telling the app the moment SIGTERM (or SIGINT) arrives: it stops admitting work then, and its
    drain deadline counts from then. uvicorn's own graceful shutdown (open requests) gets the same deadline;
    running jobs are drained after it, in the app's lifespan (server/lifecycle.py). ``listening()`` is called
    once the app has started and the socket listens: a URL printed then answers at once."""
    import uvicorn

    from .server.connections import raise_open_files, uvicorn_options

    class DrainingServer(uvicorn.Server):
        async def startup(self, sockets=None) -> None:
            await super().startup(sockets)
            if self.started:
                listening()

        def handle_exit(self, sig: int, frame) -> None:
            app.state.lifecycle.drain()
            super().handle_exit(sig, frame)

    raise_open_files()
    # Logging as configured by serve (server/logs.py): uvicorn's own access lines are replaced by the app's.
    config = uvicorn.Config(app, host=host, port=port, log_level="warning", log_config=None, access_log=False,
                            timeout_graceful_shutdown=drain_seconds,
                            **uvicorn_options(app.state.settings))  # type: ignore[arg-type]
    DrainingServer(config).run()


def _seed(args: argparse.Namespace) -> int:
    from .store import open_store, safe_url, wait_for
    from .store.demo import seed

    settings = _settings(args)
    if settings.is_default_database:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    store = open_store(settings.database)
    found = wait_for(store, settings.database_wait_seconds, _say)
    if args.if_empty and args.table in found and (rows := store.count(args.table)):
        print(f"{args.table!r} already has {rows:,} rows in {safe_url(store.url)}: left as it is (--if-empty)")
        return 0
    count = seed(store, args.rows, args.table)
    print(f"seeded {count:,} rows into {args.table!r} in {safe_url(store.url)}")
    return 0


def _say(message: str) -> None:
    print(f"sheetstream: {message}", file=sys.stderr, flush=True)


if __name__ == "__main__":
    sys.exit(main())
