"""Tables for watcher's own measurements: probe results, canary answers, detector state, budgets.

Every probe and canary answer is kept (with its score and cost) so a finding can
be explained and re-checked later; detector and budget state is a JSON document
per stream or vendor, saved after each run, so a restart neither forgets a
half-built alarm nor resets the day's spending.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import sqlite_utils


def _ts(dt: datetime | None) -> str | None:
    from datetime import UTC

    return dt.astimezone(UTC).isoformat(timespec="microseconds") if dt else None


def migration_3(db: sqlite_utils.Database) -> None:
    db["probe_results"].create(
        {
            "id": int,
            "vendor": str,
            "kind": str,
            "model": str,
            "at": str,
            "ok": int,
            "status": int,
            "error_class": str,
            "error": str,
            "ttfb_s": float,
            "ttft_s": float,
            "total_s": float,
            "tokens_in": int,
            "tokens_out": int,
            "tokens_per_s": float,
            "canary": str,
            "passed": int,
            "detail": str,
            "answer": str,
            "cost": float,
            "network_ok": int,
        },
        pk="id",
    )
    db["probe_results"].create_index(["vendor", "at"])
    db["detector_state"].create({"stream": str, "state": str, "updated_at": str}, pk="stream")
    db["budget_state"].create({"vendor": str, "state": str, "updated_at": str}, pk="vendor")


class MeasurementTables:
    """Mixed into :class:`~watcher.store.sqlite.SQLiteStore`."""

    db: sqlite_utils.Database

    def add_probe_result(self, row: dict[str, Any]) -> int:
        row = dict(row)
        for k in ("at",):
            if isinstance(row.get(k), datetime):
                row[k] = _ts(row[k])
        for k in ("ok", "passed", "network_ok"):
            if isinstance(row.get(k), bool):
                row[k] = int(row[k])
        return self.db["probe_results"].insert(row).last_pk

    def probe_results(self, vendor: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        where, args = ("WHERE vendor = ?", [vendor]) if vendor else ("", [])
        return list(
            self.db.query(f"SELECT * FROM probe_results {where} ORDER BY id DESC LIMIT ?", [*args, limit])
        )

    def detector_state(self, stream: str) -> dict[str, Any] | None:
        row = self.db.execute("SELECT state FROM detector_state WHERE stream = ?", [stream]).fetchone()
        return json.loads(row[0]) if row else None

    def detector_states(self, prefix: str = "") -> dict[str, dict[str, Any]]:
        rows = self.db.execute(
            "SELECT stream, state FROM detector_state WHERE stream LIKE ? ORDER BY stream", [prefix + "%"]
        ).fetchall()
        return {r[0]: json.loads(r[1]) for r in rows}

    def save_detector_state(self, stream: str, state: dict[str, Any], now: datetime) -> None:
        self.db["detector_state"].upsert(
            {"stream": stream, "state": json.dumps(state), "updated_at": _ts(now)}, pk="stream"
        )

    def budget_state(self, vendor: str) -> dict[str, Any] | None:
        row = self.db.execute("SELECT state FROM budget_state WHERE vendor = ?", [vendor]).fetchone()
        return json.loads(row[0]) if row else None

    def save_budget_state(self, vendor: str, state: dict[str, Any], now: datetime) -> None:
        self.db["budget_state"].upsert(
            {"vendor": vendor, "state": json.dumps(state), "updated_at": _ts(now)}, pk="vendor"
        )
