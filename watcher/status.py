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
    components: list[ComponentTruth] = field(default_factory=list)
    """Per-component truth (:func:`evidence`): the same on the board, the CLI, the API and in alerts."""

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
            "components": [c.to_json() for c in self.components],
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

    state, reason, ev = _state(vendor, healthy, incidents, maintenances)
    if failing:
        reason += (
            f" ({len(failing)} of {len(vendor.sources)} sources failing: {_failure_reason(failing, True)})"
        )
    return VendorStatus(vendor, state, reason, incidents, maintenances, failing, ev.components)


def _failure_reason(failing: list[SourceRecord], network_up: bool) -> str:
    if not network_up and all(r.error_kind == "network" for r in failing):
        return "network unreachable"
    first = next((r for r in failing if r.error), None)
    if first is None:
        return "no recent data"
    return f"{first.key.split('/', 1)[-1]}: {first.error}"


_LEVEL = {  # VendorState by severity, for "worst of" and for capping by the page's own word
    VendorState.OPERATIONAL: 0,
    VendorState.MAINTENANCE: 1,
    VendorState.DEGRADED: 2,
    VendorState.OUTAGE: 3,
}
_BY_LEVEL = {v: k for k, v in _LEVEL.items()}
_FROM_COMPONENT = {
    ComponentStatus.OPERATIONAL: VendorState.OPERATIONAL,
    ComponentStatus.MAINTENANCE: VendorState.MAINTENANCE,
    ComponentStatus.DEGRADED: VendorState.DEGRADED,
    ComponentStatus.PARTIAL_OUTAGE: VendorState.DEGRADED,
    ComponentStatus.MAJOR_OUTAGE: VendorState.OUTAGE,
}
_FROM_INDICATOR = {
    "none": VendorState.OPERATIONAL,
    "maintenance": VendorState.MAINTENANCE,
    "minor": VendorState.DEGRADED,
    "major": VendorState.OUTAGE,
    "critical": VendorState.OUTAGE,
}
_FROM_KIND = {
    IncidentKind.OUTAGE: VendorState.OUTAGE,
    IncidentKind.DEGRADATION: VendorState.DEGRADED,
    IncidentKind.HALLUCINATION_SPIKE: VendorState.DEGRADED,
}
_WORDS = {
    ComponentStatus.DEGRADED: "degraded",
    ComponentStatus.PARTIAL_OUTAGE: "partial outage",
    ComponentStatus.MAJOR_OUTAGE: "major outage",
    ComponentStatus.MAINTENANCE: "under maintenance",
}


def _worst(*states: VendorState) -> VendorState:
    return _BY_LEVEL[max((_LEVEL[s] for s in states), default=0)]


@dataclass(slots=True)
class ComponentTruth:
    """One component as the board, ``watcher status``, the API and the alerts show it."""

    name: str
    status: ComponentStatus | None
    """What the vendor's page says (None: the page does not list it; an incident names it)."""
    state: VendorState
    """After the open incidents that name it (their kind applies to the components they name)."""
    used: bool
    """Whether it counts: after ``components``/``ignore_components`` and ``uses``."""
    incidents: list[int | None] = field(default_factory=list)

    def to_json(self) -> dict:
        return {
            "name": self.name,
            "status": self.status.value if self.status else None,
            "state": self.state.value,
            "used": self.used,
            "incidents": self.incidents,
        }


@dataclass(slots=True)
class Evidence:
    """The per-component truth of one vendor: computed once, shown everywhere."""

    state: VendorState
    reason: str
    components: list[ComponentTruth]
    unscoped: list[tuple[Incident, VendorState, bool]]
    """Open incidents naming no component: (incident, the state it stands for, whether it counts)."""


