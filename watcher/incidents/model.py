"""The incident as watcher tracks it: one per vendor event, whatever signals reported it.

An :class:`Incident` is the merged view of every :class:`~watcher.model.Report`
and component change about one event. Each change to it is an
:class:`IncidentEvent`; downstream stages (alerts) act on events, not on polls.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from watcher.model import ComponentStatus, Evidence, IncidentKind, IncidentStatus


class IncidentState(StrEnum):
    OPEN = "open"
    RESOLVED = "resolved"


class MaintenancePhase(StrEnum):
    UPCOMING = "upcoming"
    IN_PROGRESS = "in_progress"
    COMPLETED = "completed"


class EventType(StrEnum):
    OPENED = "opened"
    """A new incident (or maintenance announcement)."""
    VENDOR_UPDATE = "vendor_update"
    """The vendor posted an update."""
    STATUS_CHANGED = "status_changed"
    """The vendor's status word changed (investigating → identified …)."""
    KIND_CHANGED = "kind_changed"
    """New evidence changed the classification."""
    COMPONENTS_CHANGED = "components_changed"
    MERGED = "merged"
    """Another signal about the same event joined this incident."""
    MAINTENANCE_STARTED = "maintenance_started"
    RESOLVED = "resolved"
    REOPENED = "reopened"
    MEASURED = "measured"
    """watcher's own probes confirm (or stop seeing) what an open vendor incident says."""
    BACKFILLED = "backfilled"
    """First seen already over (history feeds on first poll): recorded, never alerted."""


# Events worth telling people about; the rest are kept for the timeline.
NOTIFIABLE = frozenset(
    {
        EventType.OPENED,
        EventType.VENDOR_UPDATE,
        EventType.KIND_CHANGED,
        EventType.MAINTENANCE_STARTED,
        EventType.RESOLVED,
        EventType.REOPENED,
    }
)


@dataclass(slots=True)
class IncidentEvent:
    type: EventType
    at: datetime
    text: str = ""
    status: str | None = None
    source: str | None = None
    dedupe: str | None = None
    """Content key: the same vendor update seen through JSON and through a feed is one event."""


@dataclass(slots=True)
class Incident:
    vendor: str
    title: str
    kind: IncidentKind
    reason: str
    opened_at: datetime
    updated_at: datetime
    id: int | None = None
    state: IncidentState = IncidentState.OPEN
    status: IncidentStatus = IncidentStatus.INVESTIGATING
    impact: str | None = None
    is_maintenance: bool = False
    phase: MaintenancePhase | None = None
    origin: str = "vendor"
    """``vendor`` when the vendor reported it, ``components`` when opened from component states alone."""
    backfilled: bool = False
    started_at: datetime | None = None
    resolved_at: datetime | None = None
    scheduled_for: datetime | None = None
    scheduled_until: datetime | None = None
    url: str | None = None
    components: list[str] = field(default_factory=list)
    component_statuses: dict[str, ComponentStatus] = field(default_factory=dict)
    keys: set[str] = field(default_factory=set)
    active_sources: set[str] = field(default_factory=set)
    """Sources whose list of *open* incidents has included this one: leaving such a list ends it."""
    seen_updates: set[str] = field(default_factory=set)
    bodies: list[str] = field(default_factory=list)
    """Recent update texts, newest last, for the classifier and for display."""
    revision: int = 0

    @property
    def is_open(self) -> bool:
        return self.state is IncidentState.OPEN

    @property
    def latest_update(self) -> str:
        return self.bodies[-1] if self.bodies else ""

    @property
    def classified_by_text(self) -> bool:
        """False for incidents our own probes opened: their kind is measured, there is no text to read."""
        return self.origin != "probe"

    def evidence(self) -> Evidence:
        """What the classifier reads of this incident."""
        return Evidence(
            title=self.title,
            bodies=list(self.bodies),
            impact=self.impact,
            status=self.status,
            is_maintenance=self.is_maintenance,
            component_statuses=list(self.component_statuses.values()),
            components=list(self.components),
            vendor=self.vendor,
        )
