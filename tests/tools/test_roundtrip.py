"""The integrity check itself must catch differences, or the round trip proves nothing."""

from __future__ import annotations

from pathlib import Path

from sheetstream.store.demo import ORDERS, demo_rows, seed
from sheetstream.store.sqlite import SqliteStore
from sheetstream.tools.roundtrip import checksum, differences


def test_checksum_ignores_order_but_sees_any_change(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "x.db")
    seed(store, 200)
    rows = list(demo_rows(200))
    store.create_table("shuffled", ORDERS)
    store.write_rows("shuffled", ORDERS, reversed(rows))
    assert differences(checksum(store, "orders"), checksum(store, "shuffled")) == []

    changed = [list(r) for r in rows]
    changed[50][10] = (changed[50][10] or "") + " "  # one trailing space in one note
    changed[70][2] = None  # one email lost
    store.create_table("changed", ORDERS)
    store.write_rows("changed", ORDERS, changed)
    found = differences(checksum(store, "orders"), checksum(store, "changed"))
    assert "note: values differ" in found and any(f.startswith("email: ") for f in found)

    store.create_table("short", ORDERS)
    store.write_rows("short", ORDERS, rows[:-1])
    assert "rows: 200 vs 199" in differences(checksum(store, "orders"), checksum(store, "short"))
