"""Time 200,000 demo rows written and read through each MySQL/MariaDB driver (same table, same server), as
docs/mysql.md reports. Needs the three drivers (pip install mysqlclient pymysql mariadb; Debian: libmariadb-dev
and pkg-config to build two of them) and a database ``drivers``.

Usage: python docs/bench/mysql-drivers.py [rows] [mysqlclient] [pymysql] [mariadb]
"""

import os
import sys
import tempfile
import threading
import time

from sheetstream.store.demo import demo_rows

N = int(sys.argv[1]) if len(sys.argv) > 1 else 200_000
ROWS = [tuple(r) for r in demo_rows(N)]
DDL = """CREATE TABLE orders (id bigint PRIMARY KEY, customer text NOT NULL, email text, amount decimal(12,2) NOT NULL,
 ordered_on date NOT NULL, created_at datetime(6) NOT NULL, quantity bigint NOT NULL, paid tinyint(1) NOT NULL,
 category text, weight double, note text) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4"""
SERVER = {"host": "127.0.0.1", "user": "root", "password": "", "database": "drivers"}


def reset(conn) -> None:
    cursor = conn.cursor()
    cursor.execute("DROP TABLE IF EXISTS orders")
    cursor.execute(DDL)
    conn.commit()


def insert_many(conn, mark: str = "%s", batch: int = 1000) -> None:
    """executemany in batches of 1,000 rows (mysqlclient and PyMySQL make multi-row INSERTs of them, the MariaDB
    connector its bulk protocol)."""
    cursor = conn.cursor()
    statement = f"INSERT INTO orders VALUES ({', '.join([mark] * 11)})"
    for i in range(0, N, batch):
        cursor.executemany(statement, ROWS[i:i + batch])
    conn.commit()


def text(v) -> str:
    if v is None:
        return "\\N"
    if isinstance(v, bool):
        return "1" if v else "0"
    return str(v).replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")


def load_data(conn) -> None:
    """LOAD DATA LOCAL INFILE from a named pipe that a thread writes the rows into (as the store does)."""
    pipe = os.path.join(tempfile.mkdtemp(), "rows")
    os.mkfifo(pipe)

    def write() -> None:
        with open(pipe, "wb") as out:
            for i in range(0, N, 2000):
                out.write("".join("\t".join(map(text, r)) + "\n" for r in ROWS[i:i + 2000]).encode())

    writer = threading.Thread(target=write)
    writer.start()
    cursor = conn.cursor()
    cursor.execute(f"LOAD DATA LOCAL INFILE '{pipe}' INTO TABLE orders CHARACTER SET utf8mb4")
    writer.join()
    conn.commit()
    cursor.execute("SHOW WARNINGS")
    assert not cursor.fetchall()


def read(cursor) -> None:
    """SELECT * ORDER BY id on an unbuffered cursor, fetched 2,000 rows at a time."""
    cursor.execute("SELECT * FROM orders ORDER BY id")
    count = 0
    while batch := cursor.fetchmany(2000):
        count += len(batch)
    assert count == N
    cursor.close()


def timed(label: str, run, *args) -> None:
    start = time.perf_counter()
    run(*args)
    print(f"{label:45s} {time.perf_counter() - start:6.2f} s", flush=True)


for name in sys.argv[2:] or ["mysqlclient", "pymysql", "mariadb"]:
    if name == "mysqlclient":
        import MySQLdb
        import MySQLdb.cursors

        conn = MySQLdb.connect(**SERVER, charset="utf8mb4", local_infile=True)
        reset(conn)
        timed("mysqlclient executemany (1000-row INSERTs)", insert_many, conn)
        reset(conn)
        timed("mysqlclient LOAD DATA LOCAL (fifo)", load_data, conn)
        timed("mysqlclient read SSCursor", read, conn.cursor(MySQLdb.cursors.SSCursor))
    elif name == "pymysql":
        import pymysql
        import pymysql.cursors

        conn = pymysql.connect(**SERVER, charset="utf8mb4", local_infile=True)
        reset(conn)
        timed("PyMySQL executemany (1000-row INSERTs)", insert_many, conn)
        reset(conn)
        timed("PyMySQL LOAD DATA LOCAL (fifo)", load_data, conn)
        timed("PyMySQL read SSCursor", read, conn.cursor(pymysql.cursors.SSCursor))
    else:
        import mariadb

        conn = mariadb.connect(**SERVER, local_infile=True)
        reset(conn)
        timed("mariadb executemany (bulk, 1000 rows)", insert_many, conn, "?")
        reset(conn)
        timed("mariadb LOAD DATA LOCAL (fifo)", load_data, conn)
        timed("mariadb read unbuffered cursor", read, conn.cursor(buffered=False))
