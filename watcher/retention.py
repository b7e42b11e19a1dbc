"""Retention: old raw data goes, so the database stays small after a year of watching.

What is pruned, each after its ``retention.*_days``:

- ``observations`` (one row per changed snapshot or new poll error), except the
  newest of each source;
- ``probe_results`` (every probe and canary answer);
- outbox rows that are ``delivered`` or ``dead``, except those of incidents still
  open (their targets must get the update and the resolve).

What is never pruned: incidents, their events and keys, acknowledgements, mutes,
Slack/email thread references, alert state, the audit log, detector and budget
state, pending or in-flight notifications. Those are small and they are the
history the weekly report and the board are made of.

Rows go in batches of :data:`BATCH`, each its own short transaction, so the
write lock is never held for long and polls interleave; :func:`prune_async`
yields to the event loop between batches. When outbox rows go, their counts
(delivered, dead, failed attempts per channel) are added to ``meta`` in the
same transaction, so the ``/metrics`` counters never go backwards.

Then the file is made to shrink: with ``auto_vacuum = INCREMENTAL`` the free
pages are returned to the filesystem in small steps (``PRAGMA
incremental_vacuum``); a database created before that (SQLite's default is no
auto-vacuum) is converted once, by one ``VACUUM``, the first time pruning frees
a sizeable share of it, which holds the lock for the duration of that one
rewrite (seconds for a database of some hundred megabytes). The WAL is
checkpointed and truncated, and ``PRAGMA optimize`` refreshes the planner's
statistics.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

log = logging.getLogger("watcher.retention")

BATCH = 2000
"""Rows deleted per transaction."""
VACUUM_STEP = 2000
"""Pages given back per ``incremental_vacuum`` statement."""
CONVERT_MIN_FREE_PAGES = 2560
"""A database without incremental auto-vacuum is rewritten once when at least this many pages are free..."""
CONVERT_MIN_FREE_SHARE = 0.2
"""... and they are at least this share of the file."""
PRUNED_PREFIX = "retention.pruned."


def _ts_seconds(dt: datetime) -> str:
    return dt.astimezone(UTC).isoformat(timespec="seconds")


def _ts_micro(dt: datetime) -> str:
    return dt.astimezone(UTC).isoformat(timespec="microseconds")


def pruned_counts(store) -> dict[tuple[str, str], int]:
    """(what, channel) → rows pruned so far: ``delivered``, ``dead`` and ``failures`` (attempts that failed)."""
    out: dict[tuple[str, str], int] = {}
    rows = store.db.execute("SELECT key, value FROM meta WHERE key LIKE ?", [PRUNED_PREFIX + "%"])
    for key, value in rows:
        what, _, channel = key[len(PRUNED_PREFIX) :].partition(".")
        try:
            out[(what, channel)] = int(value)
        except (TypeError, ValueError):
            continue
    return out


def _add_counter(db, key: str, n: int) -> None:
    if not n:
        return
    db.execute(
        "INSERT INTO meta(key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET "
        "value = CAST(CAST(value AS INTEGER) + CAST(excluded.value AS INTEGER) AS TEXT)",
        [key, str(int(n))],
    )


class _Tx:
    def __init__(self, conn: sqlite3.Connection):
        self.conn = conn

    def __enter__(self):
        self.conn.execute("BEGIN IMMEDIATE")
        return self

    def __exit__(self, exc_type, exc, tb):
        self.conn.execute("COMMIT" if exc_type is None else "ROLLBACK")
        return False


def _delete_batches(db, table: str, where: str, args: list, batch: int, keep: set[int]) -> Iterator[int]:
    """Delete matching rows, oldest id first, ``batch`` at a time; yields the count of each batch."""
    # Rows are inserted in time order, so the oldest ids match first and each batch
    # reads little more than the rows it deletes.
    while True:
        ids = [
            r[0]
            for r in db.execute(
                f"SELECT id FROM {table} WHERE {where} ORDER BY id LIMIT ?", [*args, batch + len(keep)]
            )
            if r[0] not in keep
        ][:batch]
        if not ids:
            return
        with _Tx(db.conn):
            marks = ",".join("?" * len(ids))
            db.execute(f"DELETE FROM {table} WHERE id IN ({marks})", ids)
        yield len(ids)
        if len(ids) < batch:
            return


def _notification_batches(db, cutoff: str, batch: int) -> Iterator[int]:
    while True:
        ids = [
            r[0]
            for r in db.execute(
                "SELECT id FROM notifications WHERE state IN ('delivered', 'dead') AND created_at < ? "
                "AND incident_id NOT IN (SELECT id FROM incidents WHERE state = 'open') "
                "ORDER BY id LIMIT ?",
                [cutoff, batch],
            )
        ]
        if not ids:
            return
        marks = ",".join("?" * len(ids))
        with _Tx(db.conn):
            for channel, state, n, attempts in db.execute(
                f"SELECT channel, state, COUNT(*), COALESCE(SUM(attempts), 0) FROM notifications "
                f"WHERE id IN ({marks}) GROUP BY channel, state",
                ids,
            ).fetchall():
                if state == "delivered":
                    _add_counter(db, f"{PRUNED_PREFIX}delivered.{channel}", n)
                    _add_counter(db, f"{PRUNED_PREFIX}failures.{channel}", attempts - n)
                else:
                    _add_counter(db, f"{PRUNED_PREFIX}dead.{channel}", n)
                    _add_counter(db, f"{PRUNED_PREFIX}failures.{channel}", attempts)
            db.execute(f"DELETE FROM notifications WHERE id IN ({marks})", ids)
        yield len(ids)
        if len(ids) < batch:
            return


def _steps(store, settings, now: datetime, batch: int, result: dict[str, int], compact: bool) -> Iterator[None]:
    db = store.db
    r = settings.retention
    names = set(db.table_names())
    result.update(observations=0, probe_results=0, notifications=0, vacuumed_pages=0)

    if "observations" in names:
        cutoff = _ts_seconds(now - timedelta(days=r.observations_days))
        keep = {row[0] for row in db.execute("SELECT MAX(id) FROM observations GROUP BY source") if row[0]}
        for n in _delete_batches(db, "observations", "at < ?", [cutoff], batch, keep):
            result["observations"] += n
            yield
    if "probe_results" in names:
        cutoff = _ts_micro(now - timedelta(days=r.probe_results_days))
        for n in _delete_batches(db, "probe_results", "at < ?", [cutoff], batch, set()):
            result["probe_results"] += n
            yield
    if "notifications" in names:
        cutoff = _ts_micro(now - timedelta(days=r.notifications_days))
        for n in _notification_batches(db, cutoff, batch):
            result["notifications"] += n
            yield

    if str(getattr(store, "path", "")) == ":memory:":
        return
    pruned = result["observations"] + result["probe_results"] + result["notifications"]
    if compact:
        yield from _compact(db, result)
    if pruned or result["vacuumed_pages"]:
        _checkpoint(db)
        try:
            db.execute("PRAGMA optimize")
        except sqlite3.Error as e:
            log.debug("PRAGMA optimize failed: %s", e)


def _compact(db, result: dict[str, int]) -> Iterator[None]:
    mode = db.execute("PRAGMA auto_vacuum").fetchone()[0]
    free = db.execute("PRAGMA freelist_count").fetchone()[0]
    if not free:
        return
    if mode == 2:  # incremental
        while free:
            before = free
            db.execute(f"PRAGMA incremental_vacuum({VACUUM_STEP})").fetchall()
            free = db.execute("PRAGMA freelist_count").fetchone()[0]
            result["vacuumed_pages"] += before - free
            if free >= before:
                break
            yield
        return
    pages = db.execute("PRAGMA page_count").fetchone()[0]
    if free < CONVERT_MIN_FREE_PAGES or free < CONVERT_MIN_FREE_SHARE * pages:
        return  # SQLite reuses free pages for new rows: the file stops growing anyway
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
    result["vacuumed_pages"] += free
    yield


def _checkpoint(db) -> None:
    try:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
    except sqlite3.Error as e:  # readers in the way: the next run checkpoints
        log.debug("WAL checkpoint skipped: %s", e)


def prune(store, settings, now: datetime, *, batch: int = BATCH, compact: bool = True) -> dict[str, int]:
    """Delete what is past retention; returns rows deleted per table and ``vacuumed_pages``.

    Synchronous; each batch is its own transaction. In the daemon use
    :func:`prune_async`, which lets other work run between batches.
    """
    result: dict[str, int] = {}
    for _ in _steps(store, settings, now, batch, result, compact):
        pass
    return result


async def prune_async(
    store, settings, now: datetime | None = None, *, batch: int = BATCH, pause: float = 0.01, compact: bool = True
) -> dict[str, int]:
    """:func:`prune` on the event loop thread, yielding between batches; logs what it did."""
    now = now or datetime.now(UTC)
    result: dict[str, int] = {}
    for _ in _steps(store, settings, now, batch, result, compact):
        await asyncio.sleep(pause)
    if any(result.values()):
        log.info(
            "retention: pruned %d observation(s), %d probe result(s), %d notification(s); %d page(s) given back",
            result["observations"],
            result["probe_results"],
            result["notifications"],
            result["vacuumed_pages"],
        )
    return result
