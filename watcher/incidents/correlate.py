"""Merge a source's snapshot into the vendor's incidents: open, update, resolve.

Pure: :func:`reconcile` takes the snapshot and the incidents it may touch, and
returns the changed incidents with their new events. The caller loads and saves.

The rules, in order:

1. Every vendor report (incident or maintenance) is matched by its key, the
   vendor's own id, which JSON and feed items share. New updates become events,
   deduplicated on their content so the same update seen twice is one event.
2. A report that is new and already closed is recorded as *backfilled* (history
   on first poll) and never alerted. A closed report ends an open incident; a
   new update on a resolved one reopens it.
3. A source whose list is the set of *open* incidents (``summary.json``) ends
   every incident it listed before and lists no more.
4. Component states are evidence. With no vendor incident open, components that
   are down open a ``components`` incident (status pages flip components before
   anyone writes an incident); the vendor's incident, when it comes, adopts it
   instead of opening a second one. Group rows never count, so a group and its
   child do not double-count.
5. Reports from watcher's own detectors (``Report.kind`` set) carry a measured
   kind, which the text classifier never overrides. They open a ``probe``
   incident only when no vendor incident is open; otherwise they join the
   vendor's incident as a MEASURED event. A vendor report adopts an open probe
   incident as it adopts a components one. A detector that clears resolves only
   the incident it opened itself: it never closes what the vendor still calls open.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime

from watcher.i18n import Said
from watcher.incidents import wording
from watcher.incidents.model import (
    EventType,
    Incident,
    IncidentEvent,
    IncidentState,
    MaintenancePhase,
)
from watcher.model import (
    Classification,
    Component,
    ComponentStatus,
    Evidence,
    IncidentKind,
    IncidentScope,
    IncidentStatus,
    Report,
    Snapshot,
    component_keys,
)

MAX_BODIES = 8
_DOWN = (ComponentStatus.DEGRADED, ComponentStatus.PARTIAL_OUTAGE, ComponentStatus.MAJOR_OUTAGE)

Classifier = Callable[[Evidence], Classification]


@dataclass(slots=True)
class Change:
    """An incident that must be saved, with the events (possibly none) that its change produced."""

    incident: Incident
    events: list[IncidentEvent]


@dataclass(frozen=True, slots=True)
class Context:
    vendor: str
    source: str
    """``vendor/source`` key of the source that produced the snapshot."""
    now: datetime
    counts_component: Callable[[str], bool] = lambda name: True


def reconcile(
    ctx: Context,
    snapshot: Snapshot,
    known: Iterable[Incident],
    classifier: Classifier | None = None,
) -> list[Change]:
    """Apply one snapshot. ``known`` must hold the vendor's open incidents and any
    incident whose key appears in the snapshot (open or resolved)."""
    if classifier is None:
        from watcher.incidents.classify import classify

        classifier = classify
    by_key: dict[str, Incident] = {}
    incidents: list[Incident] = []
    for inc in known:
        incidents.append(inc)
        for k in inc.keys:
            by_key[k] = inc
    changes: dict[int, Change] = {}

    def touch(inc: Incident, event: IncidentEvent | None = None) -> None:
        ch = changes.get(id(inc))
        if ch is None:
            ch = changes[id(inc)] = Change(inc, [])
        # A backfilled incident (first seen already over) is history: it is kept
        # up to date but produces no event beyond the one that recorded it.
        if event is not None and (not inc.backfilled or event.type is EventType.BACKFILLED):
            ch.events.append(event)

    reports: list[Report] = []
    for group in (snapshot.incidents, snapshot.maintenances):
        for r in group or ():
            if r.components and not any(ctx.counts_component(c) for c in r.components):
                continue  # the user filtered out every component it touches
            reports.append(r)

    for r in reports:
        found = by_key.get(r.key)
        if found is None and r.kind is not None:
            joined = _measured_joins(ctx, incidents, r, touch)
            if joined is not None:
                by_key[r.key] = joined
                joined.active_sources.add(ctx.source)
                continue
        if found is not None:
            inc = found
        else:
            adopted = _adoptable(incidents, r)
            if adopted is not None:
                inc = adopted
                inc.keys.add(r.key)
                by_key[r.key] = inc
                inc.origin = "vendor"
                touch(
                    inc,
                    IncidentEvent(EventType.MERGED, ctx.now, Said("incident_event.merged", title=r.title), source=ctx.source),
                )
            else:
                inc = _new(ctx, r)
                incidents.append(inc)
                by_key[r.key] = inc
                kind = EventType.BACKFILLED if inc.backfilled else EventType.OPENED
                touch(inc, IncidentEvent(kind, ctx.now, r.title, status=r.status.value, source=ctx.source))
        _merge_report(ctx, inc, r, touch)

    listed = {r.key for r in reports}
    for scope, published, maint in (
        (snapshot.incident_scope, snapshot.incidents, False),
        (snapshot.maintenance_scope, snapshot.maintenances, True),
    ):
        if scope is not IncidentScope.ACTIVE or published is None:
            continue
        for inc in incidents:
            if inc.is_maintenance != maint or ctx.source not in inc.active_sources:
                continue
            if inc.keys & listed:
                continue
            inc.active_sources.discard(ctx.source)
            marker = _marker(ctx)
            if inc.is_open and inc.origin != "probe" and marker in inc.keys:
                # our detector cleared, but the vendor still calls it open: note it, do not close it
                inc.keys.discard(marker)
                touch(
                    inc,
                    IncidentEvent(
                        EventType.MEASURED, ctx.now, Said("incident_event.probes_cleared"), source=ctx.source
                    ),
                )
                continue
            if inc.is_open:
                what = Said(
                    "incident_event.maintenance_unlisted"
                    if maint
                    else (
                        "incident_event.probes_working" if inc.origin == "probe" else "incident_event.unlisted"
                    )
                )
                _resolve(ctx, inc, what, touch)

    if snapshot.components is not None:
        _apply_components(ctx, snapshot.components, incidents, touch)

    for ch in changes.values():
        _classify(ctx, ch, classifier)
        if ch.events:
            ch.incident.revision += 1
            ch.incident.updated_at = ctx.now
    return list(changes.values())


def _adoptable(incidents: list[Incident], r: Report) -> Incident | None:
    """An open component- or probe-derived incident that this new, open vendor report explains."""
    if r.is_maintenance or r.status.is_closed or r.kind is not None:
        return None
    for inc in incidents:
        if inc.is_open and inc.origin in ("components", "probe") and not inc.is_maintenance:
            return inc
    return None


def _marker(ctx: Context) -> str:
    """The key that says "this source's detector is part of this incident"."""
    return f"measured-by:{ctx.source}"


def _measured_joins(
    ctx: Context, incidents: list[Incident], r: Report, touch: Callable[..., None]
) -> Incident | None:
    """An open vendor incident that our detector's finding confirms: the finding joins it."""
    for inc in incidents:
        if inc.is_open and not inc.is_maintenance and inc.origin in ("vendor", "components"):
            inc.keys.add(r.key)
            inc.keys.add(_marker(ctx))
            touch(
                inc,
                IncidentEvent(
                    EventType.MEASURED,
                    ctx.now,
                    Said("incident_event.probes_confirm", what=r.reason or r.title),
                    source=ctx.source,
                ),
            )
            return inc
    return None


