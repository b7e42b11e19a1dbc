"""Is watcher doing its job: the checks behind ``/healthz`` and the heartbeat.

``GET /healthz`` answers 200 when healthy and 503 with the reasons when not, as
JSON, for load balancers, Docker/systemd health checks, uptime monitors and the
heartbeat (:mod:`watcher.heartbeat`). It checks:

- the process answers (this handler runs);
- the scheduler runs (``ctx.runtime["scheduler_running"]``; ``False`` is
  unhealthy, a missing key is "unknown" and not held against us);
- the database is writable: a real write of one ``meta`` row on a separate,
  short-lived connection with a short busy timeout, in a worker thread, so a
  database locked by another process (an admin's ``sqlite3`` shell holding a
  write transaction) makes the check fail after about two seconds instead of
  hanging it; read-only files, directories or filesystems, a full disk and I/O
  errors are told apart and named; the free space next to the file is reported
  and less than :data:`MIN_FREE_BYTES` is unhealthy. On PostgreSQL the write
  is an upsert in a transaction bounded by ``lock_timeout`` and
  ``statement_timeout`` (the store's :meth:`health_write`), and a server that is
  unreachable, refuses the login, is read-only (a standby) or keeps the row
  locked is named the same way;
- the age of each watched source's last successful poll. One stale source is a
  vendor's problem, reported but healthy; *every* source stale for longer than
  :func:`silence_limit` means watcher sees nothing (its network, or its
  scheduler, is down), and that is unhealthy. ``watcher health`` applies the
  same :func:`silence_reason`, so the CLI and ``/healthz`` never disagree;
- the outbox: a channel whose oldest undelivered alert has waited longer than
  ``alerts.stuck_after`` (quiet hours aside) is unhealthy, named with the row,
  its target and its last error (a Slack outage with alerts piling up).

Below the web layer on purpose: the heartbeat (:mod:`watcher.heartbeat`) runs the
same checks without a web server, and must not import :mod:`watcher.web`.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from watcher.status import STALE_AFTER_INTERVALS, STALE_MIN
from watcher.store.base import StoreError
from watcher.store.maintenance import write_health_row


class HealthContext(Protocol):
    """What the checks read: the web app's context is one, and so is the daemon's."""

    settings: Any
    store: Any
    vendors: Any
    started_at: datetime
    runtime: dict[str, Any]

    def clock(self) -> datetime: ...


DB_BUSY_TIMEOUT = 2.0
"""Seconds the health write waits for a lock held by someone else before calling the database stuck."""
DB_CHECK_DEADLINE = 4.0
"""Seconds after which the health check stops waiting for the database check at all (a hung filesystem)."""
MIN_FREE_BYTES = 1024 * 1024
"""Less free space than this next to the database is unhealthy: the next checkpoint or migration fails."""
HEALTH_META_KEY = "healthz.checked_at"


# -- health -------------------------------------------------------------------------------------


@dataclass(slots=True)
class Health:
    ok: bool
    reasons: list[str] = field(default_factory=list)
    body: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class DbCheck:
    writable: bool
    problem: str | None = None
    """``read_only``, ``disk_full``, ``locked``, ``cannot_open``, ``io_error``, ``timeout``, ``error``."""
    error: str | None = None
    free_bytes: int | None = None
    seconds: float = 0.0


_ADVICE = {
    "read_only": "the database file, its directory or its filesystem is read-only: check their owner and "
    "permissions (systemd: StateDirectory; Docker: the volume) and that the filesystem is mounted read-write",
    "disk_full": "the disk holding the database is full: free space (retention prunes old rows; "
    "lower retention.*_days) or grow the volume",
    "locked": "another process holds the database locked (a sqlite3 shell in a transaction, a backup "
    "without .backup, a second watcher on the same file)",
    "cannot_open": "the database file cannot be opened: was it deleted or moved, or is its directory unreadable?",
    "io_error": "the disk reports I/O errors: check the disk and the filesystem",
    "timeout": "the database did not answer in time: a hung filesystem (network storage?) or a long lock",
    "error": "unexpected database error",
}


_ADVICE_POSTGRES = {
    "unreachable": "PostgreSQL does not answer: is the server up and reachable from here (host, port, firewall, "
    "TLS)? watcher reconnects by itself once it is back",
    "refused": "PostgreSQL refused the connection: check the user, the password (WATCHER_STORAGE__URL), the "
    "database name and pg_hba.conf",
    "read_only": "PostgreSQL refuses writes: is storage.url a standby (read replica), is "
    "default_transaction_read_only on, or does the user lack write grants on watcher's tables?",
    "locked": "another session holds a lock on watcher's tables (a long transaction, a migration, an admin's "
    "psql in the middle of a transaction): see pg_stat_activity",
    "timeout": "PostgreSQL did not answer in time: an overloaded server or a long lock (see pg_stat_activity)",
    "disk_full": "the disk of the PostgreSQL server is full: free space or grow the volume (retention prunes old "
    "rows; lower retention.*_days)",
    "error": "unexpected database error",
}


def _health_value(now: datetime) -> str:
    return now.astimezone(UTC).isoformat(timespec="seconds")


def check_database_sync(path: Path | str, now: datetime, timeout: float = DB_BUSY_TIMEOUT) -> DbCheck:
    """Write one ``meta`` row on a fresh connection (never creates the file), then measure free space.

    Blocking: call it in a worker thread (:func:`check_database`).
    """
    t0 = time.monotonic()
    p = Path(path)
    free = None
    try:
        st = os.statvfs(p.parent if str(p.parent) else ".")
        free = st.f_bavail * st.f_frsize
    except OSError:
        pass
    try:
        write_health_row(p, HEALTH_META_KEY, _health_value(now), timeout)
    except StoreError as e:
        return DbCheck(False, e.problem or "error", str(e), free, time.monotonic() - t0)
    if free is not None and free < MIN_FREE_BYTES:
        return DbCheck(False, "disk_full", f"only {free} bytes free", free, time.monotonic() - t0)
    return DbCheck(True, None, None, free, time.monotonic() - t0)


def _check_store(store, now: datetime, timeout: float) -> DbCheck:
    """The store's own :meth:`health_write` (PostgreSQL; SQLite in memory). Blocking."""
    t0 = time.monotonic()
    try:
        store.health_write(HEALTH_META_KEY, _health_value(now), timeout=timeout)
    except StoreError as e:
        return DbCheck(False, e.problem or "error", str(e), None, time.monotonic() - t0)
    return DbCheck(True, seconds=time.monotonic() - t0)


