"""What watcher measured itself: API probe and canary results, detector and budget state.

Probe results are rows as dicts (``at`` as ISO text, flags as 0/1) because the board, the
report and the detectors read them as such; each is tagged with the location that measured it.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from watcher.store.base import StoreError
from watcher.store.database import Database, exact, iso

PROBE_COLUMNS = (
    "vendor",
    "kind",
    "model",
    "at",
    "ok",
    "status",
    "error_class",
    "error",
    "ttfb_s",
    "ttft_s",
    "total_s",
    "tokens_in",
    "tokens_out",
    "tokens_per_s",
    "canary",
    "passed",
    "detail",
    "answer",
    "cost",
    "network_ok",
    "location",
)
_PROBE_FLAGS = ("ok", "passed", "network_ok")


def as_int(v: Any) -> int | None:
    return None if v is None else int(v)


class MeasurementQueries(Database):
    def add_probe_result(self, row: dict[str, Any]) -> int:
        unknown = set(row) - set(PROBE_COLUMNS)
        if unknown:
            raise StoreError(f"cannot save probe result: no column {', '.join(sorted(unknown))}")
        row = dict(row)
        at = row.get("at")
        if isinstance(at, str):
            at = datetime.fromisoformat(at)
        if isinstance(at, datetime):
            row["at"] = exact(at)
        for k in _PROBE_FLAGS:
            if row.get(k) is not None:
                row[k] = bool(row[k])
        if self.location is not None:
            row.setdefault("location", self.location)
        return self._insert("probe_results", row, "save probe result")

    def probe_results(self, vendor: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        if vendor:
            rows = self._rows(
                "SELECT * FROM probe_results WHERE vendor = %s ORDER BY id DESC LIMIT %s", [vendor, limit]
            )
        else:
            rows = self._rows("SELECT * FROM probe_results ORDER BY id DESC LIMIT %s", [limit])
        out = []
        for r in rows:
            r["at"] = iso(r["at"])
            for k in _PROBE_FLAGS:
                r[k] = as_int(r[k])
            out.append(r)
        return out

    def detector_state(self, stream: str) -> dict[str, Any] | None:
        row = self._one("SELECT state FROM detector_state WHERE stream = %s", [stream])
        return json.loads(row["state"]) if row else None

    def detector_states(self, prefix: str = "") -> dict[str, dict[str, Any]]:
        rows = self._rows(
            "SELECT stream, state FROM detector_state WHERE substr(stream, 1, %s) = %s ORDER BY stream",
            [len(prefix), prefix],
        )
        return {r["stream"]: json.loads(r["state"]) for r in rows}

    def save_detector_state(self, stream: str, state: dict[str, Any], now: datetime) -> None:
        self._upsert(
            "detector_state",
            {"stream": stream, "state": json.dumps(state), "updated_at": exact(now)},
            ("stream",),
            "save detector state",
        )

    def budget_state(self, vendor: str) -> dict[str, Any] | None:
        row = self._one("SELECT state FROM budget_state WHERE vendor = %s", [vendor])
        return json.loads(row["state"]) if row else None

    def save_budget_state(self, vendor: str, state: dict[str, Any], now: datetime) -> None:
        self._upsert(
            "budget_state",
            {"vendor": vendor, "state": json.dumps(state), "updated_at": exact(now)},
            ("vendor",),
            "save budget state",
        )

    def probe_results_since(self, vendor: str, since: datetime) -> list[dict[str, Any]]:
        """The vendor's probe results after ``since``, oldest first (rows as :meth:`probe_results` gives them)."""
        rows = self._rows(
            "SELECT * FROM probe_results WHERE vendor = %s AND at > %s ORDER BY at, id", [vendor, exact(since)]
        )
        for r in rows:
            r["at"] = iso(r["at"])
            for k in _PROBE_FLAGS:
                r[k] = as_int(r[k])
        return rows
