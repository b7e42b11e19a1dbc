"""What the operational modules need of the SQLite store: retention, the report, ``/healthz``, ``/metrics``.

:mod:`watcher.retention`, :mod:`watcher.report`, :mod:`watcher.web.ops` and the
board call these named methods instead of writing SQL; the PostgreSQL store
(:mod:`watcher.store.postgres`) has the same methods with the same arguments and
return values, so those modules work on either backend.

- ``meta_*``: small settings and counters kept as text in ``meta``;
- :meth:`~MaintenanceTables.prune`, :meth:`~MaintenanceTables.compact`,
  :meth:`~MaintenanceTables.optimize`: retention, batch by batch, then giving
  the file's free pages back to the filesystem (SQLite only: on PostgreSQL
  autovacuum keeps freed space for reuse and these two do nothing);
- :meth:`~MaintenanceTables.health_write`: the real write of ``/healthz``;
- probe, outbox and size figures for the weekly report and ``/metrics``.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import sqlite_utils

from watcher.store.base import StoreError

log = logging.getLogger("watcher.retention")

VACUUM_STEP = 2000
"""Pages given back per ``incremental_vacuum`` statement."""
CONVERT_MIN_FREE_PAGES = 2560
"""A database without incremental auto-vacuum is rewritten once when at least this many pages are free..."""
CONVERT_MIN_FREE_SHARE = 0.2
"""... and they are at least this share of the file."""
PRUNED_PREFIX = "retention.pruned."
"""``meta`` keys of the outbox rows pruned so far: ``retention.pruned.<delivered|dead|failures>.<channel>``."""
PRUNABLE = ("observations", "probe_results", "notifications")
"""The tables :meth:`MaintenanceTables.prune` knows; the rest is never pruned."""
SIZE_TABLES = ("observations", "probe_results", "notifications", "incidents")
"""The tables whose rows ``/metrics`` counts."""


def _sec(dt: datetime) -> str:
    return dt.astimezone(UTC).isoformat(timespec="seconds")


def _micro(dt: datetime) -> str:
    return dt.astimezone(UTC).isoformat(timespec="microseconds")


def pruned_counters(rows: list[tuple[str, str, int, int]]) -> dict[str, int]:
    """``meta`` increments for pruned outbox rows, from (channel, state, rows, attempts) groups.

    Every claim is an attempt: all but the successful one of a delivered row
    failed, and every attempt of a dead row did.
    """
    out: dict[str, int] = {}

    def add(key: str, n: int) -> None:
        if n:
            out[key] = out.get(key, 0) + int(n)

    for channel, state, n, attempts in rows:
        if state == "delivered":
            add(f"{PRUNED_PREFIX}delivered.{channel}", n)
            add(f"{PRUNED_PREFIX}failures.{channel}", attempts - n)
        else:
            add(f"{PRUNED_PREFIX}dead.{channel}", n)
            add(f"{PRUNED_PREFIX}failures.{channel}", attempts)
    return out


# -- health ------------------------------------------------------------------------------------


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


class MaintenanceTables:
    """Mixed into :class:`~watcher.store.sqlite.SQLiteStore`."""

    db: sqlite_utils.Database
    path: Path

    # -- meta --------------------------------------------------------------------------------------

    def meta_get(self, key: str) -> str | None:
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", [key]).fetchone()
        return row[0] if row else None

    def meta_set(self, key: str, value: str) -> None:
        with self._wrap("save setting"):
            self.db.execute(
                "INSERT INTO meta(key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                [key, value],
            )

    def meta_items(self, prefix: str = "") -> dict[str, str]:
        """Every ``meta`` row whose key starts with ``prefix`` (case counts), by key."""
        rows = self.db.execute(
            "SELECT key, value FROM meta WHERE substr(key, 1, ?) = ? ORDER BY key", [len(prefix), prefix]
        )
        return {k: v for k, v in rows}

    def meta_add(self, key: str, n: int) -> int:
        """Add ``n`` to an integer kept as text (retention's pruned counters); the new value."""
        with self._wrap("save counter"), self._tx():
            self._meta_add(key, n)
            return int(self.db.execute("SELECT value FROM meta WHERE key = ?", [key]).fetchone()[0])

    def _meta_add(self, key: str, n: int) -> None:
        self.db.execute(
            "INSERT INTO meta(key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET "
            "value = CAST(CAST(COALESCE(NULLIF(value, ''), '0') AS INTEGER) + CAST(excluded.value AS INTEGER) AS TEXT)",
            [key, str(int(n))],
        )

    # -- retention --------------------------------------------------------------------------------

    def prune(self, table: str, before: datetime, batch: int = 2000) -> Iterator[int]:
        """Delete ``table``'s rows older than ``before``, oldest first, ``batch`` per transaction;
        yields each batch's count (nothing happens until iterated).

        - ``observations``: except the newest of each source;
        - ``probe_results``: all of them;
        - ``notifications``: ``delivered`` and ``dead`` rows (by ``created_at``) of
          incidents no longer open; their counts go to ``meta`` (:data:`PRUNED_PREFIX`)
          in the same transaction, so delivery counters survive them.
        """
        if table == "observations":
            keep = {r[0] for r in self.db.execute("SELECT MAX(id) FROM observations GROUP BY source") if r[0]}
            yield from self._delete_batches("observations", "at < ?", [_sec(before)], batch, keep)
        elif table == "probe_results":
            yield from self._delete_batches("probe_results", "at < ?", [_micro(before)], batch, set())
        elif table == "notifications":
            yield from self._notification_batches(_micro(before), batch)
        else:
            raise ValueError(f"cannot prune {table!r}: only {', '.join(PRUNABLE)}")

    def _delete_batches(
        self, table: str, where: str, args: list, batch: int, keep: set[int]
    ) -> Iterator[int]:
        # Rows are inserted in time order, so the oldest ids match first and each batch
        # reads little more than the rows it deletes.
        while True:
            ids = [
                r[0]
                for r in self.db.execute(
                    f"SELECT id FROM {table} WHERE {where} ORDER BY id LIMIT ?", [*args, batch + len(keep)]
                )
                if r[0] not in keep
            ][:batch]
            if not ids:
                return
            with self._wrap(f"prune {table}"), self._tx():
                marks = ",".join("?" * len(ids))
                self.db.execute(f"DELETE FROM {table} WHERE id IN ({marks})", ids)
            yield len(ids)
            if len(ids) < batch:
                return

    def _notification_batches(self, cutoff: str, batch: int) -> Iterator[int]:
        while True:
            ids = [
                r[0]
                for r in self.db.execute(
                    "SELECT id FROM notifications WHERE state IN ('delivered', 'dead') AND created_at < ? "
                    "AND incident_id NOT IN (SELECT id FROM incidents WHERE state = 'open') "
                    "ORDER BY id LIMIT ?",
                    [cutoff, batch],
                )
            ]
            if not ids:
                return
            marks = ",".join("?" * len(ids))
            with self._wrap("prune notifications"), self._tx():
                groups = self.db.execute(
                    f"SELECT channel, state, COUNT(*), COALESCE(SUM(attempts), 0) FROM notifications "
                    f"WHERE id IN ({marks}) GROUP BY channel, state",
                    ids,
                ).fetchall()
                for key, n in pruned_counters(groups).items():
                    self._meta_add(key, n)
                self.db.execute(f"DELETE FROM notifications WHERE id IN ({marks})", ids)
            yield len(ids)
            if len(ids) < batch:
                return

    def compact(self) -> Iterator[int]:
        """Give free pages back to the filesystem; yields the pages given back by each step.

        With ``auto_vacuum = INCREMENTAL``, :data:`VACUUM_STEP` pages per step. A file
        created before that is converted once by one ``VACUUM`` (which holds the lock
        for that one rewrite), the first time a sizeable share of it is free; until
        then SQLite reuses the free pages for new rows, so the file stops growing anyway.
        """
        if str(self.path) == ":memory:":
            return
        db = self.db
        mode = db.execute("PRAGMA auto_vacuum").fetchone()[0]
        free = db.execute("PRAGMA freelist_count").fetchone()[0]
        if not free:
            return
        if mode == 2:  # incremental
            while free:
                before = free
                db.execute(f"PRAGMA incremental_vacuum({VACUUM_STEP})").fetchall()
                free = db.execute("PRAGMA freelist_count").fetchone()[0]
                if free >= before:
                    return
                yield before - free
            return
        pages = db.execute("PRAGMA page_count").fetchone()[0]
        if free < CONVERT_MIN_FREE_PAGES or free < CONVERT_MIN_FREE_SHARE * pages:
            return
        page_size = db.execute("PRAGMA page_size").fetchone()[0]
        log.info(
            "retention: compacting the database once (%.1f MB of %.1f MB free); "
            "later runs give space back in small steps",
            free * page_size / 1e6,
            pages * page_size / 1e6,
        )
        try:
            db.execute("PRAGMA auto_vacuum = INCREMENTAL")
            db.execute("VACUUM")
        except sqlite3.Error as e:  # busy (a reader), or no room for the copy: try again next run
            log.warning("retention: could not compact the database now: %s", e)
            return
        yield free

    def optimize(self) -> None:
        """After a prune: checkpoint and truncate the WAL, refresh the planner's statistics (best effort)."""
        if str(self.path) == ":memory:":
            return
        for stmt in ("PRAGMA wal_checkpoint(TRUNCATE)", "PRAGMA optimize"):
            with contextlib.suppress(sqlite3.Error):  # readers in the way: the next run does it
                self.db.execute(stmt).fetchall()

    # -- health ------------------------------------------------------------------------------------

    def health_write(self, key: str, value: str, *, timeout: float = 2.0) -> None:
        """A real write of one ``meta`` row, waiting at most ``timeout`` s for a lock; :class:`StoreError`
        (with its ``problem``) when the database cannot take it.

        On a file: committed, on a connection of its own (the store's could wait 15 s).
        In memory (tests, the demo): on the store's connection, rolled back.
        """
        if str(self.path) != ":memory:":
            write_health_row(self.path, key, value, timeout)
            return
        conn = self.db.conn
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

    # -- figures -----------------------------------------------------------------------------------

    def first_ack(self, incident_id: int) -> tuple[datetime, str] | None:
        """When and by whom an incident was first acknowledged (cleared acknowledgements included)."""
        row = self.db.execute(
            "SELECT at, by FROM acks WHERE incident_id = ? ORDER BY at, id LIMIT 1", [incident_id]
        ).fetchone()
        return (datetime.fromisoformat(row[0]), row[1]) if row else None

    def probe_ttfts(self, vendor: str, since: datetime, until: datetime | None = None) -> list[float]:
        """First-token times of the vendor's successful probes in ``[since, until)``, smallest first."""
        q = "SELECT ttft_s FROM probe_results WHERE vendor = ? AND at >= ? AND ok = 1 AND ttft_s IS NOT NULL"
        args: list[Any] = [vendor, _micro(since)]
        if until is not None:
            q += " AND at < ?"
            args.append(_micro(until))
        return sorted(float(r[0]) for r in self.db.execute(q, args))

    def last_probe_ttft(self, vendor: str) -> float | None:
        """First-token time of the vendor's latest successful probe."""
        row = self.db.execute(
            "SELECT ttft_s FROM probe_results WHERE vendor = ? AND ok = 1 AND ttft_s IS NOT NULL "
            "ORDER BY at DESC, id DESC LIMIT 1",
            [vendor],
        ).fetchone()
        return float(row[0]) if row else None

    def probe_summary(self, vendor: str, since: datetime, until: datetime | None = None) -> dict[str, Any]:
        """Counts over the vendor's probes in ``[since, until)``: ``requests``, ``ok``, ``failed``,
        canary ``passed`` / ``wrong`` / ``answered``, ``tokens`` (in + out) and ``cost``."""
        q = (
            "SELECT COUNT(*), COALESCE(SUM(ok = 1), 0), COALESCE(SUM(ok = 0), 0), COALESCE(SUM(passed = 1), 0), "
            "COALESCE(SUM(passed = 0), 0), COALESCE(SUM(passed IS NOT NULL), 0), "
            "COALESCE(SUM(COALESCE(tokens_in, 0) + COALESCE(tokens_out, 0)), 0), COALESCE(SUM(cost), 0) "
            "FROM probe_results WHERE vendor = ? AND at >= ?"
        )
        args: list[Any] = [vendor, _micro(since)]
        if until is not None:
            q += " AND at < ?"
            args.append(_micro(until))
        n, ok, failed, passed, wrong, answered, tokens, cost = self.db.execute(q, args).fetchone()
        return {
            "requests": int(n),
            "ok": int(ok),
            "failed": int(failed),
            "passed": int(passed),
            "wrong": int(wrong),
            "answered": int(answered),
            "tokens": int(tokens),
            "cost": float(cost),
        }

    def probe_results_since(self, vendor: str, since: datetime) -> list[dict[str, Any]]:
        """The vendor's probe results after ``since``, oldest first (rows as :meth:`probe_results` gives them)."""
        return list(
            self.db.query(
                "SELECT * FROM probe_results WHERE vendor = ? AND at > ? ORDER BY at, id",
                [vendor, _micro(since)],
            )
        )

    def outbox_counts(self) -> dict[tuple[str, str], tuple[int, int]]:
        """(channel, state) → (rows, attempts summed) over the outbox as it is now."""
        return {
            (channel, state): (int(n), int(attempts))
            for channel, state, n, attempts in self.db.execute(
                "SELECT channel, state, COUNT(*), COALESCE(SUM(attempts), 0) FROM notifications "
                "GROUP BY channel, state"
            )
        }

    def oldest_unsent_due(self, now: datetime) -> datetime | None:
        """The earliest ``not_before`` of a pending or in-flight notification already due at ``now``."""
        row = self.db.execute(
            "SELECT MIN(not_before) FROM notifications WHERE state IN ('pending', 'sending') AND not_before <= ?",
            [_micro(now)],
        ).fetchone()
        return datetime.fromisoformat(row[0]) if row and row[0] else None

    def oldest_undelivered(self, now: datetime) -> dict[str, dict[str, Any]]:
        """Per channel, the undelivered row that has waited longest: ``id``, ``target``, ``since``, ``last_error``.

        A row waits from when it was queued, or for one held by quiet hours from the end
        of the hours; rows still held are not waiting yet.
        """
        out: dict[str, dict[str, Any]] = {}
        rows = self.db.execute(
            "SELECT channel, id, target, since, last_error FROM (SELECT channel, id, target, last_error, "
            "CASE WHEN held = 1 AND not_before > created_at THEN not_before ELSE created_at END AS since "
            "FROM notifications WHERE state IN ('pending', 'sending')) WHERE since <= ? ORDER BY since, id",
            [_micro(now)],
        )
        for channel, nid, target, since, error in rows:
            if channel not in out:
                out[channel] = {"id": nid, "target": target, "since": datetime.fromisoformat(since), "last_error": error}
        return out

    def size_stats(self) -> dict[str, Any]:
        """``size_bytes`` (the file: pages in use and free), ``free_bytes`` (free pages), and ``rows``
        per table of :data:`SIZE_TABLES`."""
        db = self.db
        page_size = db.execute("PRAGMA page_size").fetchone()[0]
        pages = db.execute("PRAGMA page_count").fetchone()[0]
        free = db.execute("PRAGMA freelist_count").fetchone()[0]
        names = set(db.table_names())
        rows = {
            t: int(db.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0]) for t in SIZE_TABLES if t in names
        }
        return {"size_bytes": page_size * pages, "free_bytes": page_size * free, "rows": rows}
