"""A vendor's overall state, from its sources' last polls and its open incidents.

Pure. The order of precedence says what a marketer needs to know first: an outage
beats a degradation beats maintenance. A vendor we cannot see is ``unknown``, with
the reason ("network unreachable" when our own network is the problem), never
"down": we do not call a vendor down because we cannot reach the internet.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from watcher.catalog import VendorSpec
from watcher.incidents.model import Incident, MaintenancePhase
from watcher.model import ComponentStatus, IncidentKind, VendorState
from watcher.store.base import SourceRecord

STALE_AFTER_INTERVALS = 3
STALE_MIN = timedelta(minutes=5)


@dataclass(slots=True)
class VendorStatus:
    vendor: VendorSpec
    state: VendorState
    reason: str
    incidents: list[Incident] = field(default_factory=list)
    maintenances: list[Incident] = field(default_factory=list)
    failing_sources: list[SourceRecord] = field(default_factory=list)

    def to_json(self) -> dict:
        return {
            "vendor": self.vendor.id,
            "name": self.vendor.name,
            "state": self.state.value,
            "reason": self.reason,
            "incidents": [incident_json(i) for i in self.incidents],
            "maintenances": [incident_json(i) for i in self.maintenances],
            "failing_sources": [
                {"source": s.key, "error": s.error, "kind": s.error_kind} for s in self.failing_sources
            ],
        }


def incident_json(i: Incident) -> dict:
    return {
        "id": i.id,
        "vendor": i.vendor,
        "title": i.title,
        "kind": i.kind.value,
        "reason": i.reason,
        "state": i.state.value,
        "status": i.status.value,
        "impact": i.impact,
        "phase": i.phase.value if i.phase else None,
        "components": i.components,
        "opened_at": i.opened_at.isoformat() if i.opened_at else None,
        "started_at": i.started_at.isoformat() if i.started_at else None,
        "resolved_at": i.resolved_at.isoformat() if i.resolved_at else None,
        "scheduled_for": i.scheduled_for.isoformat() if i.scheduled_for else None,
        "scheduled_until": i.scheduled_until.isoformat() if i.scheduled_until else None,
        "url": i.url,
        "latest_update": i.latest_update,
    }


def network_seems_up(records: list[SourceRecord]) -> bool:
    """True when any source, of any vendor, answered on its last poll.

    A DNS failure means "our network is down" only when nothing answers at all;
    when other hosts answer, it is that one host's problem.
    """
    return any(r.error is None and r.last_success_at is not None for r in records)


def vendor_status(
    vendor: VendorSpec,
    records: list[SourceRecord],
    open_incidents: list[Incident],
    now: datetime,
    *,
    network_up: bool = False,
) -> VendorStatus:
    incidents = [i for i in open_incidents if not i.is_maintenance]
    maintenances = [i for i in open_incidents if i.is_maintenance]
    if not vendor.sources:
        return VendorStatus(
            vendor, VendorState.UNKNOWN, "no machine-readable status source known", incidents, maintenances
        )
    by_key = {r.key: r for r in records}
    healthy: list[SourceRecord] = []
    failing: list[SourceRecord] = []
    never: list[str] = []
    for spec in vendor.sources:
        rec = by_key.get(spec.key)
        if rec is None or (rec.last_success_at is None and rec.error is None):
            never.append(spec.key)
            continue
        stale_after = max(STALE_MIN, timedelta(seconds=spec.interval * STALE_AFTER_INTERVALS))
        if rec.error is not None or rec.last_success_at is None or now - rec.last_success_at > stale_after:
            failing.append(rec)
        else:
            healthy.append(rec)

    if not healthy:
        reason = _failure_reason(failing, network_up) if failing else "not polled yet"
        return VendorStatus(vendor, VendorState.UNKNOWN, reason, incidents, maintenances, failing)

    state, reason = _state(healthy, incidents, maintenances)
    if failing:
        reason += (
            f" ({len(failing)} of {len(vendor.sources)} sources failing: {_failure_reason(failing, True)})"
        )
    return VendorStatus(vendor, state, reason, incidents, maintenances, failing)


def _failure_reason(failing: list[SourceRecord], network_up: bool) -> str:
    if not network_up and all(r.error_kind == "network" for r in failing):
        return "network unreachable"
    first = next((r for r in failing if r.error), None)
    if first is None:
        return "no recent data"
    return f"{first.key.split('/', 1)[-1]}: {first.error}"


def _state(
    healthy: list[SourceRecord], incidents: list[Incident], maintenances: list[Incident]
) -> tuple[VendorState, str]:
    comps: dict[str, ComponentStatus] = {}
    maint_titles: list[str] = []
    for rec in healthy:
        s = rec.summary or {}
        for name, status in (s.get("components") or {}).items():
            st = ComponentStatus(status)
            if name not in comps or st.severity > comps[name].severity:
                comps[name] = st
        maint_titles.extend(s.get("maintenance_in_progress") or ())
    down = lambda *ss: sorted(n for n, st in comps.items() if st in ss)  # noqa: E731

    live = [i for i in incidents if i.kind is not IncidentKind.API_CHANGE]
    outages = [i for i in live if i.kind is IncidentKind.OUTAGE]
    majors = down(ComponentStatus.MAJOR_OUTAGE)
    if outages or majors:
        what = outages[0].title if outages else f"major outage of {', '.join(majors[:3])}"
        return VendorState.OUTAGE, _with_count(what, live)
    degraded = down(ComponentStatus.DEGRADED, ComponentStatus.PARTIAL_OUTAGE)
    if live or degraded:
        what = f"{live[0].title} ({live[0].kind})" if live else f"degraded: {', '.join(degraded[:3])}"
        return VendorState.DEGRADED, _with_count(what, live)
    in_progress = [m for m in maintenances if m.phase is MaintenancePhase.IN_PROGRESS]
    if in_progress or maint_titles or down(ComponentStatus.MAINTENANCE):
        what = (
            in_progress[0].title
            if in_progress
            else (maint_titles[0] if maint_titles else "components under maintenance")
        )
        return VendorState.MAINTENANCE, f"maintenance in progress: {what}"
    notes = [i.title for i in incidents if i.kind is IncidentKind.API_CHANGE]
    if notes:
        return VendorState.OPERATIONAL, f"operational; API change announced: {notes[0]}"
    checks = [
        f"{rec.key.split('/', 1)[-1]} {rec.summary['check']}" for rec in healthy if (rec.summary or {}).get("check")
    ]
    if checks and not comps:  # HTTP checks only: say what they measured
        return VendorState.OPERATIONAL, "; ".join(checks[:3])
    return VendorState.OPERATIONAL, "all components operational"


def _with_count(what: str, live: list[Incident]) -> str:
    return what if len(live) <= 1 else f"{what} (+{len(live) - 1} more open incidents)"


def all_statuses(store, vendors: list[VendorSpec], now: datetime) -> list[VendorStatus]:
    """Every watched vendor's status, read from the store in two queries."""
    records = store.sources()
    watched = {s.key for v in vendors for s in v.sources}
    net_up = network_seems_up([r for r in records if r.key in watched])
    open_incidents = store.open_incidents()
    out = []
    for v in vendors:
        mine = [i for i in open_incidents if i.vendor == v.id]
        out.append(vendor_status(v, [r for r in records if r.vendor == v.id], mine, now, network_up=net_up))
    return out
