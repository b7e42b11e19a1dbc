"""The store interface: the only shared state of the daemon.

SQLite (:mod:`watcher.store.sqlite`) is the embedded default; a PostgreSQL
implementation will follow behind the same methods. The store knows nothing of
HTTP or Slack: it keeps sources' fetch state, observations, incidents and their
events.
"""

from __future__ import annotations

from collections.abc import Iterable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from watcher.incidents.model import Incident, IncidentEvent


class StoreError(Exception):
    """The database cannot do what was asked (unwritable, corrupt, locked too long).

    ``problem``, when known, names the kind of failure in a word the health check
    reports (``read_only``, ``disk_full``, ``locked``, ``unreachable``, ...).
    """

    def __init__(self, *args: object, problem: str | None = None):
        super().__init__(*args)
        self.problem = problem


ALERT_STATE_VERSION = "alert_state_version"
"""``meta`` key bumped in the same transaction as every write that changes what decides whether an
alert is held back for every vendor at once (mutes, watcher's own network incidents): the alert
engine reads this one row, not the mutes and its own incidents, to know whether its copy is current."""


@dataclass(slots=True)
class SourceRecord:
    """What the store remembers of a source between polls."""

    key: str
    vendor: str
    type: str
    url: str
    last_polled_at: datetime | None = None
    last_success_at: datetime | None = None
    last_change_at: datetime | None = None
    error: str | None = None
    error_kind: str | None = None
    error_since: datetime | None = None
    etag: str | None = None
    last_modified: str | None = None
    content_hash: str | None = None
    final_url: str | None = None
    summary: dict[str, Any] | None = None
    """The last good snapshot, reduced: indicator, component statuses, page name."""
    polls: int = 0
    failures: int = 0


@dataclass(slots=True)
class StoredEvent:
    id: int
    incident_id: int
    event: IncidentEvent


class Store(Protocol):
    def source(self, key: str) -> SourceRecord | None: ...

    def sources(self, vendor: str | None = None) -> list[SourceRecord]: ...

    def save_source(self, record: SourceRecord) -> None: ...

    def add_observation(
        self, source: str, vendor: str, at: datetime, kind: str, data: dict[str, Any]
    ) -> None: ...

    def open_incidents(self, vendor: str | None = None) -> list[Incident]: ...

    def incidents_by_keys(self, vendor: str, keys: Iterable[str]) -> list[Incident]: ...

    def incident(self, incident_id: int) -> Incident | None: ...

    def incidents(
        self, *, vendor: str | None = None, open_only: bool = False, limit: int = 100
    ) -> list[Incident]: ...

    def save_incident(self, incident: Incident, events: list[IncidentEvent]) -> int: ...

    def events(self, incident_id: int) -> list[StoredEvent]: ...

    def meta_get(self, key: str) -> str | None: ...

    def meta_set(self, key: str, value: str) -> None: ...

    def transaction(self, what: str) -> AbstractContextManager[Any]:
        """Writes inside stand or fall together (an incident and the alerts it calls for)."""
        ...

    def close(self) -> None: ...