def incident_uses(vendor: VendorSpec, inc: Incident) -> tuple[bool, list[str]]:
    """Whether an incident touches what the team uses, and the names (components, else words) it touches.

    An incident naming components touches those; one naming none is placed by its
    words ("Support chat unavailable" is support); words we cannot place count.
    """
    from watcher.catalog.uses import capabilities_in_text, used_capabilities

    if inc.components:
        names = [c for c in inc.components if vendor.counts_component(c)] or list(inc.components)
        return any(vendor.uses_component(c) for c in names), names
    if not vendor.uses:
        return True, []
    caps = capabilities_in_text(" ".join([inc.title, *inc.bodies[:1]]))
    wanted = set(used_capabilities(vendor.uses))
    if not caps or not wanted:  # words we cannot place, or a team that named components only: it counts
        return True, sorted(caps)
    return bool(caps & wanted), sorted(caps)


def evidence(
    vendor: VendorSpec, summaries: list[dict], incidents: list[Incident], maintenances: list[Incident]
) -> Evidence:
    """The vendor's state from its page's own evidence and its open incidents.

    - Each component's state is what the page says, or worse when an open incident
      that names it says so (the incident's kind applies to the components it names).
    - An incident naming no component is judged by its kind, its words (what it is
      about: see :func:`incident_uses`) and the page's indicator: a vendor-reported
      incident never makes things worse than the page itself says.
    - The vendor's state is the worst state of the components that count, and of the
      incidents without components that count; the page's indicator stands on its own
      only when nothing on the page explains it.
    """
    published: dict[str, ComponentStatus] = {}
    indicator_state: VendorState | None = None
    maint_titles: list[str] = []
    filtered_bad = False
    for s in summaries:
        filtered_bad |= (s.get("filtered_worst") or "operational") not in ("operational", "unknown")
        for name, status in (s.get("components") or {}).items():
            st = ComponentStatus(status)
            if name not in published or st.severity > published[name].severity:
                published[name] = st
        ind = _FROM_INDICATOR.get((s.get("indicator") or "").lower())
        if ind is not None:
            indicator_state = _worst(indicator_state or VendorState.OPERATIONAL, ind)
        maint_titles.extend(s.get("maintenance_in_progress") or ())
    comps: dict[str, ComponentTruth] = {
        name: ComponentTruth(
            name, st, _FROM_COMPONENT.get(st, VendorState.OPERATIONAL), vendor.uses_component(name)
        )
        for name, st in published.items()
    }
    page_worst = _worst(*(c.state for c in comps.values()))
    cap = _worst(indicator_state, page_worst) if indicator_state is not None else None

    unscoped: list[tuple[Incident, VendorState, bool]] = []
    for inc in incidents:
        st = _FROM_KIND.get(inc.kind)
        if st is None:
            continue  # api_change: a notice, not a state
        if cap is not None and inc.origin != "probe":
            st = _BY_LEVEL[min(_LEVEL[st], _LEVEL[cap])]
        named = [c for c in inc.components if vendor.counts_component(c)]
        if not named:
            used, _ = incident_uses(vendor, inc)
            unscoped.append((inc, st, used))
            continue
        for name in named:
            c = comps.get(name)
            if c is None:
                c = comps[name] = ComponentTruth(name, None, VendorState.OPERATIONAL, vendor.uses_component(name))
            if c.status is None or inc.origin == "probe":
                c.state = _worst(c.state, st)
            c.incidents.append(inc.id)

    counted = [c for c in comps.values() if c.used]
    state = _worst(
        *(c.state for c in counted), *(st for _, st, used in unscoped if used)
    )
    in_progress = [m for m in maintenances if m.phase is MaintenancePhase.IN_PROGRESS]
    if state is VendorState.OPERATIONAL and (in_progress or maint_titles):
        state = VendorState.MAINTENANCE
    unexplained = (
        indicator_state is not None
        and page_worst is VendorState.OPERATIONAL
        and not filtered_bad
        and not unscoped
        and not any(c.status is None and c.incidents for c in comps.values())
    )
    if unexplained and _LEVEL[indicator_state] > _LEVEL[state]:
        state = indicator_state
    reason = _reason(vendor, state, comps, unscoped, incidents, in_progress, maint_titles, indicator_state)
    return Evidence(state, reason, list(comps.values()), unscoped)


