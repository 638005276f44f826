"""Named queries from configuration (SHEETSTREAM_QUERIES_FILE), on SQLite and PostgreSQL: typed parameters bound,
granted like tables, checked at start (a broken one stops the server from starting)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import httpx
import pytest

from sheetstream.config import from_env
from sheetstream.errors import ConfigError
from sheetstream.pipeline.named import check_queries
from sheetstream.server import create_app
from sheetstream.store import open_store
from sheetstream.store.demo import demo_rows, seed

from ..helpers import add_token, bearer, make_settings, read_workbook

ROWS = 300


def queries_toml(table: str, extra: str = "") -> str:
    return f'''
[paid_by_customer]
sql = """SELECT customer, count(*) AS orders, sum(quantity) AS items FROM "{table}"
         WHERE ordered_on >= :since AND paid = :paid AND customer NOT LIKE '%&%' AND quantity < :most
         GROUP BY customer ORDER BY customer"""
params = {{ since = "date", paid = "boolean", most = "integer" }}
{extra}'''


@pytest.fixture
def served_queries(store_url: str, request: pytest.FixtureRequest, tmp_path: Path):
    if store_url.startswith("mysql"):
        pytest.skip("named queries are served from SQLite and PostgreSQL; MySQL/MariaDB refuses them at start "
                    "(tests/store/test_mysql.py)")
    store = open_store(store_url)
    table = "orders" if store_url.startswith("sqlite") else request.getfixturevalue("pg_table")
    seed(store, ROWS, table)
    path = tmp_path / "queries.toml"
    path.write_text(queries_toml(table))
    queries = from_env({"SHEETSTREAM_QUERIES_FILE": str(path)}).queries
    return store, table, queries


def expected(since: str, paid: bool, most: int) -> list[tuple]:
    rows = [r for r in demo_rows(ROWS) if r[4].isoformat() >= since and r[7] == paid and "&" not in r[1] and r[6] < most]
    counts, items = Counter(r[1] for r in rows), Counter()
    for r in rows:
        items[r[1]] += r[6]
    return sorted((c, counts[c], items[c]) for c in counts)


def test_a_named_query_exports_with_its_parameters_bound(served_queries, live_server) -> None:
    store, table, queries = served_queries
    with live_server(create_app(make_settings(tables=(table,), queries=queries), store)) as server:
        response = httpx.get(f"{server.url}/exports/q/paid_by_customer.xlsx",
                             params={"since": "2022-01-01", "paid": "true", "most": "300"})
        injected = httpx.get(f"{server.url}/exports/q/paid_by_customer.xlsx",
                             params={"since": "2022-01-01", "paid": "true", "most": "300 OR 1=1"})
    assert response.status_code == 200, response.text
    assert response.headers["content-disposition"].startswith('attachment; filename="paid_by_customer.xlsx"')
    sheet = read_workbook(response.content)["paid_by_customer"]
    assert sheet[0] == ("customer", "orders", "items")
    want = expected("2022-01-01", True, 300)
    assert len(want) > 5 and [tuple(r) for r in sheet[1:]] == want
    assert injected.status_code == 400 and "'300 OR 1=1' is not a whole number" in injected.json()["message"]
    assert store.count(table) == ROWS


@pytest.mark.parametrize(("params", "status", "message"), [
    ({"since": "2022-01-01", "paid": "true"}, 400, "needs most (integer)"),
    ({"since": "someday", "paid": "true", "most": "3"}, 400, "'someday' is not a date"),
    ({"since": "2022-01-01", "paid": "true", "most": "3", "extra": "1"}, 400, "has no parameter 'extra'"),
])
def test_parameters_are_required_typed_and_known(served_queries, live_server, params, status, message) -> None:
    store, table, queries = served_queries
    with live_server(create_app(make_settings(tables=(table,), queries=queries), store)) as server:
        response = httpx.get(f"{server.url}/exports/q/paid_by_customer.xlsx", params=params)
        missing = httpx.get(f"{server.url}/exports/q/nope.xlsx")
    assert response.status_code == status and message in response.json()["message"], response.text
    assert missing.status_code == 404 and "named queries: paid_by_customer" in missing.json()["message"]


def test_a_named_query_is_granted_like_a_table(tmp_path: Path, live_server) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'db.sqlite'}")
    seed(store, ROWS)
    path = tmp_path / "queries.toml"
    path.write_text(queries_toml("orders"))
    queries = from_env({"SHEETSTREAM_QUERIES_FILE": str(path)}).queries
    table_only, granted = add_token(store, "t", "orders:read"), add_token(store, "q", "paid_by_customer:read")
    settings = make_settings(auth=True, queries=queries, data_dir=tmp_path / "data")
    params = {"since": "2020-01-01", "paid": "false", "most": "500"}
    with live_server(create_app(settings, store)) as server:
        denied = httpx.get(f"{server.url}/exports/q/paid_by_customer.xlsx", params=params, headers=bearer(table_only))
        allowed = httpx.get(f"{server.url}/exports/q/paid_by_customer.xlsx", params=params, headers=bearer(granted))
    assert denied.status_code == 403 and allowed.status_code == 200


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")  # uvicorn's thread exits
def test_a_broken_query_stops_the_server_from_starting(served_queries, live_server, tmp_path: Path) -> None:
    store, table, _ = served_queries
    path = tmp_path / "broken.toml"
    path.write_text(queries_toml(table, '[broken]\nsql = "SELECT missing_column FROM no_such_table WHERE x = :x"\n'
                                        'params = { x = "integer" }\n'))
    queries = from_env({"SHEETSTREAM_QUERIES_FILE": str(path)}).queries
    with pytest.raises(ConfigError, match="named query 'broken'.*no_such_table"):
        check_queries(store, queries)
    with pytest.raises(RuntimeError, match="did not start"):
        with live_server(create_app(make_settings(tables=(table,), queries=queries), store)):
            pass


def test_the_columns_of_a_named_query_come_from_the_database(served_queries) -> None:
    store, _, queries = served_queries
    columns = check_queries(store, queries)["paid_by_customer"]
    assert [c.name for c in columns] == ["customer", "orders", "items"]
    assert columns[0].kind == "text" and columns[1].kind == "integer" or store.url.startswith("sqlite")


@pytest.mark.parametrize(("text", "message"), [
    ('[q]\nsql = "SELECT 1 WHERE 1 = :a"\n', "whose sql uses a but whose params name none"),
    ('[q]\nsql = "SELECT 1"\nparams = { a = "integer" }\n', "uses no parameter but whose params name a"),
    ('[q]\nsql = "SELECT :a"\nparams = { a = "money" }\n', "kinds from integer"),
    ('[q]\nnot_sql = 1\n', "without its sql"),
    ('[q\n', "is not TOML"),
])
def test_a_queries_file_that_does_not_fit_is_refused(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "q.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match="SHEETSTREAM_QUERIES_FILE") as caught:
        from_env({"SHEETSTREAM_QUERIES_FILE": str(path)})
    assert message in caught.value.message