def _new(ctx: Context, r: Report) -> Incident:
    if r.kind is not None and not r.status.is_closed:
        return Incident(
            vendor=ctx.vendor,
            title=r.title,
            kind=r.kind,
            reason=r.reason or r.title,
            opened_at=ctx.now,
            updated_at=ctx.now,
            status=r.status,
            impact=r.impact,
            origin="probe",
            started_at=r.started_at or ctx.now,
            components=list(r.components),
            keys={r.key, _marker(ctx)},
        )
    closed = r.status.is_closed
    inc = Incident(
        vendor=ctx.vendor,
        title=r.title,
        kind=IncidentKind.MAINTENANCE if r.is_maintenance else IncidentKind.DEGRADATION,
        reason="",
        opened_at=ctx.now,
        updated_at=ctx.now,
        state=IncidentState.RESOLVED if closed else IncidentState.OPEN,
        status=r.status,
        impact=r.impact,
        is_maintenance=r.is_maintenance,
        backfilled=closed,
        started_at=r.started_at or r.updated_at,
        resolved_at=(r.resolved_at or r.updated_at or ctx.now) if closed else None,
        url=r.url,
        keys={r.key},
    )
    if r.is_maintenance:
        inc.phase = _phase(r.status)
    return inc


def _phase(status: IncidentStatus) -> MaintenancePhase:
    if status in (IncidentStatus.IN_PROGRESS, IncidentStatus.VERIFYING):
        return MaintenancePhase.IN_PROGRESS
    if status.is_closed:
        return MaintenancePhase.COMPLETED
    return MaintenancePhase.UPCOMING


