"""Database engines: SQLite (WAL, busy timeout) by default, PostgreSQL through psycopg 3."""

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.exc import InterfaceError, OperationalError

from calor.domain.errors import Unavailable

MIGRATIONS = Path(__file__).parent / "migrations"


def sqlite_url(data_dir: Path) -> str:
    return f"sqlite:///{data_dir / 'calor.db'}"


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    # pysqlite's own transaction handling is replaced by explicit BEGIN (see Database.write)
    dbapi_conn.isolation_level = None
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA busy_timeout=10000")
    cur.execute("PRAGMA foreign_keys=ON")
    # 2 MiB per connection: the OS page cache holds the rest; 64 MiB per pooled connection
    # made the server's RSS grow with the size of the store (bench/RESULTS.md, target 5)
    cur.execute("PRAGMA cache_size=-2048")
    cur.close()


@contextmanager
def in_index_order(conn: Connection) -> Iterator[None]:
    """Queries that read the first rows of an index range in its order (``ORDER BY id
    LIMIT n`` on (state, id)) must do so whatever the statistics say. PostgreSQL's, taken
    before a burst of submissions, see almost no queued instance and plan a bitmap scan of
    them all and a sort: every claim then read every queued instance (a task of 2,000 ran
    at 29 instances/s). Sorting is off for those queries; SQLite plans them by the index."""
    if conn.dialect.name != "postgresql":
        yield
        return
    conn.exec_driver_sql("SET LOCAL enable_sort = off")
    try:
        yield
    finally:
        conn.exec_driver_sql("SET LOCAL enable_sort TO DEFAULT")


def _sqlite_begin(conn: Connection) -> None:
    conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.info.get("write") else "BEGIN")


@contextmanager
def _unavailable_on_lost_connection() -> Iterator[None]:
    """Connection trouble is the database's state, not the request's fault: 503, and the
    engine keeps its events to apply them once the database is back."""
    try:
        yield
    except (OperationalError, InterfaceError) as exc:
        raise Unavailable(f"the database cannot be reached ({exc.orig}); try again") from exc


class Database:
    """An engine plus the one rule for writing: SQLite writers queue on an in-process lock.

    SQLite allows one writer; its busy handler sleeps in steps of up to 100 ms, which would
    wreck latency, so writers of this process wait on a lock instead and take the database
    with BEGIN IMMEDIATE (never upgrading a read lock, which is what deadlocks).
    """

    def __init__(self, url: str) -> None:
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        kwargs: dict[str, Any] = {}
        if self.is_sqlite:
            kwargs["connect_args"] = {"check_same_thread": False, "timeout": 10}
            kwargs["pool_size"] = 16
            kwargs["max_overflow"] = 48
        else:
            kwargs["pool_size"] = 10
            kwargs["max_overflow"] = 30
            kwargs["pool_pre_ping"] = True
        self.engine: Engine = create_engine(url, **kwargs)
        if self.is_sqlite:
            event.listen(self.engine, "connect", _sqlite_pragmas)
            event.listen(self.engine, "begin", _sqlite_begin)
        self._write_lock = threading.Lock() if self.is_sqlite else None

    @contextmanager
    def write(self) -> Iterator[Connection]:
        """A transaction that commits on success; the commit happens before we return."""
        with _unavailable_on_lost_connection():
            if self._write_lock is None:
                with self.engine.begin() as conn:
                    yield conn
                return
            with self._write_lock, self.engine.connect() as conn:
                conn.info["write"] = True
                try:
                    with conn.begin():
                        yield conn
                finally:
                    conn.info["write"] = False

    @contextmanager
    def read(self) -> Iterator[Connection]:
        with _unavailable_on_lost_connection(), self.engine.connect() as conn, conn.begin():
            yield conn

    def migrate(self) -> None:
        """Bring the schema to the newest Alembic revision (applied at every start)."""
        cfg = Config()
        cfg.set_main_option("script_location", str(MIGRATIONS))
        with self.engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")

    def dispose(self) -> None:
        self.engine.dispose()
