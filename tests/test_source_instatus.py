"""Instatus summary.json parser (synthetic fixture: no real capture with activity exists)."""

from __future__ import annotations

import contextlib
import json
from datetime import UTC, datetime

import pytest
from fixtures_path import MALFORMED_JSON, json_values, load_fixture_json, mutate, read_fixture
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from watcher.model import IncidentScope, IncidentStatus
from watcher.sources import instatus
from watcher.sources.base import ParseError, SourceOptions

FIXTURE = "synthetic/instatus-summary.json"


def _parse(doc) -> object:
    return instatus.parse(json.dumps(doc).encode(), SourceOptions())


def test_synthetic_summary_gives_active_incidents_with_keys_statuses_and_js_dates():
    snap = instatus.parse(read_fixture(FIXTURE), SourceOptions())
    assert snap.components is None
    assert snap.incident_scope is IncidentScope.ACTIVE
    assert snap.maintenance_scope is IncidentScope.ACTIVE
    assert snap.page_name == "Example AI"
    assert snap.indicator == "major"  # HASISSUES + a MAJOROUTAGE incident

    first, second = snap.incidents
    assert first.key == "cl4a7bqkc000109l8g6zl2m3x"
    assert first.status is IncidentStatus.INVESTIGATING
    assert first.impact == "MAJOROUTAGE"
    assert first.started_at == datetime(2022, 6, 11, 18, 55, 50, tzinfo=UTC)
    assert first.url == "https://status.example-ai.com/incident/cl4a7bqkc000109l8g6zl2m3x"
    assert first.updates == ()
    assert second.status is IncidentStatus.MONITORING
    assert second.started_at == datetime(2022, 6, 11, 17, 30, tzinfo=UTC)
    assert second.updated_at == datetime(2022, 6, 11, 19, 2, 10, tzinfo=UTC)

    (maint,) = snap.maintenances
    assert maint.is_maintenance
    assert maint.status is IncidentStatus.SCHEDULED  # NOTSTARTEDYET
    # "GMT+0200" is honoured: 02:00 local is 00:00 UTC; duration "60" is minutes.
    assert maint.scheduled_for == datetime(2022, 6, 12, 0, 0, tzinfo=UTC)
    assert maint.scheduled_until == datetime(2022, 6, 12, 1, 0, tzinfo=UTC)


def test_healthy_page_without_lists_means_nothing_open():
    snap = _parse({"page": {"name": "Wistia", "url": "https://status.wistia.com", "status": "UP"}})
    assert snap.indicator == "none"
    assert snap.incidents == ()
    assert snap.maintenances == ()


def test_missing_lists_on_a_troubled_page_are_not_published_not_empty():
    snap = _parse({"page": {"name": "x", "status": "HASISSUES"}})
    assert snap.incidents is None
    assert snap.maintenances is None
    assert snap.indicator == "minor"


def test_missing_incident_fields_are_none():
    snap = _parse({"page": {"status": "HASISSUES"}, "activeIncidents": [{"name": "Down"}]})
    (r,) = snap.incidents
    assert r.started_at is None and r.url is None and r.impact is None
    assert r.key.startswith("instatus-")  # no id anywhere: stable hash
    assert r == _parse({"page": {"status": "HASISSUES"}, "activeIncidents": [{"name": "Down"}]}).incidents[0]


def test_key_recovered_from_url_when_id_missing():
    doc = {"page": {"status": "HASISSUES"}, "activeIncidents": [{"name": "x", "url": "https://s.io/incident/abc123"}]}
    assert _parse(doc).incidents[0].key == "abc123"


def test_unknown_enum_values_become_unknown():
    doc = {
        "page": {"status": "ONFIRE"},
        "activeIncidents": [{"id": "1", "name": "x", "status": "PANICKING", "impact": "APOCALYPSE"}],
        "activeMaintenances": [{"id": "2", "name": "y", "status": "SOMEDAY", "duration": "soon"}],
    }
    snap = _parse(doc)
    assert snap.incidents[0].status is IncidentStatus.UNKNOWN
    assert snap.incidents[0].impact == "APOCALYPSE"
    assert snap.maintenances[0].status is IncidentStatus.UNKNOWN
    assert snap.maintenances[0].scheduled_until is None
    assert snap.indicator == "onfire"


@pytest.mark.parametrize("name", sorted(MALFORMED_JSON))
def test_malformed_input_raises_parse_error(name):
    with pytest.raises(ParseError):
        instatus.parse(MALFORMED_JSON[name], SourceOptions())


@pytest.mark.parametrize("doc", [[], "UP", 3, {"activeIncidents": []}, {"page": "UP"}])
def test_wrong_shape_raises_parse_error(doc):
    with pytest.raises(ParseError):
        _parse(doc)


def test_wrong_type_list_raises_parse_error():
    with pytest.raises(ParseError):
        _parse({"page": {"status": "HASISSUES"}, "activeIncidents": {"id": "1"}})


@given(st.binary(max_size=400))
@settings(max_examples=150)
def test_random_bytes_only_raise_parse_error(body):
    with contextlib.suppress(ParseError):
        instatus.parse(body, SourceOptions())


@given(json_values)
@settings(max_examples=150)
def test_random_json_only_raises_parse_error(value):
    with contextlib.suppress(ParseError):
        _parse(value)


@given(st.data())
@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow])
def test_mutated_fixture_only_raises_parse_error(data):
    doc = mutate(data, load_fixture_json(FIXTURE))
    with contextlib.suppress(ParseError):
        _parse(doc)
