"""What only SQLite has: the file, its write lock, its text timestamps, its free pages.

The embedded default: nothing to set up. The file is created on first use in WAL mode
(readers such as ``watcher status`` never block the daemon's writes). Transactions are
``BEGIN IMMEDIATE``: the one write lock is taken at the start, so a transaction never
fails half-way for want of it, and the migration of a new file runs under it once however
many processes open the file together.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import sqlite3
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar, Literal
from urllib.parse import quote

from watcher.store.base import StoreError
from watcher.store.dialect import Dialect, Run, strip_null_order
from watcher.store.schema import TIMESTAMPS

log = logging.getLogger("watcher.retention")

BUSY_TIMEOUT = 15.0
"""Seconds a statement waits for another process's write lock before failing as ``locked``."""
VACUUM_STEP = 2000
"""Pages given back per ``incremental_vacuum`` statement."""
CONVERT_MIN_FREE_PAGES = 2560
"""A database without incremental auto-vacuum is rewritten once when at least this many pages are free..."""
CONVERT_MIN_FREE_SHARE = 0.2
"""... and they are at least this share of the file."""


def to_text(dt: datetime) -> str:
    """A time as SQLite keeps it: ISO 8601 in UTC, with microseconds only when it has some.

    Text compares in time order either way ("…:05+00:00" < "…:05.250000+00:00" < "…:06+00:00"),
    and a time cut to whole seconds reads exactly as files written before the one schema.
    """
    dt = dt.astimezone(UTC)
    return dt.isoformat(timespec="microseconds" if dt.microsecond else "seconds")


def _row(cursor: sqlite3.Cursor, row: tuple[Any, ...]) -> dict[str, Any]:
    out = {}
    for (name, *_), v in zip(cursor.description, row, strict=True):
        if v.__class__ is str and name in TIMESTAMPS:
            v = datetime.fromisoformat(v)
        out[name] = v
    return out


def sqlite_problem(err: BaseException) -> str:
    """The kind of a SQLite (or filesystem) failure, as ``/healthz`` names it."""
    name = getattr(err, "sqlite_errorname", "") or ""
    text = str(err).lower()
    if name.startswith("SQLITE_READONLY") or "readonly" in text or "read-only" in text:
        return "read_only"
    if name == "SQLITE_FULL" or "disk is full" in text or "no space" in text:
        return "disk_full"
    if name.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")) or "locked" in text or "busy" in text:
        return "locked"
    if name.startswith("SQLITE_CANTOPEN") or "unable to open" in text:
        return "cannot_open"
    if name.startswith("SQLITE_IOERR") or "i/o error" in text:
        return "io_error"
    if isinstance(err, OSError):
        if err.errno == errno.ENOSPC:
            return "disk_full"
        if err.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
            return "read_only"
        return "io_error"
    return "error"


