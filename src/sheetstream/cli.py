"""``sheetstream``: serve, seed, download, upload, round trip, load test, study, bench."""

from __future__ import annotations

import argparse
import asyncio
import importlib
import sys
from pathlib import Path

from . import config
from .errors import ConfigError
from .store import MODES

DEMO_ROWS = 200_000  # about 19 MB of xlsx: comfortably past the 10 MB the study asks for


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="sheetstream", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    for add in (_add_serve, _add_seed, _add_transfers, _add_load, _add_bench):
        add(commands)
    args = parser.parse_args(argv)
    try:
        return args.run(args) or 0
    except ConfigError as exc:
        parser.exit(2, f"sheetstream: {exc.message}\n")


def _add_serve(commands: argparse._SubParsersAction) -> None:
    serve = commands.add_parser("serve", help="run the HTTP server (seeds the demo table on first run)")
    _database_options(serve)
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--demo-rows", type=int, default=DEMO_ROWS, help="rows seeded on first run (default %(default)s)")
    serve.add_argument("--no-seed", action="store_true", help="do not seed the demo table when it is missing")
    serve.add_argument("--executor", choices=config.STRATEGIES,
                       help="how CPU work leaves the event loop (env SHEETSTREAM_EXECUTOR; default process)")
    serve.add_argument("--workers", type=int, help="workers of the processing queue (default: the number of cores)")
    serve.add_argument("--max-waiting", type=int, help="tasks that may wait for a worker before 429 (default 4 per worker)")
    serve.add_argument("--start-method", choices=config.START_METHODS, help="for --executor process")
    serve.add_argument("--tables", help="comma-separated allow-list of tables (env SHEETSTREAM_TABLES; default orders)")
    serve.add_argument("--deflate", choices=config.DEFLATERS, help="deflate library (default isal)")
    serve.add_argument("--deflate-level", type=int, help="deflate level (default 1)")
    serve.set_defaults(run=_serve)


def _add_seed(commands: argparse._SubParsersAction) -> None:
    seed = commands.add_parser("seed", help="(re)create a table with deterministic demo rows")
    _database_options(seed)
    seed.add_argument("--rows", type=int, required=True)
    seed.add_argument("--table", default="orders")
    seed.set_defaults(run=_seed)


def _add_transfers(commands: argparse._SubParsersAction) -> None:
    download = commands.add_parser("download", help="download an export (several at once with --parallel)")
    download.add_argument("--url", default="http://127.0.0.1:8000", help="server base URL (default %(default)s)")
    download.add_argument("--table", default="orders")
    download.add_argument("--columns", help="comma-separated columns")
    download.add_argument("--limit", type=int)
    download.add_argument("--parallel", type=int, default=1, metavar="N", help="N downloads at once")
    download.add_argument("--to-dir", type=Path, help="save each download in this folder")
    download.add_argument("-o", "--output", type=Path, help="file to save a single download to")
    download.add_argument("--quiet", action="store_true", help="no progress bars")
    download.set_defaults(run=_lazy("transfers", "run_downloads", run_async=True))

    upload = commands.add_parser("upload", help="import an .xlsx into a table, streamed, with progress")
    upload.add_argument("file", type=Path)
    upload.add_argument("--url", default="http://127.0.0.1:8000", help="server base URL (default %(default)s)")
    upload.add_argument("--table", default="orders")
    upload.add_argument("--mode", choices=MODES, default="append")
    upload.add_argument("--dry-run", action="store_true", help="validate only; nothing is written")
    upload.add_argument("--sheet", help="sheet to import (default: the first)")
    upload.add_argument("--quiet", action="store_true", help="no progress bars")
    upload.set_defaults(run=_lazy("transfers", "run_upload", run_async=True))

    roundtrip = commands.add_parser("roundtrip", help="N users download and re-import at once; integrity checked")
    roundtrip.add_argument("--users", type=int, default=5)
    roundtrip.add_argument("--rows", type=int, help="seed the source table with N demo rows first (default: "
                                                    "20,000 when it is missing)")
    roundtrip.add_argument("--table", default="orders")
    roundtrip.add_argument("--database-url", help="database to use (default: a temporary SQLite file)")
    roundtrip.add_argument("--url", help="use a running server (its allow-list must include TABLE_roundtrip_1..N) "
                                         "instead of starting one; needs --database-url")
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
    load.add_argument("--json", type=Path, help="write the results here")
    load.set_defaults(run=_lazy("loadtest", "run"))

    study = commands.add_parser("study", help="every strategy and peer, measured; results.json, study.md, plots")
    study.add_argument("--quick", action="store_true", help="small sizes: a smoke run in well under 2 minutes")
    study.add_argument("--out", type=Path, default=Path("study-results"))
    study.add_argument("--database-url", help="database to use (default: a temporary SQLite file)")
    study.set_defaults(run=_lazy("study", "run"))


