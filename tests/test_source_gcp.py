"""Google Cloud incidents.json parser, on a real (trimmed) incidents.json."""

from __future__ import annotations

import contextlib
import json
from datetime import UTC, datetime

import pytest
from fixtures_path import MALFORMED_JSON, json_values, load_fixture_json, mutate, read_fixture
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from watcher.model import IncidentScope, IncidentStatus
from watcher.sources import gcp
from watcher.sources.base import ParseError, SourceOptions

FIXTURE = "gcp/incidents-trimmed-2026-09.json"
ALLOYDB = "fPovtKbaWN9UTepMm3kJ"


def _parse(doc, product_ids=()):
    return gcp.parse(json.dumps(doc).encode(), SourceOptions(product_ids=product_ids))


def test_real_incident_parsed_with_key_status_impact_and_updates():
    snap = gcp.parse(read_fixture(FIXTURE), SourceOptions())
    assert snap.incident_scope is IncidentScope.HISTORY
    assert snap.components is None
    (r,) = snap.incidents
    assert r.key == "J5ia5t9p3g9Q5Wi7r8Ev"
    assert r.title == "Multiple products in us-central1-b are experiencing network service degradation."
    assert r.status is IncidentStatus.RESOLVED
    assert r.impact == "medium / SERVICE_DISRUPTION"
    assert r.url == "https://status.cloud.google.com/incidents/J5ia5t9p3g9Q5Wi7r8Ev"
    assert r.started_at == datetime(2026, 9, 1, 14, 44, tzinfo=UTC)
    assert r.resolved_at == datetime(2026, 9, 1, 18, 52, tzinfo=UTC)
    assert r.updated_at == datetime(2026, 9, 10, 21, 20, 16, tzinfo=UTC)
    assert len(r.components) == 15 and r.components[0] == "AlloyDB for PostgreSQL"
    assert len(r.updates) == 8
    times = [u.created_at for u in r.updates]
    assert times == sorted(times)  # oldest first (the document is newest first)
    assert [u.status for u in r.updates].count(IncidentStatus.RESOLVED) == 2
    assert len(r.updates[-1].body) > 7000  # kept whole
    assert r.updates[-1].body.startswith("## Incident Report")


def test_product_filter_keeps_only_matching_incidents():
    body = read_fixture(FIXTURE)
    assert len(gcp.parse(body, SourceOptions(product_ids=(ALLOYDB,))).incidents) == 1
    assert gcp.parse(body, SourceOptions(product_ids=("Z0FZJAMvEB4j3NbCJs6B",))).incidents == ()


def _open_incident(status: str) -> dict:
    doc = load_fixture_json(FIXTURE)[0]
    doc = dict(doc, end=None)
    doc["most_recent_update"] = dict(doc["most_recent_update"], status=status)
    return doc


@pytest.mark.parametrize(
    ("word", "expected"),
    [
        ("SERVICE_OUTAGE", IncidentStatus.INVESTIGATING),
        ("SERVICE_DISRUPTION", IncidentStatus.INVESTIGATING),
        ("AVAILABLE", IncidentStatus.RESOLVED),
        ("SERVICE_MELTDOWN", IncidentStatus.UNKNOWN),
    ],
)
def test_open_incident_status_comes_from_most_recent_update(word, expected):
    (r,) = _parse([_open_incident(word)]).incidents
    assert r.status is expected
    assert r.resolved_at is None


def test_missing_fields_are_none():
    (r,) = _parse([{"id": "abc"}]).incidents
    assert r.status is IncidentStatus.UNKNOWN
    assert r.impact is None and r.started_at is None and r.resolved_at is None
    assert r.url == "https://status.cloud.google.com/incidents/abc"
    assert r.updates == () and r.components == ()


def test_empty_array_is_no_incidents():
    assert _parse([]).incidents == ()


@pytest.mark.parametrize("name", sorted(MALFORMED_JSON))
def test_malformed_input_raises_parse_error(name):
    with pytest.raises(ParseError):
        gcp.parse(MALFORMED_JSON[name], SourceOptions())


@pytest.mark.parametrize("doc", [{"incidents": []}, "x", 1, None])
def test_wrong_top_level_type_raises_parse_error(doc):
    with pytest.raises(ParseError):
        _parse(doc)


@given(st.binary(max_size=400))
@settings(max_examples=150)
def test_random_bytes_only_raise_parse_error(body):
    with contextlib.suppress(ParseError):
        gcp.parse(body, SourceOptions())


@given(json_values)
@settings(max_examples=150)
def test_random_json_only_raises_parse_error(value):
    try:
        _parse([value])
        _parse(value, product_ids=(ALLOYDB,))
    except ParseError:
        pass


@given(st.data())
@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow])
def test_mutated_fixture_only_raises_parse_error(data):
    doc = mutate(data, load_fixture_json(FIXTURE), rate=0.05)
    try:
        _parse(doc)
        _parse(doc, product_ids=(ALLOYDB,))
    except ParseError:
        pass