def _reason(vendor, state, comps, unscoped, incidents, in_progress, maint_titles, indicator_state) -> str:
    from watcher.catalog.uses import label, used_capabilities

    bad: list[str] = []
    quiet: list[str] = []
    for inc, st, used in unscoped:  # the vendor's own words first: they name what is wrong
        text = f"{inc.title} ({inc.kind.value})"
        if st is VendorState.OPERATIONAL:
            text += ", the page says all is well"
        (bad if used else quiet).append(text)
    for c in sorted(comps.values(), key=lambda c: -_LEVEL[c.state]):
        if c.state is VendorState.OPERATIONAL:
            continue
        word = _WORDS.get(c.status) if c.status is not None and c.state is _FROM_COMPONENT.get(c.status) else None
        text = f"{c.name} {word or c.state.value}"
        named_by = [i.title for i in incidents if i.id in c.incidents and i.id is not None]
        if named_by:
            text += f" ({named_by[0]})"
        (bad if c.used else quiet).append(text)
    parts: list[str] = []
    if bad:
        parts.append("; ".join(bad[:3]) + (f" (+{len(bad) - 3} more)" if len(bad) > 3 else ""))
    if state is VendorState.MAINTENANCE and not bad:
        what = in_progress[0].title if in_progress else (maint_titles[0] if maint_titles else None)
        parts.append(f"maintenance in progress: {what}" if what else "components under maintenance")
    if quiet:
        parts.append("not used by the team: " + "; ".join(quiet[:3]) + (f" (+{len(quiet) - 3})" if len(quiet) > 3 else ""))
    ok = [c for c in comps.values() if c.used and c.state is VendorState.OPERATIONAL]
    caps = used_capabilities(vendor.uses)
    if caps:
        fine = [label(cap) for cap in caps if _cap_fine(vendor, cap, comps)]
        if fine:
            parts.append(" and ".join([", ".join(fine[:-1]), fine[-1]] if len(fine) > 1 else fine) + " operational")
    elif ok and parts:
        names = [c.name for c in ok]
        parts.append(
            (" and ".join(names) if len(names) <= 2 else f"{len(names)} other components") + " operational"
        )
    if not parts:
        if state is not VendorState.OPERATIONAL and indicator_state is not None:
            return f"the page says {state.value}, naming no component"
        notes = [i.title for i in incidents if i.kind is IncidentKind.API_CHANGE]
        if notes:
            return f"operational; API change announced: {notes[0]}"
        return "all components operational" if comps else ""
    return "; ".join(parts)


def _cap_fine(vendor: VendorSpec, cap: str, comps: dict[str, ComponentTruth]) -> bool:
    """A used capability with at least one component on the page and none of them in trouble."""
    from watcher.catalog.uses import capabilities_of

    mine = [c for c in comps.values() if cap in capabilities_of(c.name, vendor.capabilities)]
    return bool(mine) and all(c.state is VendorState.OPERATIONAL for c in mine)


def _state(
    vendor: VendorSpec, healthy: list[SourceRecord], incidents: list[Incident], maintenances: list[Incident]
) -> tuple[VendorState, str, Evidence]:
    ev = evidence(vendor, [rec.summary or {} for rec in healthy], incidents, maintenances)
    if ev.reason:
        return ev.state, ev.reason, ev
    checks = [
        f"{rec.key.split('/', 1)[-1]} {rec.summary['check']}" for rec in healthy if (rec.summary or {}).get("check")
    ]
    if checks:  # HTTP checks only: say what they measured
        return ev.state, "; ".join(checks[:3]), ev
    return ev.state, "all components operational", ev


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