def write_health_row(path: Path | str, key: str, value: str, timeout: float) -> None:
    """Upsert one ``meta`` row on a fresh connection to the file (never creates it), waiting at most
    ``timeout`` seconds for another process's lock; :class:`StoreError` with its ``problem`` when it fails.

    Blocking: call it in a worker thread.
    """
    conn = None
    try:
        # mode=rw: a database that vanished is an error, not a new empty file
        uri = "file:" + quote(str(Path(path).resolve()), safe="/") + "?mode=rw"
        conn = sqlite3.connect(uri, uri=True, timeout=timeout, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.execute(
                "INSERT INTO meta(key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                [key, value],
            )
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
    except (sqlite3.Error, OSError) as e:
        raise StoreError(str(e), problem=sqlite_problem(e)) from e
    finally:
        if conn is not None:
            with contextlib.suppress(sqlite3.Error):
                conn.close()


class Immediate:
    """BEGIN IMMEDIATE … COMMIT; on any error, ROLLBACK if SQLite has not already done it."""

    def __init__(self, conn: sqlite3.Connection):
        self.conn = conn

    def __enter__(self) -> sqlite3.Connection:
        self.conn.execute("BEGIN IMMEDIATE")
        return self.conn

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> Literal[False]:
        if exc_type is None:
            try:
                self.conn.execute("COMMIT")
                return False
            except sqlite3.Error:
                # A COMMIT refused (full disk, I/O error) can leave the transaction open; kept open,
                # every later write would join it, hold the write lock, and be lost with it.
                if self.conn.in_transaction:
                    with contextlib.suppress(sqlite3.Error):
                        self.conn.execute("ROLLBACK")
                raise
        # SQLite may have rolled back already (on SQLITE_FULL, SQLITE_IOERR…): a second ROLLBACK
        # would raise "no transaction is active" over the error that tells what went wrong.
        if self.conn.in_transaction:
            with contextlib.suppress(sqlite3.Error):
                self.conn.execute("ROLLBACK")
        return False


class SQLite(Dialect):
    """One SQLite file (or ``:memory:``, for tests and the demo)."""

    name: ClassVar[str] = "sqlite"
    types: ClassVar[dict[str, str]] = {
        "ts": "TEXT",
        "id": "INTEGER PRIMARY KEY",
        "bool": "INTEGER",
        "key": "TEXT",
        "float": "REAL",
        "bigint": "INTEGER",
    }
    errors: ClassVar[tuple[type[BaseException], ...]] = (sqlite3.Error,)

    def __init__(self, path: Path | str):
        self.path = Path(path)
        self.memory = str(path) == ":memory:"
        self.where = str(path)

    def sql(self, q: str) -> str:
        return strip_null_order(q)

    def param(self, v: Any) -> Any:
        return to_text(v) if isinstance(v, datetime) else v

    def connect(self) -> sqlite3.Connection:
        try:
            if not self.memory:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(
                self.where, timeout=BUSY_TIMEOUT, isolation_level=None, check_same_thread=False
            )
            if not self.memory:
                self._wal(conn)
            conn.execute("PRAGMA foreign_keys = ON")
            conn.execute("PRAGMA synchronous = NORMAL")
        except sqlite3.Error as e:
            raise StoreError(f"cannot open database {self.where}: {e}", problem=sqlite_problem(e)) from None
        except OSError as e:
            raise StoreError(
                f"cannot create database {self.where}: {e.strerror}", problem=sqlite_problem(e)
            ) from None
        conn.row_factory = _row
        return conn

    @staticmethod
    def _wal(conn: sqlite3.Connection) -> None:
        # Switching a new file to WAL needs a moment alone with it: processes that open it together
        # wait their turn (the busy handler does not cover this pragma), then find it done.
        deadline = time.monotonic() + BUSY_TIMEOUT
        while True:
            try:
                if conn.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
                    conn.execute("PRAGMA journal_mode = WAL")
                return
            except sqlite3.OperationalError as e:
                if sqlite_problem(e) != "locked" or time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def lost(self, conn: Any) -> bool:
        return False

    def transaction(self, conn: sqlite3.Connection) -> Immediate:
        return Immediate(conn)

    def error(self, what: str, e: BaseException, conn: Any) -> StoreError:
        return StoreError(f"cannot {what} in {self.where}: {e}", problem=sqlite_problem(e))

    def tables(self, conn: sqlite3.Connection) -> set[str]:
        return {r["name"] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}

    def migration_lock(self, conn: sqlite3.Connection) -> Immediate:
        return Immediate(conn)

    def legacy_version(self, conn: sqlite3.Connection) -> int | None:
        names = self.tables(conn)
        if "schema_version" in names or "meta" not in names:
            return None
        row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        return int(row["value"]) if row else 0

    def upgrade_legacy(self, conn: sqlite3.Connection, version: int) -> None:
        from watcher.store.legacy import upgrade_sqlite

        upgrade_sqlite(self, conn, version)

    def close(self, conn: sqlite3.Connection) -> None:
        if not self.memory:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        conn.close()

    def health_write(self, conn: sqlite3.Connection, key: str, value: str, timeout: float) -> None:
        """On a file: committed, on a connection of its own (the store's could wait 15 s).
        In memory (tests, the demo): on the store's connection, rolled back."""
        if not self.memory:
            write_health_row(self.path, key, value, timeout)
            return
        if conn.in_transaction:
            return  # the store is writing right now: it is writable
        try:
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)", [key, value])
            conn.execute("ROLLBACK")
        except sqlite3.Error as e:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise StoreError(str(e), problem=sqlite_problem(e)) from e

    def compact(self, run: Run) -> Iterator[int]:
        """With ``auto_vacuum = INCREMENTAL``, :data:`VACUUM_STEP` pages per step. A file created
        before that is converted once by one ``VACUUM`` (which holds the lock for that one rewrite),
        the first time a sizeable share of it is free; until then SQLite reuses the free pages for
        new rows, so the file stops growing anyway."""
        if self.memory:
            return

        def pragma(p: str) -> int:
            return int(run(lambda c: next(iter(c.execute(f"PRAGMA {p}").fetchone().values()))))

        free = pragma("freelist_count")
        if not free:
            return
        if pragma("auto_vacuum") == 2:  # incremental
            while free:
                before = free
                run(lambda c: c.execute(f"PRAGMA incremental_vacuum({VACUUM_STEP})").fetchall())
                free = pragma("freelist_count")
                if free >= before:
                    return
                yield before - free
            return
        pages = pragma("page_count")
        if free < CONVERT_MIN_FREE_PAGES or free < CONVERT_MIN_FREE_SHARE * pages:
            return
        page_size = pragma("page_size")
        log.info(
            "retention: compacting the database once (%.1f MB of %.1f MB free); "
            "later runs give space back in small steps",
            free * page_size / 1e6,
            pages * page_size / 1e6,
        )
        try:
            run(lambda c: (c.execute("PRAGMA auto_vacuum = INCREMENTAL"), c.execute("VACUUM")))
        except StoreError as e:  # busy (a reader), or no room for the copy: try again next run
            log.warning("retention: could not compact the database now: %s", e)
            return
        yield free

    def optimize(self, conn: sqlite3.Connection) -> None:
        """Checkpoint and truncate the WAL, refresh the planner's statistics."""
        if self.memory:
            return
        for stmt in ("PRAGMA wal_checkpoint(TRUNCATE)", "PRAGMA optimize"):
            with contextlib.suppress(sqlite3.Error):  # readers in the way: the next run does it
                conn.execute(stmt).fetchall()

    def size(self, conn: sqlite3.Connection) -> tuple[int, int | None]:
        def pragma(p: str) -> int:
            return int(next(iter(conn.execute(f"PRAGMA {p}").fetchone().values())))

        page_size = pragma("page_size")
        return page_size * pragma("page_count"), page_size * pragma("freelist_count")
