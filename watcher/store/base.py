"""The store interface: the only shared state of the daemon.

The store knows nothing of HTTP or Slack: it keeps sources' fetch state,
observations, incidents and their events, the outbox, and what people did. Its
roles are protocols in :mod:`watcher.store.roles`; the one implementation, for
SQLite and PostgreSQL, is :class:`watcher.store.stores.SQLStore`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from watcher.incidents.model import IncidentEvent


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
    summary_read: bool = True
    """False for a record read without its summary (``fetch_state``): saving it leaves the stored
    summary as it is, until ``summary`` is set and this made True."""


@dataclass(slots=True)
class StoredEvent:
    id: int
    incident_id: int
    event: IncidentEvent
