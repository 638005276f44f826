"""The console script: seed, download (single, parallel, to a folder), exit codes."""

from __future__ import annotations

from pathlib import Path

import openpyxl
import pytest

from sheetstream.cli import main
from sheetstream.server import create_app
from sheetstream.store import open_store

from .helpers import make_settings


@pytest.fixture
def served(tmp_path: Path, live_server):
    data = tmp_path / "data"
    assert main(["seed", "--rows", "500", "--data-dir", str(data)]) == 0
    store = open_store(f"sqlite:///{data / 'sheetstream.db'}")
    with live_server(create_app(make_settings(data_dir=data), store)) as server:
        yield server


def test_seed_is_deterministic(tmp_path: Path) -> None:
    for name in ("a", "b"):
        assert main(["seed", "--rows", "50", "--database-url", f"sqlite:///{tmp_path / name}.db"]) == 0
    a, b = (open_store(f"sqlite:///{tmp_path / n}.db") for n in ("a", "b"))
    assert list(a.read_rows("orders", a.columns("orders"))) == list(b.read_rows("orders", b.columns("orders")))


def test_download_one_file(served, tmp_path: Path, capsys) -> None:
    out = tmp_path / "one.xlsx"
    assert main(["download", "--url", served.url, "-o", str(out), "--quiet"]) == 0
    assert openpyxl.load_workbook(out).active.max_row == 501
    assert "first byte" in capsys.readouterr().out


def test_download_parallel_to_a_folder(served, tmp_path: Path, capsys) -> None:
    folder = tmp_path / "many"
    assert main(["download", "--url", served.url, "--parallel", "3", "--to-dir", str(folder), "--limit", "7", "--quiet"]) == 0
    files = sorted(folder.iterdir())
    assert [f.name for f in files] == ["orders-1.xlsx", "orders-2.xlsx", "orders-3.xlsx"]
    for f in files:
        assert openpyxl.load_workbook(f).active.max_row == 8
    table = capsys.readouterr().out
    assert table.count(" ok ") == 3


def test_download_failure_exits_non_zero(served, tmp_path: Path, capsys) -> None:
    out = tmp_path / "x.xlsx"
    assert main(["download", "--url", served.url, "--table", "nope", "-o", str(out), "--quiet"]) == 1
    assert not out.exists() and not (tmp_path / "x.xlsx.part").exists()
    assert "404" in capsys.readouterr().out


def test_download_from_a_dead_server_exits_non_zero(tmp_path: Path) -> None:
    assert main(["download", "--url", "http://127.0.0.1:9", "-o", str(tmp_path / "x.xlsx"), "--quiet"]) == 1


def test_upload_prints_problems_and_exits_non_zero(served, tmp_path: Path, capsys) -> None:
    from sheetstream.formats.xlsx import write_xlsx
    from sheetstream.store.demo import ORDERS, demo_rows

    good, bad = tmp_path / "good.xlsx", tmp_path / "bad.xlsx"
    good.write_bytes(b"".join(write_xlsx(demo_rows(20), [c.name for c in ORDERS])))
    rows = [("x", *r[1:]) if r[0] == 3 else r for r in demo_rows(5)]
    bad.write_bytes(b"".join(write_xlsx(rows, [c.name for c in ORDERS], sheet_name="orders")))
    assert main(["upload", str(good), "--url", served.url, "--mode", "replace", "--quiet"]) == 0
    assert "20 rows written to 'orders' (replace)" in capsys.readouterr().out
    assert main(["upload", str(bad), "--url", served.url, "--mode", "replace", "--quiet"]) == 1
    out = capsys.readouterr().out
    assert "import failed" in out and "A4" in out and "is not a whole" in out


def test_roundtrip_command_sqlite(capsys) -> None:
    assert main(["roundtrip", "--users", "3", "--rows", "400"]) == 0
    assert capsys.readouterr().out.count("identical") == 3


@pytest.mark.postgres
def test_roundtrip_command_postgres(pg_url: str, capsys) -> None:
    assert main(["roundtrip", "--users", "5", "--rows", "400", "--table", "rt_orders", "--database-url", pg_url]) == 0
    assert capsys.readouterr().out.count("identical") == 5


def test_loadtest_runs_every_operation_and_reports_the_server(tmp_path: Path, capsys) -> None:
    import json

    out = tmp_path / "load.json"
    assert main(["loadtest", "--users", "2", "--rounds", "3", "--rows", "300", "--mix", "download,upload,roundtrip",
                 "--executor", "process", "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    assert set(result["operations"]) == {"download", "upload", "roundtrip"}
    assert sum(o["ok"] for o in result["operations"].values()) == 6 and result["errors"] == {}
    assert result["server"]["strategy"] == "process" and result["server"]["rss_main_mb_max"] > 10
    assert result["server"]["lag"]["samples"] > 0 and result["rows_per_s"] > 0
    assert "event-loop lag" in capsys.readouterr().out


def test_loadtest_refuses_other_hosts(tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match="loopback"):
        main(["loadtest", "--url", "http://10.0.0.1:8000", "--database-url", f"sqlite:///{tmp_path / 'x.db'}",
              "--rows", "10", "--users", "1", "--rounds", "1"])


def test_bench_channel_moves_every_byte(tmp_path: Path) -> None:
    import json

    out = tmp_path / "channel.json"
    assert main(["bench", "channel", "--megabytes", "4", "--out", str(out)]) == 0
    results = json.loads(out.read_text())
    assert [r["bytes"] for r in results] == [4 << 20] * 3
    assert all(r["mb_per_s"] > 0 for r in results)


@pytest.mark.parametrize("url", ["postgresql://app:s3cret@127.0.0.1:5432/test",
                                 "postgresql://app@127.0.0.1:5432/test?sslmode=disable&password=s3cret",
                                 "postgresql://app:s3/cr@t@127.0.0.1:5432/test"])
def test_the_startup_banner_hides_the_database_password(url: str, monkeypatch, capsys) -> None:
    import uvicorn

    monkeypatch.setattr(uvicorn.Server, "run", lambda self, *args, **kwargs: None)  # the banner, not the serving
    assert main(["serve", "--no-seed", "--database-url", url, "--port", "0"]) == 0
    out = capsys.readouterr().out
    assert "sheetstream serving postgresql://app" in out and "127.0.0.1:5432/test" in out
    assert "s3" not in out and "***" in out
