"""``sheetstream download --filter/--order/--query``: the same filtered export as the URL gives, through the CLI."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from sheetstream.cli import main
from sheetstream.server import create_app
from sheetstream.store import open_store
from sheetstream.store.demo import demo_rows
from sheetstream.tools.transfers import export_url

from .helpers import make_settings, read_workbook


@pytest.fixture
def served(tmp_path: Path, live_server):
    data = tmp_path / "data"
    assert main(["seed", "--rows", "300", "--data-dir", str(data)]) == 0
    store = open_store(f"sqlite:///{data / 'sheetstream.db'}")
    with live_server(create_app(make_settings(data_dir=data), store)) as server:
        yield server


def test_filters_and_order_give_the_rows_the_url_gives(served, tmp_path: Path) -> None:
    flags, raw = tmp_path / "flags.xlsx", tmp_path / "raw.xlsx"
    assert main(["download", "--url", served.url, "-o", str(flags), "--quiet", "--columns", "id,amount",
                 "--filter", "amount=lt.20000", "--filter", "category=in.(books,\"food & drink\")",
                 "--order", "amount.desc"]) == 0
    query = "select=id,amount&amount=lt.20000&category=in.(books,%22food%20%26%20drink%22)&order=amount.desc"
    assert main(["download", "--url", served.url, "-o", str(raw), "--quiet", "--query", query]) == 0
    by_url = httpx.get(f"{served.url}/exports/orders.xlsx?{query}")
    expected = sorted([(r[0], float(r[3])) for r in demo_rows(300) if r[3] < 20000 and r[8] in ("books", "food & drink")],
                      key=lambda r: (-r[1], r[0]))
    assert len(expected) > 3
    for body in (flags.read_bytes(), raw.read_bytes(), by_url.content):
        assert read_workbook(body)["orders"][1:] == expected


def test_a_bad_filter_fails_and_leaves_no_file(served, tmp_path: Path, capsys) -> None:
    out = tmp_path / "x.xlsx"
    assert main(["download", "--url", served.url, "-o", str(out), "--quiet", "--filter", "amount=lt.lots"]) == 1
    assert "HTTP 400" in capsys.readouterr().err and not out.exists()  # one line on stderr says the status
    with pytest.raises(SystemExit, match="COLUMN=OPERATOR.VALUE"):
        export_url(served.url, "orders", filters=["amount"])