async def check_database(store, now: datetime, *, timeout: float | None = None) -> DbCheck:
    timeout = DB_BUSY_TIMEOUT if timeout is None else timeout
    path = store.path
    if path is not None and str(path) != ":memory:":
        job = asyncio.to_thread(check_database_sync, path, now, timeout)
    elif path is not None:  # SQLite in memory: a write rolled back on the store's own connection
        return _check_store(store, now, timeout)
    else:
        job = asyncio.to_thread(_check_store, store, now, timeout)
    try:
        return await asyncio.wait_for(job, timeout=timeout + DB_CHECK_DEADLINE)
    except TimeoutError:
        return DbCheck(False, "timeout", f"no answer within {timeout + DB_CHECK_DEADLINE:g}s")


def _is_postgres(store) -> bool:
    return bool(store.clustered)


def _stale_after(interval: float) -> float:
    return max(STALE_MIN.total_seconds(), interval * STALE_AFTER_INTERVALS)


def silence_limit(intervals: Iterable[float]) -> float:
    """How long watcher may hear from no source at all before it calls itself blind.

    A few intervals of the *fastest* source (at least :data:`STALE_MIN`), not of the slowest: with
    the catalog's 900 s feeds the slowest rule gave 45 minutes of green while nothing answered,
    and a Docker health check should turn red within minutes when the container has no network.
    ``/healthz`` and ``watcher health`` both use it, so they never disagree.
    """
    fastest = min(intervals, default=0.0)
    return _stale_after(fastest) if fastest else STALE_MIN.total_seconds()


