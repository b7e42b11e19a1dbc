"""What the operational modules need of the store: ``meta``, retention, ``/healthz``, the figures of
the report and ``/metrics``.

:mod:`watcher.retention`, :mod:`watcher.report`, :mod:`watcher.web.ops` and the board call these
named methods instead of writing SQL:

- ``meta_*``: small settings and counters kept as text in ``meta``;
- :meth:`~MaintenanceQueries.prune`, :meth:`~MaintenanceQueries.compact`,
  :meth:`~MaintenanceQueries.optimize`: retention, batch by batch, then giving the file's
  free pages back (SQLite; on PostgreSQL autovacuum keeps freed space for reuse);
- :meth:`~MaintenanceQueries.health_write`: the real write of ``/healthz``;
- probe, outbox and size figures.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

from watcher.store.database import Database, exact, whole_seconds
from watcher.store.dialect import marks
from watcher.store.lite import sqlite_problem, write_health_row

PRUNED_PREFIX = "retention.pruned."
"""``meta`` keys of the outbox rows pruned so far: ``retention.pruned.<delivered|dead|failures>.<channel>``."""
PRUNABLE = ("observations", "probe_results", "notifications")
"""The tables :meth:`MaintenanceQueries.prune` knows; the rest is never pruned."""
SIZE_TABLES = ("observations", "probe_results", "notifications", "incidents")
"""The tables whose rows ``/metrics`` counts."""
ROWS_PREFIX = "rows."
"""``meta`` keys ``rows.<table>`` = ``"<rows> <largest id>"``, counted by :meth:`MaintenanceQueries.recount`
(after each prune): ``/metrics`` adds the ids given since instead of counting millions of rows."""


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


class MaintenanceQueries(Database):
    # -- meta ------------------------------------------------------------------------------------------

    def meta_get(self, key: str) -> str | None:
        row = self._one("SELECT value FROM meta WHERE key = %s", [key])
        return row["value"] if row else None

    def meta_set(self, key: str, value: str) -> None:
        self._upsert("meta", {"key": key, "value": value}, ("key",), "save setting")

    def meta_items(self, prefix: str = "") -> dict[str, str]:
        """Every ``meta`` row whose key starts with ``prefix`` (case counts), by key."""
        rows = self._rows(
            "SELECT key, value FROM meta WHERE substr(key, 1, %s) = %s ORDER BY key", [len(prefix), prefix]
        )
        return {r["key"]: r["value"] for r in rows}

    def meta_add(self, key: str, n: int) -> int:
        """Add ``n`` to an integer kept as text (retention's pruned counters); the new value."""
        row = self._run(
            "save counter",
            lambda c: self._execute(
                c,
                "INSERT INTO meta (key, value) VALUES (%s, %s) ON CONFLICT (key) DO UPDATE SET "
                "value = CAST(CAST(COALESCE(NULLIF(meta.value, ''), '0') AS bigint) + CAST(EXCLUDED.value AS bigint) "
                "AS text) RETURNING value",
                [key, str(int(n))],
            ).fetchone(),
        )
        return int(row["value"])

    # -- retention -----------------------------------------------------------------------------------

    def prune(self, table: str, before: datetime, batch: int = 2000) -> Iterator[int]:
        """Delete ``table``'s rows older than ``before``, oldest first, ``batch`` per transaction;
        yields each batch's count (nothing happens until iterated).

        - ``observations``: except the newest of each source, as seen from each location;
        - ``probe_results``: all of them;
        - ``notifications``: ``delivered`` and ``dead`` rows (by ``created_at``) of
          incidents no longer open; their counts go to ``meta`` (:data:`PRUNED_PREFIX`)
          in the same transaction, so delivery counters survive them.
        """
        if table == "observations":
            keep = {
                r["id"] for r in self._rows("SELECT MAX(id) AS id FROM observations GROUP BY source, location")
            }
            steps = self._delete_batches("observations", whole_seconds(before), batch, keep)
        elif table == "probe_results":
            steps = self._delete_batches("probe_results", exact(before), batch, set())
        elif table == "notifications":
            steps = self._prune_notifications(exact(before), batch)
        else:
            raise ValueError(f"cannot prune {table!r}: only {', '.join(PRUNABLE)}")
        pruned = 0
        for n in steps:
            pruned += n
            yield n
        if pruned or self.meta_get(ROWS_PREFIX + table) is None:
            self.recount(table)

    def recount(self, table: str) -> int:
        """Count ``table``'s rows once (a scan: retention's job, not a request's) and remember the count
        with the largest id it saw, for :meth:`size_stats`; returns the count."""
        if table not in SIZE_TABLES:
            raise ValueError(f"cannot count {table!r}: only {', '.join(SIZE_TABLES)}")
        row = self._one(f"SELECT COUNT(*) AS n, MAX(id) AS top FROM {table}") or {}
        n, top = int(row.get("n") or 0), int(row.get("top") or 0)
        self.meta_set(ROWS_PREFIX + table, f"{n} {top}")
        return n

    def _delete_batches(self, table: str, before: Any, batch: int, keep: set[int]) -> Iterator[int]:
        # Rows are inserted in time order, so the oldest ids match first and each batch
        # reads little more than the rows it deletes.
        while True:
            ids = [
                r["id"]
                for r in self._rows(
                    f"SELECT id FROM {table} WHERE at < %s ORDER BY id LIMIT %s", [before, batch + len(keep)]
                )
                if r["id"] not in keep
            ][:batch]
            if not ids:
                return
            with self._tx(f"prune {table}"):  # one short transaction per batch: others write in between
                self._exec(f"DELETE FROM {table} WHERE id IN ({marks(len(ids))})", ids, f"prune {table}")
            yield len(ids)
            if len(ids) < batch:
                return

    def _prune_notifications(self, cutoff: datetime | None, batch: int) -> Iterator[int]:
        while True:
            with self._tx("prune notifications"):
                rows = self._rows(
                    "DELETE FROM notifications WHERE id IN (SELECT id FROM notifications "
                    "WHERE state IN ('delivered', 'dead') AND created_at < %s "
                    "AND incident_id NOT IN (SELECT id FROM incidents WHERE state = 'open') "
                    "ORDER BY id LIMIT %s" + self.dialect.skip_locked + ") RETURNING channel, state, attempts",
                    [cutoff, batch],
                    "prune notifications",
                )
                groups: dict[tuple[str, str], list[int]] = {}
                for r in rows:
                    g = groups.setdefault((r["channel"], r["state"]), [0, 0])
                    g[0] += 1
                    g[1] += r["attempts"] or 0
                counters = pruned_counters([(c, s, n, a) for (c, s), (n, a) in groups.items()])
                for key, n in sorted(counters.items()):
                    self.meta_add(key, n)
            if not rows:
                return
            yield len(rows)
            if len(rows) < batch:
                return

    def compact(self) -> Iterator[int]:
        """Give free pages back to the filesystem; yields the pages given back by each step."""
        yield from self.dialect.compact(self._step)

    def _step(self, fn: Any) -> Any:
        return self._run("compact the database", fn)

    def optimize(self) -> None:
        """After a prune: checkpoint the WAL and refresh the planner's statistics (best effort)."""
        self._run("optimize", self.dialect.optimize)

    # -- health -----------------------------------------------------------------------------------------

    def health_write(self, key: str, value: str, *, timeout: float = 2.0) -> None:
        """A real write of one ``meta`` row, waiting at most ``timeout`` s for a lock;
        :class:`~watcher.store.base.StoreError` (with its ``problem``) when the database cannot take it."""
        if self.path is None or str(self.path) != ":memory:":
            self.dialect.health_write(None, key, value, timeout)  # on a connection of its own
        else:  # SQLite in memory: a write rolled back on the store's connection
            self._run("check the database", lambda c: self.dialect.health_write(c, key, value, timeout))

    # -- figures ------------------------------------------------------------------------------------------

    def first_ack(self, incident_id: int) -> tuple[datetime, str] | None:
        """When and by whom an incident was first acknowledged (cleared acknowledgements included)."""
        row = self._one("SELECT at, by FROM acks WHERE incident_id = %s ORDER BY at, id LIMIT 1", [incident_id])
        return (row["at"], row["by"]) if row else None

    def probe_ttfts(self, vendor: str, since: datetime, until: datetime | None = None) -> list[float]:
        """First-token times of the vendor's successful probes in ``[since, until)``, smallest first."""
        q = "SELECT ttft_s FROM probe_results WHERE vendor = %s AND at >= %s AND ok AND ttft_s IS NOT NULL"
        args: list[Any] = [vendor, exact(since)]
        if until is not None:
            q += " AND at < %s"
            args.append(exact(until))
        return sorted(float(r["ttft_s"]) for r in self._rows(q, args))

    def last_probe_ttft(self, vendor: str) -> float | None:
        """First-token time of the vendor's latest successful probe."""
        row = self._one(
            "SELECT ttft_s FROM probe_results WHERE vendor = %s AND ok AND ttft_s IS NOT NULL "
            "ORDER BY at DESC, id DESC LIMIT 1",
            [vendor],
        )
        return float(row["ttft_s"]) if row else None

    def probe_summary(self, vendor: str, since: datetime, until: datetime | None = None) -> dict[str, Any]:
        """Counts over the vendor's probes in ``[since, until)``: ``requests``, ``ok``, ``failed``,
        canary ``passed`` / ``wrong`` / ``answered``, ``tokens`` (in + out) and ``cost``."""
        q = (
            "SELECT COUNT(*) AS requests, COUNT(*) FILTER (WHERE ok) AS ok, COUNT(*) FILTER (WHERE NOT ok) AS failed, "
            "COUNT(*) FILTER (WHERE passed) AS passed, COUNT(*) FILTER (WHERE NOT passed) AS wrong, "
            "COUNT(passed) AS answered, COALESCE(SUM(COALESCE(tokens_in, 0) + COALESCE(tokens_out, 0)), 0) AS tokens, "
            "COALESCE(SUM(cost), 0) AS cost FROM probe_results WHERE vendor = %s AND at >= %s"
        )
        args: list[Any] = [vendor, exact(since)]
        if until is not None:
            q += " AND at < %s"
            args.append(exact(until))
        r = self._one(q, args) or {}
        out: dict[str, Any] = {k: int(r[k]) for k in ("requests", "ok", "failed", "passed", "wrong", "answered", "tokens")}
        out["cost"] = float(r["cost"])
        return out

    def outbox_counts(self) -> dict[tuple[str, str], tuple[int, int]]:
        """(channel, state) → (rows, attempts summed) over the outbox as it is now."""
        rows = self._rows(
            "SELECT channel, state, COUNT(*) AS n, COALESCE(SUM(attempts), 0) AS attempts FROM notifications "
            "GROUP BY channel, state"
        )
        return {(r["channel"], r["state"]): (int(r["n"]), int(r["attempts"])) for r in rows}

    def oldest_unsent_due(self, now: datetime) -> datetime | None:
        """The earliest ``not_before`` of a pending or in-flight notification already due at ``now``."""
        row = self._one(
            "SELECT MIN(not_before) AS t FROM notifications WHERE state IN ('pending', 'sending') AND not_before <= %s",
            [exact(now)],
        )
        return row["t"] if row else None

    def oldest_undelivered(self, now: datetime) -> dict[str, dict[str, Any]]:
        """Per channel, the undelivered row that has waited longest: ``id``, ``target``, ``since``, ``last_error``.

        A row waits from when it was queued, or for one held by quiet hours from the end
        of the hours; rows still held are not waiting yet.
        """
        rows = self._rows(
            "SELECT channel, id, target, since, last_error FROM (SELECT channel, id, target, last_error, since, "
            "ROW_NUMBER() OVER (PARTITION BY channel ORDER BY since, id) AS n FROM (SELECT channel, id, target, "
            "last_error, CASE WHEN held AND not_before > created_at THEN not_before ELSE created_at END AS since "
            "FROM notifications WHERE state IN ('pending', 'sending')) w WHERE since <= %s) r WHERE n = 1",
            [exact(now)],
        )
        return {
            r["channel"]: {"id": r["id"], "target": r["target"], "since": r["since"], "last_error": r["last_error"]}
            for r in rows
        }

    def size_stats(self) -> dict[str, Any]:
        """``size_bytes`` (what the database takes), ``free_bytes`` (free inside it, None when not known
        cheaply), and ``rows`` per table of :data:`SIZE_TABLES`."""
        size, free = self._run("measure the database", self.dialect.size)
        return {"size_bytes": size, "free_bytes": free, "rows": self.row_counts()}

    def row_counts(self) -> dict[str, int]:
        """Rows per table of :data:`SIZE_TABLES`, without counting them: two lookups in each primary key.

        Ids only grow and only retention deletes, so the rows are the count :meth:`recount` took after
        the last prune plus the ids given since (exact but for inserts rolled back on PostgreSQL, whose
        ids are skipped, until the next prune). A table never counted yet (incidents, which are never
        pruned, or a database retention has not visited) is its id range, largest - smallest + 1: exact
        while rows go oldest first and only by retention, never below the truth.
        """
        counted = self.meta_items(ROWS_PREFIX)
        out = {}
        for t in SIZE_TABLES:
            # two subqueries, not MIN(id), MAX(id) in one: SQLite reads one end of the key only for a lone MIN or MAX
            r = self._one(f"SELECT (SELECT MAX(id) FROM {t}) AS top, (SELECT MIN(id) FROM {t}) AS bottom") or {}
            top, bottom = r.get("top"), r.get("bottom")
            was = counted.get(ROWS_PREFIX + t, "").split()
            if top is None:
                out[t] = 0
            elif len(was) == 2 and was[0].isdigit() and was[1].isdigit():
                out[t] = int(was[0]) + max(0, int(top) - int(was[1]))
            else:
                out[t] = int(top) - int(bottom or top) + 1
        return out


__all__ = ["PRUNABLE", "PRUNED_PREFIX", "ROWS_PREFIX", "SIZE_TABLES", "MaintenanceQueries", "pruned_counters", "sqlite_problem",
           "write_health_row"]
