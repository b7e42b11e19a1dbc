"""A vendor's overall state, from its sources' last polls and its open incidents.

Pure. The order of precedence says what a marketer needs to know first: an outage
beats a degradation beats maintenance. A vendor we cannot see is ``unknown``, with
the reason ("network unreachable" when our own network is the problem), never
"down": we do not call a vendor down because we cannot reach the internet.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from watcher import i18n
from watcher.catalog import VendorSpec
from watcher.i18n import Listed, Said
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
    """English (what the CLI, the API and the logs show); :meth:`reason_in` says it in another language."""
    incidents: list[Incident] = field(default_factory=list)
    maintenances: list[Incident] = field(default_factory=list)
    failing_sources: list[SourceRecord] = field(default_factory=list)
    components: list[ComponentTruth] = field(default_factory=list)
    """Per-component truth (:func:`evidence`): the same on the board, the CLI, the API and in alerts."""

    def reason_in(self, locale: str | None) -> str:
        """The reason in ``locale``: watcher's words translated, the vendor's (titles, names, errors) as they are."""
        return i18n.say(self.reason, locale)

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
            vendor, VendorState.UNKNOWN, Said("vendor_state.no_source"), incidents, maintenances
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
        why = _failure_reason(failing, network_up) if failing else Said("vendor_state.not_polled")
        return VendorStatus(vendor, VendorState.UNKNOWN, why, incidents, maintenances, failing)

    state, reason, ev = _state(vendor, healthy, incidents, maintenances)
    if failing:
        reason = Said(
            "vendor_state.with_failing",
            reason=reason,
            n=len(failing),
            total=len(vendor.sources),
            failure=_failure_reason(failing, True),
        )
    return VendorStatus(vendor, state, reason, incidents, maintenances, failing, ev.components)


def _failure_reason(failing: list[SourceRecord], network_up: bool) -> Said:
    if not network_up and all(r.error_kind == "network" for r in failing):
        return Said("vendor_state.network_unreachable")
    first = next((r for r in failing if r.error), None)
    if first is None:
        return Said("vendor_state.no_recent_data")
    return Said("vendor_state.source_error", source=first.key.split("/", 1)[-1], error=first.error)


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
_WORDS = {  # a component's own status, in words (vendor_state.word.* in the locale files)
    ComponentStatus.DEGRADED,
    ComponentStatus.PARTIAL_OUTAGE,
    ComponentStatus.MAJOR_OUTAGE,
    ComponentStatus.MAINTENANCE,
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
    """A :class:`~watcher.i18n.Said`: the English words, which :func:`watcher.i18n.say` says in another language."""
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
            cst = ComponentStatus(status)
            if name not in published or cst.severity > published[name].severity:
                published[name] = cst
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
        found = _FROM_KIND.get(inc.kind)
        if found is None:
            continue  # api_change: a notice, not a state
        st: VendorState = found
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
    if unexplained and indicator_state is not None and _LEVEL[indicator_state] > _LEVEL[state]:
        state = indicator_state
    reason = _reason(vendor, state, comps, unscoped, incidents, in_progress, maint_titles, indicator_state)
    return Evidence(state, reason, list(comps.values()), unscoped)


def _reason(vendor, state, comps, unscoped, incidents, in_progress, maint_titles, indicator_state) -> Said:
    """The vendor's state in one line, made of message keys (``vendor_state.*``) and the vendor's own words
    (titles, component names): English as a string, any language with :func:`watcher.i18n.say`."""
    from watcher.catalog.uses import used_capabilities

    bad: list[Said] = []
    quiet: list[Said] = []
    for inc, st, used in unscoped:  # the vendor's own words first: they name what is wrong
        text = Said("vendor_state.incident", title=inc.title, kind=Said(f"vendor_state.kind.{inc.kind.value}"))
        if st is VendorState.OPERATIONAL:
            text = Said("vendor_state.page_says_well", text=text)
        (bad if used else quiet).append(text)
    for c in sorted(comps.values(), key=lambda c: -_LEVEL[c.state]):
        if c.state is VendorState.OPERATIONAL:
            continue
        own = c.status is not None and c.status in _WORDS and c.state is _FROM_COMPONENT.get(c.status)
        word = c.status.value if own and c.status is not None else c.state.value
        text = Said("vendor_state.component", name=c.name, state=Said(f"vendor_state.word.{word}"))
        named_by = [i.title for i in incidents if i.id in c.incidents and i.id is not None]
        if named_by:
            text = Said("vendor_state.named_by", text=text, title=named_by[0])
        (bad if c.used else quiet).append(text)
    parts: list[object] = []
    if bad:
        listed: object = Listed(bad[:3], "vendor_state.sep")
        parts.append(Said("vendor_state.more", text=listed, n=len(bad) - 3) if len(bad) > 3 else listed)
    if state is VendorState.MAINTENANCE and not bad:
        what = in_progress[0].title if in_progress else (maint_titles[0] if maint_titles else None)
        parts.append(
            Said("vendor_state.maintenance_in_progress", what=what) if what else Said("vendor_state.under_maintenance")
        )
    if quiet:
        listed = Listed(quiet[:3], "vendor_state.sep")
        if len(quiet) > 3:
            listed = Said("vendor_state.not_used_more", text=listed, n=len(quiet) - 3)
        parts.append(Said("vendor_state.not_used", parts=listed))
    ok = [c for c in comps.values() if c.used and c.state is VendorState.OPERATIONAL]
    caps = used_capabilities(vendor.uses)
    if caps:
        fine = [_Capability(cap) for cap in caps if _cap_fine(vendor, cap, comps)]
        if fine:
            what = Listed(fine, "vendor_state.list_sep", "vendor_state.list_and")
            parts.append(Said("vendor_state.operational", what=what))
    elif ok and parts:
        names = [c.name for c in ok]
        what = (
            Listed(names, "vendor_state.list_and")
            if len(names) <= 2
            else Said("vendor_state.other_components", n=len(names))
        )
        parts.append(Said("vendor_state.operational", what=what))
    if not parts:
        if state is not VendorState.OPERATIONAL and indicator_state is not None:
            return Said("vendor_state.page_says", state=Said(f"vendor_state.word.{state.value}"))
        notes = [i.title for i in incidents if i.kind is IncidentKind.API_CHANGE]
        if notes:
            return Said("vendor_state.api_change", title=notes[0])
        return Said("vendor_state.all_operational") if comps else Said("vendor_state.none")
    return Said("vendor_state.parts", parts=Listed(parts, "vendor_state.sep"))


class _Capability(str):
    """What the team uses a vendor for (``chat app``), in the catalog's words for each language."""

    cap: str

    def __new__(cls, cap: str) -> _Capability:
        from watcher.catalog.uses import label

        self = super().__new__(cls, label(cap))
        self.cap = cap
        return self

    def say(self, locale: str | None) -> str:
        from watcher.catalog.uses import label

        return label(self.cap, i18n.lang(locale))

    def __reduce__(self):
        return (_Capability, (self.cap,))


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
        Said("vendor_state.http_check", source=rec.key.split("/", 1)[-1], check=(rec.summary or {})["check"])
        for rec in healthy
        if (rec.summary or {}).get("check")
    ]
    if checks:  # HTTP checks only: say what they measured
        return ev.state, Listed(checks[:3], "vendor_state.sep"), ev
    return ev.state, Said("vendor_state.all_operational"), ev


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
