"""Better Stack index.json parser (synthetic fixture built from the documented JSON:API shape)."""

from __future__ import annotations

import contextlib
import json
from datetime import UTC, datetime

import pytest
from fixtures_path import MALFORMED_JSON, json_values, load_fixture_json, mutate, read_fixture
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from watcher.model import ComponentStatus, IncidentScope, IncidentStatus
from watcher.sources import betterstack
from watcher.sources.base import ParseError, SourceOptions

FIXTURE = "synthetic/betterstack-index.json"


def _parse(doc):
    return betterstack.parse(json.dumps(doc).encode(), SourceOptions())


def test_resources_become_components_grouped_by_section():
    snap = betterstack.parse(read_fixture(FIXTURE), SourceOptions())
    assert snap.page_name == "Example Hub"
    assert snap.page_url == "https://status.example-hub.co"
    assert snap.indicator == "minor"  # aggregate_state "degraded"
    by_id = {c.id: c for c in snap.components}
    assert by_id["4018902"].name == "Hub website"  # stray spaces stripped
    assert by_id["4018902"].status is ComponentStatus.OPERATIONAL
    assert by_id["4188758"].status is ComponentStatus.DEGRADED
    assert by_id["4188759"].status is ComponentStatus.UNKNOWN  # not_monitored
    assert by_id["4188758"].group_id == "section:104772"
    group = by_id["section:104772"]
    assert group.is_group and group.name == "Inference API"
    assert group.status is ComponentStatus.DEGRADED  # worst child; unknown never masks


def test_status_reports_become_history_reports_with_updates_oldest_first():
    snap = betterstack.parse(read_fixture(FIXTURE), SourceOptions())
    assert snap.incident_scope is IncidentScope.HISTORY
    resolved, open_ = snap.incidents
    assert resolved.key == "1050825"
    # ends_at is null on the resolved report: status comes from aggregate_state
    assert resolved.status is IncidentStatus.RESOLVED
    assert resolved.resolved_at == datetime(2026, 9, 2, 19, 53, tzinfo=UTC)
    assert [u.id for u in resolved.updates] == ["5709883", "5709884"]  # relationship order was newest first
    assert resolved.updates[-1].status is IncidentStatus.RESOLVED
    assert resolved.components == ("Hub website",)
    assert resolved.url == "https://status.example-hub.co/incidents/1050825"

    assert open_.status is IncidentStatus.INVESTIGATING
    assert open_.resolved_at is None
    change = open_.updates[-1].component_changes[0]
    assert (change.old_status, change.new_status) == (ComponentStatus.MAJOR_OUTAGE, ComponentStatus.DEGRADED)

    (maint,) = snap.maintenances
    assert maint.is_maintenance and maint.status is IncidentStatus.IN_PROGRESS
    assert maint.scheduled_until == datetime(2026, 9, 10, 3, tzinfo=UTC)
    assert maint.updates == ()


def test_missing_included_means_not_published():
    attrs = {"aggregate_state": "operational"}
    snap = _parse({"data": {"id": "1", "type": "status_page", "attributes": attrs}})
    assert snap.components is None
    assert snap.incidents is None
    assert snap.maintenances is None
    assert snap.indicator == "none"


def test_missing_fields_are_none_and_unknown_states_unknown():
    doc = {
        "data": {"id": "1", "attributes": {"aggregate_state": "sparkling"}},
        "included": [
            {"type": "status_page_resource", "id": 5, "attributes": {"status": "exploded"}},
            {"type": "status_report", "id": 9, "attributes": {"aggregate_state": "weird"}},
            {"type": "mystery", "id": 1},
            {"type": "status_update"},
            "not an object",
        ],
    }
    snap = _parse(doc)
    (comp,) = snap.components
    assert comp.id == "5" and comp.name == "5" and comp.status is ComponentStatus.UNKNOWN
    (rep,) = snap.incidents
    assert rep.status is IncidentStatus.UNKNOWN
    assert rep.started_at is None and rep.updated_at is None and rep.url is None
    assert snap.indicator == "sparkling"


@pytest.mark.parametrize("name", sorted(MALFORMED_JSON))
def test_malformed_input_raises_parse_error(name):
    with pytest.raises(ParseError):
        betterstack.parse(MALFORMED_JSON[name], SourceOptions())


@pytest.mark.parametrize("doc", [[], {"data": []}, {"included": []}, {"data": {}, "included": {}}])
def test_wrong_shape_raises_parse_error(doc):
    with pytest.raises(ParseError):
        _parse(doc)


@given(st.binary(max_size=400))
@settings(max_examples=150)
def test_random_bytes_only_raise_parse_error(body):
    with contextlib.suppress(ParseError):
        betterstack.parse(body, SourceOptions())


@given(json_values)
@settings(max_examples=150)
def test_random_json_only_raises_parse_error(value):
    with contextlib.suppress(ParseError):
        _parse(value)


@given(st.data())
@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
def test_mutated_fixture_only_raises_parse_error(data):
    doc = mutate(data, load_fixture_json(FIXTURE), rate=0.08)
    with contextlib.suppress(ParseError):
        _parse(doc)