def _add_bench(commands: argparse._SubParsersAction) -> None:
    bench = commands.add_parser("bench", help="benchmarks; JSON results and a printed table")
    kinds = bench.add_subparsers(dest="kind", required=True)
    export = kinds.add_parser("export", help="sheetstream vs XlsxWriter vs openpyxl, and HTTP time to first byte")
    export.add_argument("--rows", type=int, nargs="+", default=[200_000])
    export.add_argument("--peers", default="xlsxwriter,openpyxl", help="comma-separated peers, or none")
    export.add_argument("--http-rows", type=int, nargs="*", default=[100_000, 1_000_000],
                        help="table sizes for the HTTP time-to-first-byte and server memory runs")
    export.add_argument("--out", type=Path, default=Path("bench-results/export.json"))
    export.set_defaults(run=_lazy("bench.export", "run"))

    imports = kinds.add_parser("import", help="whole import vs openpyxl read_only + executemany; parsers")
    imports.add_argument("--rows", type=int, nargs="+", default=[200_000])
    imports.add_argument("--databases", default="sqlite,postgres")
    imports.add_argument("--openpyxl-max", type=int, default=200_000,
                         help="skip the (slow) openpyxl cases above this many rows")
    imports.add_argument("--out", type=Path, default=Path("bench-results/import.json"))
    imports.set_defaults(run=_lazy("bench.imports", "run"))

    channel = kinds.add_parser("channel", help="cost of moving chunks from a worker to the event loop")
    channel.add_argument("--megabytes", type=int, default=512)
    channel.add_argument("--out", type=Path, default=Path("bench-results/channel.json"))
    channel.set_defaults(run=_lazy("bench.channel", "run"))


def _lazy(module: str, function: str, run_async: bool = False):
    """A command that imports its module only when it runs (``sheetstream --help`` stays quick)."""

    def run(args: argparse.Namespace) -> int:
        target = getattr(importlib.import_module(f".tools.{module}", __package__), function)
        return asyncio.run(target(args)) if run_async else target(args)

    return run


def _database_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--database-url", help="postgresql://... or sqlite:///path (env SHEETSTREAM_DATABASE_URL; "
                                               "default: a SQLite file in the data directory)")
    parser.add_argument("--data-dir", type=Path, help="where the default SQLite database lives (default ./data)")


def _settings(args: argparse.Namespace) -> config.Settings:
    return config.from_env().with_(
        database_url=getattr(args, "database_url", None),
        data_dir=getattr(args, "data_dir", None),
        deflate=getattr(args, "deflate", None),
        deflate_level=getattr(args, "deflate_level", None),
        tables=tuple(t.strip() for t in args.tables.split(",")) if getattr(args, "tables", None) else None,
        strategy=getattr(args, "executor", None),
        workers=getattr(args, "workers", None),
        max_waiting=getattr(args, "max_waiting", None),
        start_method=getattr(args, "start_method", None),
    )


def _serve(args: argparse.Namespace) -> int:
    from .server import create_app
    from .store import open_store, safe_url
    from .store.demo import seed

    settings = _settings(args)
    if settings.is_default_database:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    store = open_store(settings.database)
    if not args.no_seed and "orders" in settings.tables and "orders" not in store.tables():
        print(f"seeding the demo table 'orders' with {args.demo_rows:,} rows in {safe_url(store.url)} ...", flush=True)
        seed(store, args.demo_rows)
    app = create_app(settings, store)
    url = f"http://{args.host}:{args.port}/"
    print(f"sheetstream serving {safe_url(store.url)} ({settings.queue.strategy} strategy)\n  page:   {url}\n"
          f"  export: {url}exports/orders.xlsx", flush=True)
    _run_server(app, args.host, args.port, settings.lifecycle.drain_seconds)
    return 0


def _run_server(app, host: str, port: int, drain_seconds: float) -> None:
    """uvicorn, telling the app the moment SIGTERM (or SIGINT) arrives: it stops admitting work then, and its
    drain deadline counts from then. uvicorn's own graceful shutdown (open requests) gets the same deadline;
    running jobs are drained after it, in the app's lifespan (server/lifecycle.py)."""
    import uvicorn

    class DrainingServer(uvicorn.Server):
        def handle_exit(self, sig: int, frame) -> None:
            app.state.lifecycle.drain()
            super().handle_exit(sig, frame)

    config = uvicorn.Config(app, host=host, port=port, log_level="warning",
                            timeout_graceful_shutdown=drain_seconds)  # type: ignore[arg-type]
    DrainingServer(config).run()


def _seed(args: argparse.Namespace) -> int:
    from .store import open_store, safe_url
    from .store.demo import seed

    settings = _settings(args)
    if settings.is_default_database:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    store = open_store(settings.database)
    count = seed(store, args.rows, args.table)
    print(f"seeded {count:,} rows into {args.table!r} in {safe_url(store.url)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