_WS = re.compile(r"\W+", re.UNICODE)


def content_key(status: str, body: str) -> str:
    """Same update text, whatever markup or whitespace it came in: same key."""
    norm = _WS.sub(" ", body).strip().lower()[:500]
    return hashlib.sha1(f"{status}|{norm}".encode()).hexdigest()[:16]


def _merge_report(ctx: Context, inc: Incident, r: Report, touch: Callable[..., None]) -> None:
    if r.kind is not None and inc.origin == "probe":
        if r.kind != inc.kind and inc.is_open:
            touch(inc, IncidentEvent(EventType.KIND_CHANGED, ctx.now, _kind_changed(inc.kind, r.kind, r.reason)))
            inc.kind = r.kind
        if r.title != inc.title:
            inc.title = r.title
            touch(inc)
        if r.reason and r.reason != inc.reason:
            inc.reason = r.reason
            touch(inc)
    if r.url and not inc.url:
        inc.url = r.url
    if r.title and r.title != inc.title and inc.origin == "vendor":
        inc.title = r.title
        touch(inc)
    if r.impact and r.impact != inc.impact:
        inc.impact = r.impact
        touch(inc)
    for field_name in ("scheduled_for", "scheduled_until", "started_at"):
        value = getattr(r, field_name)
        if value is not None and getattr(inc, field_name) != value:
            setattr(inc, field_name, value)
            touch(inc)
    new_components = [c for c in r.components if c not in inc.components]
    if new_components:
        inc.components.extend(new_components)
        touch(
            inc,
            IncidentEvent(
                EventType.COMPONENTS_CHANGED, ctx.now, ", ".join(new_components), source=ctx.source
            ),
        )

    fresh = False
    for u in r.updates:
        key = content_key(u.status.value, u.body)
        if u.id in inc.seen_updates or key in inc.seen_updates:
            continue
        inc.seen_updates.update((u.id, key))
        if u.body:
            inc.bodies.append(u.body)
            del inc.bodies[:-MAX_BODIES]
        for cc in u.component_changes:
            if cc.name and ctx.counts_component(cc.name):
                inc.component_statuses[cc.name] = cc.new_status
        fresh = True
        touch(
            inc,
            IncidentEvent(
                EventType.VENDOR_UPDATE,
                u.created_at or ctx.now,
                u.body,
                status=u.status.value,
                source=ctx.source,
                dedupe=key,
            ),
        )
    if r.extra_text and content_key("extra", r.extra_text) not in inc.seen_updates:
        inc.seen_updates.add(content_key("extra", r.extra_text))
        inc.bodies.append(r.extra_text)
        del inc.bodies[:-MAX_BODIES]
        fresh = True
        touch(inc)

    if r.status is not IncidentStatus.UNKNOWN and r.status != inc.status:
        old = inc.status
        inc.status = r.status
        if inc.is_open and not r.status.is_closed:
            touch(
                inc,
                IncidentEvent(
                    EventType.STATUS_CHANGED,
                    ctx.now,
                    Said("incident_event.status_changed", old=str(old), new=str(r.status)),
                    status=r.status.value,
                ),
            )
        else:
            touch(inc)

    if inc.is_maintenance:
        phase = _phase(r.status) if r.status is not IncidentStatus.UNKNOWN else inc.phase
        if phase is MaintenancePhase.IN_PROGRESS and inc.phase is MaintenancePhase.UPCOMING:
            inc.phase = phase
            touch(inc, IncidentEvent(EventType.MAINTENANCE_STARTED, ctx.now, r.title, status=r.status.value))
        elif phase is not None and phase is not inc.phase and phase is not MaintenancePhase.COMPLETED:
            inc.phase = phase
            touch(inc)

    if r.status.is_closed:
        if inc.is_open:
            _resolve(ctx, inc, Said("incident_event.vendor_marked", status=str(r.status)), touch, at=r.resolved_at)
    else:
        if not inc.is_open and fresh and not inc.backfilled:
            inc.state = IncidentState.OPEN
            inc.resolved_at = None
            touch(
                inc,
                IncidentEvent(EventType.REOPENED, ctx.now, Said("incident_event.reopened", status=str(r.status))),
            )
        if r.status is not IncidentStatus.UNKNOWN:
            inc.active_sources.add(ctx.source)


