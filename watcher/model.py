"""Typed values that flow between the stages: sources → observations → incidents.

Everything here is plain data (frozen dataclasses and string enums). Sources build
these values from documents; the incident engine consumes them; the store
persists them. Nothing here does I/O.

A source that does not publish a piece of information says ``None`` for it, never
an empty collection: incident.io's reduced Statuspage form may omit ``incidents``
altogether, and "not published" must never be read as "all good".
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

SELF_VENDOR = "watcher"
"""The vendor id of incidents about watcher itself, such as "our network is down"."""

class ComponentStatus(StrEnum):
    """A component's state, normalised across every status-page platform."""

    OPERATIONAL = "operational"
    DEGRADED = "degraded_performance"
    PARTIAL_OUTAGE = "partial_outage"
    MAJOR_OUTAGE = "major_outage"
    MAINTENANCE = "under_maintenance"
    UNKNOWN = "unknown"

    @property
    def severity(self) -> int:
        """Order for "worst of": unknown sorts below operational so it never masks real news."""
        return _COMPONENT_SEVERITY[self]


_COMPONENT_SEVERITY = {
    ComponentStatus.UNKNOWN: -1,
    ComponentStatus.OPERATIONAL: 0,
    ComponentStatus.MAINTENANCE: 1,
    ComponentStatus.DEGRADED: 2,
    ComponentStatus.PARTIAL_OUTAGE: 3,
    ComponentStatus.MAJOR_OUTAGE: 4,
}


class IncidentStatus(StrEnum):
    """Lifecycle status as the vendor states it, normalised.

    Incidents walk investigating → identified → monitoring → resolved (→ postmortem);
    maintenances walk scheduled → in_progress → verifying → completed.
    """

    INVESTIGATING = "investigating"
    IDENTIFIED = "identified"
    MONITORING = "monitoring"
    UPDATE = "update"
    RESOLVED = "resolved"
    POSTMORTEM = "postmortem"
    SCHEDULED = "scheduled"
    IN_PROGRESS = "in_progress"
    VERIFYING = "verifying"
    COMPLETED = "completed"
    UNKNOWN = "unknown"

    @property
    def is_closed(self) -> bool:
        return self in (IncidentStatus.RESOLVED, IncidentStatus.POSTMORTEM, IncidentStatus.COMPLETED)


class IncidentKind(StrEnum):
    """The one kind every incident is classified as."""

    OUTAGE = "outage"
    DEGRADATION = "degradation"
    API_CHANGE = "api_change"
    HALLUCINATION_SPIKE = "hallucination_spike"
    MAINTENANCE = "maintenance"


class VendorState(StrEnum):
    """What `watcher status` says about a vendor as a whole."""

    OPERATIONAL = "operational"
    DEGRADED = "degraded"
    OUTAGE = "outage"
    MAINTENANCE = "maintenance"
    UNKNOWN = "unknown"


class IncidentScope(StrEnum):
    """How complete a source's list of incidents is.

    ACTIVE: the list is every currently open incident (Statuspage ``summary.json``,
    Instatus ``activeIncidents``): an incident that disappears from it has ended.
    HISTORY: recent incidents, open and closed, each with its own status (feeds,
    ``incidents.json``): absence means nothing.
    """

    ACTIVE = "active"
    HISTORY = "history"


@dataclass(frozen=True, slots=True)
class Component:
    """One component row of a status page.

    Group rows (``is_group``) carry the worst status of their children; they are
    kept for display but never counted as evidence on their own, so a group and
    its child do not raise two alarms.
    """

    id: str
    name: str
    status: ComponentStatus
    group_id: str | None = None
    is_group: bool = False


@dataclass(frozen=True, slots=True)
class ComponentChange:
    """A component status change that a vendor attached to an incident update."""

    component_id: str
    name: str
    old_status: ComponentStatus
    new_status: ComponentStatus


