"""The connection every query of the store goes through, on either database.

A small pool of connections (:class:`Pool`: one for SQLite, a few for PostgreSQL) shared
by the event loop and the worker threads, with nestable transactions: a transaction keeps
its connection for its thread, and an inner :meth:`Database.transaction` joins the outer one, so an incident and the alerts it
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

import logging
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
log = logging.getLogger("watcher.store")
Row = dict[str, Any]


class Pool:
    """At most ``size`` connections of one dialect, reused last in, first out.

    SQLite gets one (one file, one writer; the pool is then just its lock); PostgreSQL a few,
    so a slow query of the board does not hold up the daemon's writes. Connections are opened
    with the dialect's own ``connect``, so a server that cannot be reached is named in plain words
    at the call that needed it, and one found lost is closed and replaced. Waiting for a free
    connection is bounded: a store used by more threads than it has connections says so.
    """

    def __init__(self, dialect: Dialect, size: int, *, wait: float = 60.0):
        self.dialect = dialect
        self.size = size
        self.wait = wait
        self.idle: list[Any] = []
        self.opened = 0
        self.closed = False
        self._cond = threading.Condition()

    def acquire(self) -> Any:
        with self._cond:
            while True:
                if self.closed:
                    raise StoreError(f"the store for {self.dialect.where} is closed")
                while self.idle:
                    conn = self.idle.pop()
                    if not self.dialect.lost(conn):
                        return conn
                    self._forget(conn)
                if self.opened < self.size:
                    self.opened += 1
                    break
                if not self._cond.wait(self.wait):
                    raise StoreError(
                        f"no free connection to {self.dialect.where} within {self.wait:g}s: all {self.size} are in "
                        "use (a query that does not end?)"
                    )
        try:  # outside the condition: connecting may take seconds
            return self.dialect.connect()
        except BaseException:
            with self._cond:
                self.opened -= 1
                self._cond.notify()
            raise

    def release(self, conn: Any) -> None:
        with self._cond:
            if self.closed or self.dialect.lost(conn):
                self._forget(conn)
            else:
                self.idle.append(conn)
            self._cond.notify()

    def discard(self, conn: Any, *, idle_too: bool = False) -> None:
        """Close a connection found lost; with ``idle_too`` the idle ones as well (a server restart
        has ended them all, and each would fail once before being noticed)."""
        with self._cond:
            self._forget(conn)
            if idle_too:
                while self.idle:
                    self._forget(self.idle.pop())
            self._cond.notify_all()

    def close(self) -> None:
        with self._cond:
            self.closed = True
            while self.idle:
                self._forget(self.idle.pop())
            self._cond.notify_all()

    def _forget(self, conn: Any) -> None:
        self.dialect.close(conn)
        self.opened -= 1


class Database:
    """A dialect's connections with the store's transactions, retries and fencing."""

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
        self._pool = Pool(dialect, dialect.connections)
        self._local = threading.local()
        """This thread's connection while it is in a transaction, and how deep."""
        conn = self._pool.acquire()
        try:
            migrate(dialect, conn)
        except dialect.errors as e:
            self._pool.discard(conn)
            self._pool.close()
            raise StoreError(f"cannot migrate the database at {self.where}: {e}") from None
        except BaseException:
            self._pool.discard(conn)
            self._pool.close()
            raise
        self._pool.release(conn)

    @property
    def path(self) -> Path | None:
        """The SQLite file (None on PostgreSQL): what file-level health checks and retention look at."""
        return getattr(self.dialect, "path", None)

    @property
    def clustered(self) -> bool:
        """Several instances may share this database: leadership, fencing and per-location state apply."""
        return self.backend == "postgresql"

    @property
    def _conn(self) -> Any:
        """The connection this thread's transaction holds, else the one used last (tests reach for its
        server process); None before the first."""
        tx = getattr(self._local, "conn", None)
        if tx is not None:
            return tx
        return self._pool.idle[-1] if self._pool.idle else None

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.where!r})"

    # -- connection --------------------------------------------------------------------------------

    def _run(self, what: str, fn: Callable[[Any], T], *, retry: bool = False) -> T:
        """``fn(conn)`` on this thread's transaction, or on a connection of the pool for this call;
        ``retry``: once more on a new connection if this one dropped."""
        tx = getattr(self._local, "conn", None)
        if tx is not None:
            try:
                return fn(tx)
            except self.dialect.errors as e:
                raise self.dialect.error(what, e, tx) from None
        for attempt in (0, 1):
            conn = self._pool.acquire()
            try:
                result = fn(conn)
            except self.dialect.errors as e:
                if self.dialect.lost(conn):
                    self._pool.discard(conn, idle_too=True)
                    log.warning("connection to %s lost; reconnecting", self.where)
                    if retry and attempt == 0:
                        continue
                else:
                    self._pool.release(conn)
                raise self.dialect.error(what, e, conn) from None
            except BaseException:
                self._pool.release(conn)
                raise
            self._pool.release(conn)
            return result
        raise AssertionError("unreachable")

    def run(self, what: str, fn: Callable[[Any], T]) -> T:
        """``fn`` with a raw connection (for what only one database has)."""
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
        local = self._local
        if getattr(local, "conn", None) is not None:
            local.depth += 1
            try:
                yield local.conn
            finally:
                local.depth -= 1
            return
        conn = self._pool.acquire()
        local.conn, local.depth = conn, 1
        try:
            with self.dialect.transaction(conn):
                if self.fence_epoch is not None:
                    self._check_fence(conn, what)
                yield conn
        except self.dialect.errors as e:
            raise self.dialect.error(what, e, conn) from None
        finally:
            local.conn, local.depth = None, 0
            if self.dialect.lost(conn):
                self._pool.discard(conn, idle_too=True)
            else:
                self._pool.release(conn)

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
        self._pool.close()


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