def _resolve(
    ctx: Context, inc: Incident, why: str, touch: Callable[..., None], at: datetime | None = None
) -> None:
    inc.state = IncidentState.RESOLVED
    inc.resolved_at = at or ctx.now
    if inc.is_maintenance:
        inc.phase = MaintenancePhase.COMPLETED
    touch(inc, IncidentEvent(EventType.RESOLVED, ctx.now, why, status=inc.status.value, source=ctx.source))


def _apply_components(
    ctx: Context, components: tuple[Component, ...], incidents: list[Incident], touch: Callable[..., None]
) -> None:
    keyed = [(k, c) for k, c in component_keys(components) if ctx.counts_component(k)]
    counted = [c for _, c in keyed]
    down = {k: c.status for k, c in keyed if c.status in _DOWN}
    open_vendor = [i for i in incidents if i.is_open and not i.is_maintenance and i.origin == "vendor"]
    for inc in open_vendor:
        names = inc.components or list(down)
        for name in names:
            status = next((c.status for c in counted if c.name == name), None)
            if status is not None and inc.component_statuses.get(name) != status:
                inc.component_statuses[name] = status
                touch(inc)

    synthetic_key = f"components:{ctx.source}"
    synthetic = next((i for i in incidents if synthetic_key in i.keys and i.is_open), None)
    if synthetic is not None:
        if not down:
            _resolve(ctx, synthetic, Said("incident_event.components_ok"), touch)
        elif dict(synthetic.component_statuses) != down:
            synthetic.component_statuses = dict(down)
            synthetic.components = sorted(down)
            synthetic.title = _component_title(down)
            touch(
                synthetic,
                IncidentEvent(EventType.COMPONENTS_CHANGED, ctx.now, synthetic.title, source=ctx.source),
            )
    elif down and not open_vendor:
        inc = Incident(
            vendor=ctx.vendor,
            title=_component_title(down),
            kind=IncidentKind.DEGRADATION,
            reason="",
            opened_at=ctx.now,
            updated_at=ctx.now,
            origin="components",
            components=sorted(down),
            component_statuses=dict(down),
            keys={f"{synthetic_key}:{ctx.now.isoformat()}", synthetic_key},
        )
        incidents.append(inc)
        touch(inc, IncidentEvent(EventType.OPENED, ctx.now, inc.title, source=ctx.source))


def _component_title(down: dict[str, ComponentStatus]) -> str:
    """``Partial outage: Chat, API and 2 more``: the worst status and the names (English stored;
    :func:`watcher.incidents.wording.say_title` says it in the team's language)."""
    worst = max(down.values(), key=lambda s: s.severity)
    return wording.component_title(worst.value, sorted(down))


def _kind_changed(old: IncidentKind, new: IncidentKind, reason: str) -> Said:
    return Said("incident_event.kind_changed", old=old.value, new=new.value, reason=reason)


def _classify(ctx: Context, ch: Change, classifier: Classifier) -> None:
    inc = ch.incident
    if not inc.classified_by_text:
        return
    result = classifier(inc.evidence())
    first = not inc.reason
    if result.kind != inc.kind and not first and inc.is_open:
        ch.events.append(
            IncidentEvent(EventType.KIND_CHANGED, ctx.now, _kind_changed(inc.kind, result.kind, result.reason))
        )
    inc.kind = result.kind
    inc.reason = result.reason
