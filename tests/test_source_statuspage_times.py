"""Incident start times: from the earliest update when created_at is a later migration date.

Incidents migrated to incident.io (Perplexity's history) carry the migration date as
``created_at``, after they were resolved; the real times are in their updates'
``display_at``. No real migrated payload is in the fixtures, so this one is built from
the real OpenAI incident.io incident (fixture summary-openai-incidentio-compat-2026-09-29)
with only ``created_at``/``resolved_at`` and the update ``created_at`` moved to a migration
date, as the issue describes; labelled synthetic here.
"""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime

from fixtures_path import read_fixture as fixture_bytes

from watcher.sources import statuspage

MIGRATED_AT = "2026-10-02T09:00:00Z"  # after the incident was resolved


def _migrated_history() -> bytes:
    real = json.loads(fixture_bytes("statuspage/summary-openai-incidentio-compat-2026-09-29.json"))
    inc = copy.deepcopy(next(i for i in real["incidents"] if i["name"] == "Support chat unavailable"))
    inc["status"] = "resolved"
    inc["created_at"] = MIGRATED_AT
    inc["resolved_at"] = "2026-09-29T19:00:00Z"
    for u in inc["incident_updates"]:
        u["created_at"] = MIGRATED_AT  # the display_at keeps the real time
    return json.dumps({"page": real["page"], "incidents": [inc]}).encode()


def test_a_migrated_incident_starts_at_its_earliest_update_not_at_the_migration():
    [report] = statuspage.parse(_migrated_history()).incidents
    assert report.started_at == datetime(2026, 9, 29, 17, 49, 5, tzinfo=UTC)
    assert report.started_at < report.resolved_at
    assert [u.created_at.isoformat() for u in report.updates] == [
        "2026-09-29T17:49:05+00:00",
        "2026-09-29T17:55:17+00:00",
    ]


def test_an_ordinary_incident_keeps_its_own_start():
    real = statuspage.parse(fixture_bytes("statuspage/summary-anthropic-claude-incident-2026-10-07.json"))
    [report] = real.incidents
    assert report.started_at == datetime(2026, 10, 7, 13, 25, 4, 155000, tzinfo=UTC)  # its own started_at
