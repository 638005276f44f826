"""What only MySQL/MariaDB has: its types in the catalog and on the way out, strict mode on both ways in (LOAD DATA
LOCAL, which turns refusals into warnings, and multi-row INSERTs), tables that cannot roll back, binary columns,
and an export that never blocks writers. The rest runs on every store (``store_url``)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from datetime import date, datetime, time
from decimal import Decimal
from pathlib import Path

import pytest

from sheetstream.errors import BadRequest, Invalid, RowRefused
from sheetstream.formats.xlsx import write_xlsx
from sheetstream.pipeline.jobs import Job, run_import_job
from sheetstream.store import Column, open_store
from sheetstream.store.demo import ORDERS, demo_rows, seed
from sheetstream.store.mysql import MysqlStore

LOADS = ["infile", "insert"]  # LOAD DATA LOCAL INFILE (when the server allows it), multi-row INSERTs otherwise


@pytest.fixture
def table(mysql_url: str) -> Iterator[str]:
    name = f"t_{uuid.uuid4().hex[:10]}"
    yield name
    open_store(mysql_url).drop_table(name)


def made(store: MysqlStore, table: str, body: str) -> tuple[MysqlStore, list[Column]]:
    """``table`` made with ``body`` (its columns and keys), and its columns as the store reads them."""
    run(store, f'CREATE TABLE "{table}" ({body}) ENGINE=InnoDB')
    return store, store.columns(table)


def run(store: MysqlStore, *statements: str) -> None:
    with store.connect(autocommit=True) as conn:
        for statement in statements:
            conn.execute(statement)


def test_catalog_and_values_of_mysql_types(mysql_url: str, table: str) -> None:
    store = MysqlStore(mysql_url)
    run(store, f'CREATE TABLE "{table}" (id bigint unsigned PRIMARY KEY, flag tinyint(1) NOT NULL, small tinyint, '
               "price decimal(10,3), day date, at datetime(6), stamp timestamp(3) NULL, clock time(6), span time, "
               "born year, size enum('S','M','L'), tags set('a','b'), doc json, bits bit(10), code varchar(8), "
               "body mediumtext, data blob, ratio float)")
    run(store, f"INSERT INTO \"{table}\" VALUES (18446744073709551615, 1, -5, 1.250, '2024-02-29', "
               "'2024-02-29 23:59:58.123456', '2024-01-02 03:04:05.678', '07:08:09.5', '-26:00:00', 2024, 'M', 'a,b', "
               "'{\"k\": [1, 2]}', b'1000000001', 'abc', 'tab\there', x'00ff10', 0.5)")
    columns = {c.name: c for c in store.columns(table)}
    assert {n: c.kind for n, c in columns.items()} == {
        "id": "integer", "flag": "boolean", "small": "integer", "price": "numeric", "day": "date", "at": "timestamp",
        "stamp": "timestamp", "clock": "time", "span": "time", "born": "integer", "size": "text", "tags": "text",
        "doc": "text", "bits": "integer", "code": "text", "body": "text", "data": "text", "ratio": "float"}
    assert columns["id"].primary_key and not columns["flag"].nullable and columns["small"].nullable
    assert (columns["price"].precision, columns["price"].scale, columns["code"].length) == (10, 3, 8)
    [row] = list(store.read_rows(table, list(columns.values())))
    assert row == (18446744073709551615, True, -5, Decimal("1.250"), date(2024, 2, 29),
                   datetime(2024, 2, 29, 23, 59, 58, 123456), datetime(2024, 1, 2, 3, 4, 5, 678000),
                   time(7, 8, 9, 500000), "-26:00:00", 2024, "M", "a,b", '{"k": [1, 2]}', 513, "abc", "tab\there",
                   "0x00ff10", 0.5)
    assert type(row[1]) is bool


@pytest.mark.parametrize("load", LOADS)
def test_unsigned_bigint_takes_up_to_two_to_the_64_minus_one(mysql_url: str, table: str, load: str) -> None:
    store = MysqlStore(mysql_url, load=load)
    run(store, f'CREATE TABLE "{table}" (id bigint unsigned PRIMARY KEY, note text)')
    columns = store.columns(table)
    assert store.write_rows(table, columns, [(2**64 - 1, "top"), (0, "bottom")]) == 2
    assert list(store.read_rows(table, columns)) == [(0, "bottom"), (2**64 - 1, "top")]
    with pytest.raises(Invalid, match="Out of range"):
        store.write_rows(table, columns, [(5, "fine"), (2**64, "too big")])
    assert store.count(table) == 2


@pytest.mark.parametrize("load", LOADS)
def test_strict_mode_refuses_what_mysql_would_truncate_and_names_its_row(mysql_url: str, table: str,
                                                                         load: str) -> None:
    store = MysqlStore(mysql_url, load=load)
    run(store, f'CREATE TABLE "{table}" (id int PRIMARY KEY, code varchar(3), size enum(\'S\', \'M\'))')
    columns = store.columns(table)
    rows = [(2 + i, (i, "abc", "S")) for i in range(2_500)]  # sheet rows 2.., more than one batch and one chunk
    rows[2_100] = (2_102, (2_100, "abcd", "S"))  # would be "abc" in non-strict mode
    with pytest.raises(RowRefused) as refused, store.staging(table, columns) as staged:
        staged.load(iter(rows))
    assert (refused.value.detail["row"], refused.value.detail["column"]) == (2_102, "code")
    rows[2_100] = (2_102, (2_100, "abc", "XL"))  # would be "" in non-strict mode
    with pytest.raises(RowRefused) as refused, store.staging(table, columns) as staged:
        staged.load(iter(rows))
    assert (refused.value.detail["row"], refused.value.detail["column"]) == (2_102, "size")
    assert store.count(table) == 0


def test_a_value_outside_the_enum_is_a_problem_at_its_cell(mysql_url: str, table: str, tmp_path: Path) -> None:
    store = MysqlStore(mysql_url)
    run(store, f'CREATE TABLE "{table}" (id int PRIMARY KEY, size enum(\'S\', \'M\', \'L\') NOT NULL)')
    rows = [(i, "SML"[i % 3]) for i in range(1, 41)]
    rows[30] = (31, "XL")  # sheet row 32
    path = tmp_path / "sizes.xlsx"
    path.write_bytes(b"".join(write_xlsx(rows, ["id", "size"], sheet_name="sizes")))
    job = run_import_job(store, Job(table=table), path)
    assert job.state == "failed" and [(e["cell"], e["kind"]) for e in job.errors] == [("B32", "refused")], job.errors
    assert "size" in job.errors[0]["message"] and store.count(table) == 0


@pytest.mark.parametrize("engine", ["MyISAM", "MEMORY"])
def test_tables_that_cannot_roll_back_are_refused_for_imports(mysql_url: str, table: str, engine: str) -> None:
    store = MysqlStore(mysql_url)
    run(store, f'CREATE TABLE "{table}" (id int PRIMARY KEY, note varchar(20)) ENGINE={engine}')
    columns = store.columns(table)
    with pytest.raises(BadRequest, match=f"{engine} engine, which cannot roll back"):
        store.write_rows(table, columns, [(1, "a")])
    run(store, f"INSERT INTO \"{table}\" VALUES (1, 'exported')")
    assert list(store.read_rows(table, columns)) == [(1, "exported")]  # exports are fine


def test_binary_columns_are_exported_as_hex_and_never_imported_into(mysql_url: str, table: str) -> None:
    store = MysqlStore(mysql_url)
    run(store, f'CREATE TABLE "{table}" (id int PRIMARY KEY, data varbinary(10), flags bit(3))')
    run(store, f"INSERT INTO \"{table}\" VALUES (1, x'cafe', b'101')")
    columns = store.columns(table)
    assert list(store.read_rows(table, columns)) == [(1, "0xcafe", 5)]
    with pytest.raises(BadRequest, match="'data' \\(varbinary\\(10\\)\\), 'flags' \\(bit\\(3\\)\\)"):
        store.write_rows(table, columns, [(2, "0x00", 1)])
    store.write_rows(table, columns[:1], [(2,)])  # without them: fine
    assert store.count(table) == 2


def test_an_export_reads_a_snapshot_and_blocks_no_writer(mysql_url: str, table: str) -> None:
    store = MysqlStore(mysql_url, batch=100)
    seed(store, 5_000, table)
    rows = store.read_rows(table, ORDERS)
    first = next(rows)  # the export is under way: its transaction is open, its rows partly sent
    with store.connect(autocommit=True) as writer:
        writer.execute("SET SESSION innodb_lock_wait_timeout = 2")  # a blocked writer fails in 2 s, not 50
        writer.execute(f"UPDATE \"{table}\" SET customer = 'changed' WHERE id IN (1, 4000)")
        writer.execute(f'DELETE FROM "{table}" WHERE id = 4001')
        writer.execute(f"INSERT INTO \"{table}\" (id, customer, amount, ordered_on, created_at, quantity, paid) "
                       "VALUES (5001, 'new', 1, '2024-01-01', '2024-01-01', 1, 1)")
    assert [first, *rows] == [tuple(r) for r in demo_rows(5_000)]  # as it was when the export began
    assert store.count(table) == 5_000 and open_store(mysql_url).count(table) == 5_000


def test_a_text_key_gets_a_length_and_compares_exactly(mysql_url: str, table: str) -> None:
    store = MysqlStore(mysql_url)
    columns = [Column("code", "text", nullable=False, primary_key=True), Column("label", "text")]
    store.create_table(table, columns)
    store.write_rows(table, columns, [("a", "lower"), ("A", "upper"), ("a ", "trailing space")])
    assert sorted(store.read_rows(table, columns)) == [("A", "upper"), ("a", "lower"), ("a ", "trailing space")]


@pytest.mark.parametrize("load", LOADS)
def test_both_ways_in_write_the_same_rows(mysql_url: str, table: str, load: str) -> None:
    store = MysqlStore(mysql_url, load=load)
    seed(store, 2_500, table)
    assert list(store.read_rows(table, ORDERS)) == [tuple(r) for r in demo_rows(2_500)]


def test_invalid_json_is_refused_at_its_row(mysql_url: str, table: str) -> None:
    store = MysqlStore(mysql_url)
    run(store, f'CREATE TABLE "{table}" (id int PRIMARY KEY, doc json)')
    columns = store.columns(table)
    rows = [(2 + i, (i, '{"n": %d}' % i)) for i in range(50)]
    rows[40] = (42, (40, "{not json"))
    with pytest.raises(RowRefused) as refused, store.staging(table, columns) as staged:
        staged.load(iter(rows))
        staged.apply()
    assert refused.value.detail["row"] == 42 and store.count(table) == 0


def test_rows_stream_in_the_order_of_a_composite_primary_key(mysql_url: str, table: str) -> None:
    store = MysqlStore(mysql_url)
    run(store, f'CREATE TABLE "{table}" (a int, b int, PRIMARY KEY (b, a))')
    run(store, f'INSERT INTO "{table}" VALUES (1, 2), (2, 1), (3, 1)')
    assert list(store.read_rows(table, store.columns(table))) == [(2, 1), (3, 1), (1, 2)]


def test_named_queries_are_refused_at_start_with_a_reason(mysql_url: str) -> None:
    from sheetstream.config import NamedQuery
    from sheetstream.errors import ConfigError
    from sheetstream.pipeline.named import check_queries

    with pytest.raises(ConfigError, match="named query 'totals'.*served from SQLite and PostgreSQL"):
        check_queries(open_store(mysql_url), [NamedQuery("totals", "SELECT 1")])


def test_a_load_killed_mid_way_leaves_no_pipe_behind(mysql_url: str, table: str) -> None:
    """The folder of a named pipe whose process died (a worker's SIGKILL mid-load) goes at the next load."""
    import subprocess
    import tempfile

    from sheetstream.store.mysql import PIPES

    dead = subprocess.Popen(["true"])
    dead.wait()
    left = Path(tempfile.gettempdir()) / f"{PIPES}{dead.pid}-x"
    left.mkdir()
    (left / "rows").write_bytes(b"")
    store = MysqlStore(mysql_url)
    seed(store, 10, table)
    assert not left.exists()
    assert not list(Path(tempfile.gettempdir()).glob(f"{PIPES}{os.getpid()}-*"))  # and its own, once done


@pytest.mark.parametrize("load", LOADS)
def test_the_staging_table_indexes_the_key_so_repeats_are_found_in_its_order(mysql_url: str, table: str,
                                                                             load: str) -> None:
    store, columns = made(MysqlStore(mysql_url, load=load), table, "a int, b varchar(10), v int, PRIMARY KEY (b, a)")
    with store.staging(table, columns, "append") as staged:
        staged.load([(2, [1, "x", 5]), (3, [2, "x", 6]), (4, [1, "x", 7])])
        indexed = [row[4] for row in staged.conn.execute(f"SHOW INDEX FROM {staged.staging}").fetchall()]
        plan = staged.conn.execute(f'EXPLAIN SELECT 1 FROM {staged.staging} GROUP BY "b", "a" '
                                   "HAVING count(*) > 1 LIMIT 1").fetchone()
        assert indexed == ["b", "a"] and "temporary" not in (plan[-1] or "").lower(), (indexed, plan)
        assert staged.duplicates(10) == (1, [(4, (1, "x"), 2)])


def test_a_key_on_a_text_prefix_imports_without_an_index_on_its_staging_table(mysql_url: str, table: str) -> None:
    store, columns = made(MysqlStore(mysql_url), table, "name text, v int, PRIMARY KEY (name(20))")
    store.write_rows(table, columns, [("a", 1), ("b", 2)])
    with store.staging(table, columns, "append") as staged:
        staged.load([(2, ["b", 3]), (3, ["c", 4]), (4, ["c", 5])])
        assert staged.conn.execute(f"SHOW INDEX FROM {staged.staging}").fetchall() == []
        assert staged.duplicates(10) == (1, [(4, ("c",), 3)]) and staged.existing(10) == (1, [(2, ("b",))])