def silence_reason(
    now: datetime,
    records: Sequence[Any],
    intervals: Sequence[float],
    started_at: datetime | None = None,
    limit: float | None = None,
) -> str | None:
    """The one rule of "watcher hears nothing", or ``None`` when some source is heard.

    ``records`` are the watched sources' store records (``None`` for one never polled), in the
    order of ``intervals``. Unhealthy when no source answered within its own stale window *and*
    the silence has lasted longer than :func:`silence_limit` (or ``limit``, ``watcher health
    --max-age``). The silence counts from the newest answer; when none ever came, from when the
    sources began failing (``error_since``: known to ``watcher health`` too, which runs in
    another process), else from ``started_at`` (the daemon's start, for ``/healthz``).
    """
    if not intervals:
        return None
    for rec, interval in zip(records, intervals, strict=True):
        last = rec.last_success_at if rec else None
        if last and (now - last).total_seconds() <= _stale_after(interval):
            return None
    limit = silence_limit(intervals) if limit is None else limit
    answered = [r.last_success_at for r in records if r and r.last_success_at]
    failing = [r for r in records if r and r.error]
    example = f"; e.g. {failing[0].key}: {failing[0].error}" if failing else ""
    advice = "Check this machine's network, DNS or proxy (`watcher doctor`)"
    if answered:
        silent = (now - max(answered)).total_seconds()
        if silent <= limit:
            return None
        return (
            f"no source has answered for {silent:.0f}s (limit {limit:.0f}s): 0 of {len(intervals)} sources "
            f"answering{example}. {advice}"
        )
    began = [r.error_since for r in records if r and r.error_since]
    since = min(began) if began else started_at
    if since is None:
        return None
    silent = (now - since).total_seconds()
    if silent <= limit:
        return None
    return (
        f"no source has answered ever (watching for {silent:.0f}s, limit {limit:.0f}s): 0 of {len(intervals)} "
        f"sources answering{example}. {advice}"
    )


def _iso(dt: datetime | None) -> str | None:
    return dt.astimezone(UTC).isoformat(timespec="seconds") if dt else None


async def check_health(ctx: HealthContext) -> Health:
    """Everything ``/healthz`` reports; the daemon's heartbeat job calls this too."""
    now = ctx.clock()
    reasons: list[str] = []
    rt = ctx.runtime
    uptime = max(0.0, (now - ctx.started_at).total_seconds())

    running = rt.get("scheduler_running")
    if running is False:
        reasons.append("scheduler is not running: nothing is being polled")

    db = await check_database(ctx.store, now)
    postgres = _is_postgres(ctx.store)
    if not db.writable:
        advice = (_ADVICE_POSTGRES if postgres else _ADVICE).get(db.problem or "error", "")
        reasons.append(f"database not writable ({db.problem}: {db.error}): {advice}")

    specs = [s for v in ctx.vendors for s in v.sources]
    try:
        records = {r.key: r for r in ctx.store.sources()}
    except Exception as e:  # a broken store is a health finding, not a 500
        records = {}
        reasons.append(f"cannot read sources from the database: {e}")
    sources = []
    fresh = 0
    for spec in specs:
        rec = records.get(spec.key)
        last = rec.last_success_at if rec else None
        age = (now - last).total_seconds() if last else None
        limit = _stale_after(spec.interval)
        stale = age is None or age > limit
        fresh += not stale
        sources.append(
            {
                "source": spec.key,
                "vendor": spec.vendor,
                "last_success_at": _iso(last),
                "age_seconds": round(age, 1) if age is not None else None,
                "stale_after_seconds": limit,
                "stale": stale,
                "error": rec.error if rec else None,
            }
        )
    silent = silence_reason(
        now, [records.get(s.key) for s in specs], [s.interval for s in specs], ctx.started_at
    )
    if silent:
        reasons.append(silent)

    try:
        from watcher.alerts.deliver import stuck_alerts

        stuck, outbox = stuck_alerts(ctx.store, now, ctx.settings)
        reasons += stuck
    except Exception as e:  # a broken store is a health finding, not a 500
        outbox = {}
        reasons.append(f"cannot read the outbox from the database: {e}")

    ok = not reasons
    body = {
        "ok": ok,
        "status": "healthy" if ok else "unhealthy",
        "reasons": reasons,
        "checked_at": _iso(now),
        "process": {
            "up": True,
            "pid": os.getpid(),
            "started_at": _iso(ctx.started_at),
            "uptime_seconds": round(uptime, 1),
        },
        "scheduler": {"running": running, "polls": rt.get("polls")},
        "database": {
            "backend": "postgresql" if postgres else "sqlite",
            "writable": db.writable,
            "problem": db.problem,
            "error": db.error,
            "path": None if postgres else str(ctx.store.path),
            "server": ctx.store.where if postgres else None,
            "free_bytes": db.free_bytes,
            "check_seconds": round(db.seconds, 3),
        },
        "outbox": {"stuck_after_seconds": ctx.settings.alerts.stuck_after, "channels": outbox},
        "sources": {
            "total": len(specs),
            "fresh": fresh,
            "stale": len(specs) - fresh,
            "items": sources,
        },
    }
    return Health(ok, reasons, body)
