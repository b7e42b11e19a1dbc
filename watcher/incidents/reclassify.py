"""Re-classify the incidents a database already holds when the shipped classifier model changes.

An upgrade that brings a better model should not leave last month's incidents (the board, the weekly
report, `watcher incidents`) labelled by the old one. The store remembers which model classified its
incidents (``meta`` key :data:`META_KEY`); on start, when that is not the shipped model, every incident
read from vendor text is classified again (:meth:`watcher.pipeline.Pipeline.reclassify_stored`, one
vendor at a time under that vendor's merge lock). Each change is kept on the incident's timeline as a
"Reclassified" event and logged, so an admin can see what moved and why. Nothing is sent: a kind
that changes on an open incident reaches its alert with the incident's next update.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from watcher.incidents.model import EventType, Incident, IncidentEvent
from watcher.model import Classification, Evidence

log = logging.getLogger(__name__)

META_KEY = "classifier_model"


class ReclassifyStore(Protocol):
    def incidents(self, *, vendor: str | None = ..., open_only: bool = ..., limit: int = ...) -> list[Incident]: ...

    def save_incident(self, incident: Incident, events: list[IncidentEvent]) -> int: ...


@dataclass(frozen=True, slots=True)
class Reclassified:
    incident_id: int | None
    vendor: str
    title: str
    before: str
    after: str
    reason: str


def changes(
    incidents: list[Incident], classifier: Callable[[Evidence], Classification]
) -> list[tuple[Incident, Classification]]:
    """The incidents whose kind the classifier now reads differently, with the new classification."""
    out = []
    for inc in incidents:
        if not inc.classified_by_text:
            continue
        result = classifier(inc.evidence())
        if result.kind != inc.kind:
            out.append((inc, result))
    return out


def reclassify(
    store: ReclassifyStore,
    vendor: str,
    version: str,
    classifier: Callable[[Evidence], Classification],
    now: datetime,
    *,
    limit: int = 1_000_000,
) -> list[Reclassified]:
    """Re-classify one vendor's stored incidents; each change saved with a timeline event and logged."""
    moved: list[Reclassified] = []
    for inc, result in changes(store.incidents(vendor=vendor, limit=limit), classifier):
        before = inc.kind
        inc.kind, inc.reason = result.kind, result.reason
        note = f"{before} → {result.kind} (classifier model {version}): {result.reason}"
        store.save_incident(inc, [IncidentEvent(EventType.KIND_CHANGED, now, note, source="upgrade")])
        moved.append(Reclassified(inc.id, inc.vendor, inc.title, before.value, result.kind.value, result.reason))
        log.info(
            "incident %s (%s: %s) reclassified on upgrade: %s → %s: %s",
            inc.id,
            inc.vendor,
            inc.title[:80],
            before,
            result.kind,
            result.reason,
        )
    return moved
