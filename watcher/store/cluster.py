"""What ``watcher cluster`` and ``/metrics`` ask about the instances sharing a database.

Portable queries only; the list of instances with their heartbeat ages, by the server's
clock, is PostgreSQL's (:meth:`watcher.store.postgres.PostgresStore.instances`).
"""

from __future__ import annotations

from typing import Any

from watcher.store.database import Database


class ClusterQueries(Database):
    def leader_record(self) -> dict[str, Any]:
        """The lease's last holder, its epoch and since when (the holder may have died since)."""
        row = self._one("SELECT epoch, holder, since FROM leader")
        return dict(row) if row else {"epoch": 0, "holder": None, "since": None}

    def source_errors_by_location(self) -> dict[str, tuple[int, int]]:
        """Per location: (sources it polls, sources failing from there)."""
        rows = self._rows(
            "SELECT location, COUNT(*) AS n, COUNT(*) FILTER (WHERE error IS NOT NULL) AS failing "
            "FROM sources GROUP BY location ORDER BY location"
        )
        return {r["location"]: (int(r["n"]), int(r["failing"])) for r in rows}
