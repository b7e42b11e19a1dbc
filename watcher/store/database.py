"""The connection every query of the store goes through, on either database.

One connection per store, used under one re-entrant lock (the event loop and a few
worker threads share the store), with nestable transactions: an inner
:meth:`Database.transaction` joins the outer one, so an incident and the alerts it
calls for stand or fall together. A database error becomes a
:class:`~watcher.store.base.StoreError` that names what was being done.

A lost connection (PostgreSQL restarted) is reopened on the next call; a read, or a
write that is safe to repeat, that fails because the connection dropped is tried once
more on a new one. A write that is not safe to repeat (an insert) raises: it may or may
not have been committed.

With :attr:`Database.fence_epoch` set (the cluster's leader), every transaction first
checks that this instance still holds the lease: a deposed leader that has not noticed
yet writes nothing.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from watcher.store.base import StoreError
from watcher.store.dialect import Dialect, marks
from watcher.store.schema import migrate

T = TypeVar("T")
Row = dict[str, Any]


class Database:
    """A dialect's connection with the store's lock, transactions, retries and fencing."""

    def __init__(self, dialect: Dialect, *, location: str | None = None):
        self.dialect = dialect
        self.backend = dialect.name
        """``sqlite`` or ``postgresql``."""
        self.where = dialect.where
        """The database in messages: a file, or ``host:port``."""
        self.location = location
        """Where this instance polls from: keys its own fetch state of each source, and is written
        with its observations and probe results (several instances share one PostgreSQL database)."""
        self.fence_epoch: int | None = None
        """The leader's epoch while this instance leads a cluster (see the module doc)."""
        self._lock = threading.RLock()
        self._conn: Any = None
        self._depth = 0
        self._closed = False
        with self._lock:
            conn = self._connection()
            try:
                migrate(dialect, conn)
            except dialect.errors as e:
                dialect.close(conn)
                self._conn = None
                raise StoreError(f"cannot migrate the database at {self.where}: {e}") from None
            except StoreError:
                dialect.close(conn)
                self._conn = None
                raise

    @property
    def path(self) -> Path | None:
        """The SQLite file (None on PostgreSQL): what file-level health checks and retention look at."""
        return getattr(self.dialect, "path", None)

    @property
    def clustered(self) -> bool:
        """Several instances may share this database: leadership, fencing and per-location state apply."""
        return self.backend == "postgresql"

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.where!r})"

    # -- connection --------------------------------------------------------------------------------

    def _connection(self) -> Any:
        conn = self._conn
        if conn is not None and not self.dialect.lost(conn):
            return conn
        if self._closed:
            raise StoreError(f"the store for {self.where} is closed")
        if self._depth:
            raise StoreError(f"lost the connection to {self.where} during a transaction")
        if conn is not None:
            self.dialect.close(conn)
            self._conn = None
            import logging

            logging.getLogger("watcher.store").warning("connection to %s lost; reconnecting", self.where)
        self._conn = self.dialect.connect()
        return self._conn

    def _run(self, what: str, fn: Callable[[Any], T], *, retry: bool = False) -> T:
        """``fn(conn)`` under the lock; ``retry``: once more on a new connection if this one dropped."""
        with self._lock:
            for attempt in (0, 1):
                conn = self._connection()
                try:
                    return fn(conn)
                except self.dialect.errors as e:
                    if retry and attempt == 0 and not self._depth and self.dialect.lost(conn):
                        continue
                    raise self.dialect.error(what, e, conn) from None
            raise AssertionError("unreachable")

    def run(self, what: str, fn: Callable[[Any], T]) -> T:
        """``fn`` with the raw connection, under the lock (for what only one database has)."""
        return self._run(what, fn)

    # -- statements ----------------------------------------------------------------------------------

    def _execute(self, conn: Any, q: str, args: Iterable[Any]) -> Any:
        return conn.execute(self.dialect.sql(q), self.dialect.params(args))

    def _rows(self, q: str, args: Iterable[Any] = (), what: str = "read") -> list[Row]:
        return self._run(what, lambda c: self._execute(c, q, args).fetchall(), retry=True)

    def _one(self, q: str, args: Iterable[Any] = (), what: str = "read") -> Row | None:
        return self._run(what, lambda c: self._execute(c, q, args).fetchone(), retry=True)

    def _exec(self, q: str, args: Iterable[Any] = (), what: str = "write", *, retry: bool = False) -> int:
        return self._run(what, lambda c: self._execute(c, q, args).rowcount, retry=retry)

    def _many(self, q: str, rows: list[tuple[Any, ...]], what: str) -> None:
        if not rows:
            return
        sql, params = self.dialect.sql(q), self.dialect.params

        def run(c: Any) -> None:
            c.cursor().executemany(sql, [params(r) for r in rows])

        self._run(what, run)

    def _insert(self, table: str, row: Row, what: str) -> int:
        q = f"INSERT INTO {table} ({', '.join(row)}) VALUES ({marks(len(row))}) RETURNING id"
        return int(self._run(what, lambda c: self._execute(c, q, row.values()).fetchone()["id"]))

    def _upsert(self, table: str, row: Row, pk: tuple[str, ...], what: str) -> None:
        """Insert, or update the given columns only; safe to repeat."""
        rest = [k for k in row if k not in pk]
        action = "DO UPDATE SET " + ", ".join(f"{k} = EXCLUDED.{k}" for k in rest) if rest else "DO NOTHING"
        q = f"INSERT INTO {table} ({', '.join(row)}) VALUES ({marks(len(row))}) ON CONFLICT ({', '.join(pk)}) {action}"
        self._exec(q, row.values(), what, retry=True)

    # -- transactions ----------------------------------------------------------------------------------

    def transaction(self, what: str) -> Any:
        """Several writes that stand or fall together (``what`` names them in a StoreError);
        nested transactions join the outer one."""
        return self._tx(what)

    @contextmanager
    def _tx(self, what: str = "write") -> Iterator[Any]:
        with self._lock:
            if self._depth:
                self._depth += 1
                try:
                    yield self._conn
                finally:
                    self._depth -= 1
                return
            try:
                conn = self._connection()
            except self.dialect.errors as e:
                raise self.dialect.error(what, e, None) from None
            self._depth = 1
            try:
                with self.dialect.transaction(conn):
                    if self.fence_epoch is not None:
                        self._check_fence(conn, what)
                    yield conn
            except self.dialect.errors as e:
                raise self.dialect.error(what, e, conn) from None
            finally:
                self._depth = 0

    def _check_fence(self, conn: Any, what: str) -> None:
        # a leader that lost the lease without noticing (frozen, cut off) writes nothing
        row = conn.execute("SELECT epoch FROM leader").fetchone()
        if row is None or row["epoch"] != self.fence_epoch:
            raise StoreError(
                f"cannot {what}: this instance no longer leads the cluster (epoch "
                f"{self.fence_epoch}, now {row['epoch'] if row else '?'})",
                problem="deposed",
            )

    @property
    def schema_version(self) -> int:
        row = self._one("SELECT version FROM schema_version")
        return int(row["version"]) if row else 0

    def close(self) -> None:
        with self._lock:
            self._closed = True
            if self._conn is not None:
                self.dialect.close(self._conn)
                self._conn = None


def whole_seconds(dt: datetime | None) -> datetime | None:
    """UTC, cut to whole seconds: the precision of sources, observations, incidents and their events,
    whose times come from status pages that give no more."""
    return dt.astimezone(UTC).replace(microsecond=0) if dt else None


def exact(dt: datetime | None) -> datetime | None:
    """UTC, to the microsecond: the outbox, acknowledgements, mutes, probes."""
    return dt.astimezone(UTC) if dt else None


def iso(dt: datetime | None) -> str | None:
    """The text of a time in rows returned as dicts (probe results, the audit log)."""
    return dt.astimezone(UTC).isoformat(timespec="microseconds") if dt else None