@dataclass(frozen=True, slots=True)
class Update:
    """One vendor update on an incident (a line of its timeline)."""

    id: str
    status: IncidentStatus
    body: str
    created_at: datetime | None
    component_changes: tuple[ComponentChange, ...] = ()


@dataclass(frozen=True, slots=True)
class Report:
    """What one source says about one vendor incident or maintenance.

    ``key`` identifies the event across sources of the same vendor: a Statuspage
    incident id, and the same id recovered from a feed item's link, so that the
    JSON incident and its feed item merge into one incident.
    """

    key: str
    title: str
    status: IncidentStatus
    impact: str | None = None
    is_maintenance: bool = False
    url: str | None = None
    started_at: datetime | None = None
    updated_at: datetime | None = None
    resolved_at: datetime | None = None
    scheduled_for: datetime | None = None
    scheduled_until: datetime | None = None
    components: tuple[str, ...] = ()
    """Names of the components the vendor says are affected."""
    updates: tuple[Update, ...] = ()
    """Oldest first."""
    extra_text: str = ""
    """Text that is not an update body but is evidence (feed item descriptions)."""
    kind: IncidentKind | None = None
    """Set by watcher's own detectors: the kind is measured, not read from text."""
    reason: str = ""
    """With ``kind``: the evidence in plain words ("12 of the last 40 canary answers wrong")."""


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Everything one fetched document says, parsed. The output of every source parser.

    ``components``/``incidents`` are ``None`` when the document does not publish them.
    """

    components: tuple[Component, ...] | None = None
    incidents: tuple[Report, ...] | None = None
    incident_scope: IncidentScope = IncidentScope.HISTORY
    maintenances: tuple[Report, ...] | None = None
    maintenance_scope: IncidentScope = IncidentScope.HISTORY
    indicator: str | None = None
    """The page's own roll-up (``none``/``minor``/``major``/``critical``/``maintenance``), display only."""
    page_name: str | None = None
    page_url: str | None = None


@dataclass(frozen=True, slots=True)
class Observation:
    """One poll of one source: the snapshot it produced, or the error it met."""

    vendor: str
    source_id: str
    fetched_at: datetime
    snapshot: Snapshot | None = None
    error: str | None = None
    error_kind: str | None = None
    """Machine-readable error class: ``network``, ``timeout``, ``http``, ``too_large``, ``parse``, ``tls``."""
    changed: bool = True
    """False when the document was unchanged since the last poll (304, or same content hash)."""

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass(frozen=True, slots=True)
class Classification:
    kind: IncidentKind
    reason: str


@dataclass(slots=True)
class Evidence:
    """All that is known about one incident, the input of the classifier."""

    title: str
    bodies: list[str] = field(default_factory=list)
    impact: str | None = None
    status: IncidentStatus | None = None
    is_maintenance: bool = False
    component_statuses: list[ComponentStatus] = field(default_factory=list)
    components: list[str] = field(default_factory=list)
    vendor: str | None = None
    source_type: str | None = None
    """The format the incident was read from (``statuspage``, ``feed``, ``html``, ...), when known."""
    lang: str | None = None
    """The language of the text (ISO 639-1) when the source states it; guessed from the text otherwise."""


def component_keys(components) -> list[tuple[str, Component]]:
    """(key, component) for every non-group component; nothing merged away.

    The key is the component's name, which incidents use too; a name that appears in
    several groups (regions, products) is keyed ``Group / Name`` so each stays itself.
    """
    group_names = {c.id: c.name for c in components if c.is_group}
    rows = [c for c in components if not c.is_group]
    count: dict[str, int] = {}
    for c in rows:
        count[c.name] = count.get(c.name, 0) + 1
    out = []
    for c in rows:
        key = c.name
        if count[c.name] > 1 and c.group_id:
            key = f"{group_names.get(c.group_id, c.group_id)} / {c.name}"
        out.append((key, c))
    return out
