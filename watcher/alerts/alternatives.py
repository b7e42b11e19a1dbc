"""The other watched vendors an alert offers as a way round: their state now, closest job, fastest.

Read before the incident's write transaction (:meth:`watcher.alerts.engine.AlertEngine.plan`):
one status read for every vendor and one probe read per alternative.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from watcher.alerts.model import Alternative
from watcher.catalog import VendorSpec


def can_replace(affected: VendorSpec | None, other: VendorSpec) -> bool:
    """Whether ``other`` does some of what ``affected`` does: a CRM is no stand-in for an LLM.

    A vendor with no categories (one the user added without saying) matches all.
    """
    if affected is None or not affected.categories or not other.categories:
        return True
    return bool(set(affected.categories) & set(other.categories))


_STATE_RANK = {"operational": 0, "degraded": 1, "maintenance": 2, "unknown": 3, "outage": 4}


def best_first(alternatives) -> tuple[Alternative, ...]:
    """Healthy first, then the closest to the same job (shared categories), then the fastest measured."""
    return tuple(
        sorted(
            alternatives,
            key=lambda a: (
                _STATE_RANK.get(a.state, 5),
                -a.match,
                a.latency_ms if a.latency_ms is not None else float("inf"),
            ),
        )
    )


def latency_ms(store: Any, vendor_id: str, now: datetime) -> float | None:
    """Median first-token time of our own probes of this vendor in the last hour, if any."""
    rows = store.probe_results
    cutoff = now - timedelta(hours=1)
    values = sorted(
        (r["ttft_s"] or r["total_s"]) * 1000
        for r in rows(vendor_id, limit=20)
        if r["ok"] and (r["ttft_s"] or r["total_s"]) and datetime.fromisoformat(r["at"]) >= cutoff
    )
    return values[len(values) // 2] if values else None
