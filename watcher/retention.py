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

Then, on SQLite, the file is made to shrink: with ``auto_vacuum = INCREMENTAL`` the
free pages are returned to the filesystem in small steps (``PRAGMA
incremental_vacuum``); a database created before that (SQLite's default is no
auto-vacuum) is converted once, by one ``VACUUM``, the first time pruning frees
a sizeable share of it, which holds the lock for the duration of that one
rewrite (seconds for a database of some hundred megabytes). The WAL is
checkpointed and truncated, and ``PRAGMA optimize`` refreshes the planner's
statistics. On PostgreSQL the rows are pruned the same way (each batch one
``DELETE ... WHERE id IN (SELECT id ... LIMIT n)``) and autovacuum does the rest:
it keeps the freed space for new rows and refreshes the statistics.

The SQL lives in the stores (:meth:`prune`, :meth:`compact` and :meth:`optimize`
of :mod:`watcher.store.maintenance` and :mod:`watcher.store.postgres`); this
module decides what goes when, and paces it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

from watcher.store.maintenance import PRUNED_PREFIX

log = logging.getLogger("watcher.retention")

BATCH = 2000
"""Rows deleted per transaction."""


def pruned_counts(store) -> dict[tuple[str, str], int]:
    """(what, channel) → rows pruned so far: ``delivered``, ``dead`` and ``failures`` (attempts that failed)."""
    out: dict[tuple[str, str], int] = {}
    for key, value in store.meta_items(PRUNED_PREFIX).items():
        what, _, channel = key[len(PRUNED_PREFIX) :].partition(".")
        try:
            out[(what, channel)] = int(value)
        except (TypeError, ValueError):
            continue
    return out


def _steps(
    store, settings, now: datetime, batch: int, result: dict[str, int], compact: bool
) -> Iterator[None]:
    r = settings.retention
    result.update(observations=0, probe_results=0, notifications=0, vacuumed_pages=0)
    for table, days in (
        ("observations", r.observations_days),
        ("probe_results", r.probe_results_days),
        ("notifications", r.notifications_days),
    ):
        for n in store.prune(table, now - timedelta(days=days), batch):
            result[table] += n
            yield
    pruned = result["observations"] + result["probe_results"] + result["notifications"]
    if compact:
        for pages in store.compact():
            result["vacuumed_pages"] += pages
            yield
    if pruned or result["vacuumed_pages"]:
        store.optimize()


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
    store,
    settings,
    now: datetime | None = None,
    *,
    batch: int = BATCH,
    pause: float = 0.01,
    compact: bool = True,
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
