"""Checkly status page parser on Mistral's real __NUXT_DATA__ payload."""

from __future__ import annotations

import contextlib
import json
from datetime import UTC, datetime

import pytest
from fixtures_path import MALFORMED_JSON, json_values, load_fixture_json, mutate, read_fixture
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from watcher.model import ComponentStatus, IncidentScope, IncidentStatus
from watcher.sources import checkly
from watcher.sources.base import ParseError, SourceOptions

FIXTURE = "checkly/mistral-checkly-nuxt-data-2026-09-04.json"


def _page(payload: bytes) -> bytes:
    return (
        b"<!DOCTYPE html><html><head><title>Mistral AI Status Page</title></head>"
        b'<body><div id="__nuxt"></div>'
        b'<script type="application/json" data-nuxt-data="nuxt-app" data-ssr="true" id="__NUXT_DATA__">'
        + payload
        + b"</script></body></html>"
    )


def _parse(values):
    return checkly.parse(json.dumps(values).encode(), SourceOptions())


def test_real_payload_gives_open_incident_and_components():
    snap = checkly.parse(read_fixture(FIXTURE), SourceOptions())
    assert snap.page_name == "Mistral AI Status Page"
    assert snap.page_url == "https://status.mistral.ai"
    assert snap.incident_scope is IncidentScope.ACTIVE
    assert snap.indicator == "major"
    (inc,) = snap.incidents
    assert inc.key == "44cb5e11-4736-4e6b-9198-97121820e15e"
    assert inc.title == "Free Tier Temporarily Disabled"
    assert inc.status is IncidentStatus.IDENTIFIED
    assert inc.impact == "MAJOR"
    assert inc.started_at == datetime(2026, 9, 4, 4, 4, 4, tzinfo=UTC)
    assert inc.updated_at == datetime(2026, 9, 4, 12, 53, 26, 492000, tzinfo=UTC)
    assert inc.components == ("Chat Completions API",)
    (u,) = inc.updates
    assert u.id == "29c635df-5cf9-4ed7-9e22-5ebec94adb43"
    assert u.body.startswith("The Free tier of API has temporarily been disabled")

    by_name = {c.name: c for c in snap.components}
    assert by_name["API"].is_group and by_name["API"].status is ComponentStatus.PARTIAL_OUTAGE
    assert by_name["Chat Completions API"].status is ComponentStatus.PARTIAL_OUTAGE
    assert by_name["Chat Completions API"].group_id == by_name["API"].id
    assert by_name["Embeddings API"].status is ComponentStatus.OPERATIONAL
    assert by_name["Documentation"].group_id == by_name["Services"].id
    assert len(snap.components) == 7
    assert snap.maintenances == ()


def test_payload_embedded_in_page_html_gives_the_same_snapshot():
    raw = read_fixture(FIXTURE)
    assert checkly.parse(_page(raw), SourceOptions()) == checkly.parse(raw, SourceOptions())


def test_without_unresolved_incidents_key_incidents_are_not_published_and_status_unknown():
    values = load_fixture_json(FIXTURE)
    data = values[5]
    data.pop(next(k for k in data if k.startswith("unresolved-incidents-")))
    snap = _parse(values)
    assert snap.incidents is None
    assert all(c.status is ComponentStatus.UNKNOWN for c in snap.components)


def test_unknown_status_and_severity_values():
    values = load_fixture_json(FIXTURE)
    values[27] = "PONDERING"  # lastUpdateStatus
    values[23] = "APOCALYPTIC"  # severity
    snap = _parse(values)
    assert snap.incidents[0].status is IncidentStatus.IDENTIFIED  # falls back to the last update's status
    values[35] = "PONDERING"
    snap = _parse(values)
    assert snap.incidents[0].status is IncidentStatus.UNKNOWN
    assert snap.incidents[0].impact == "APOCALYPTIC"


def test_page_without_payload_raises_parse_error():
    with pytest.raises(ParseError, match="__NUXT_DATA__"):
        checkly.parse(b"<html><body>Status</body></html>", SourceOptions())


@pytest.mark.parametrize("name", sorted(MALFORMED_JSON))
def test_malformed_input_raises_parse_error(name):
    with pytest.raises(ParseError):
        checkly.parse(MALFORMED_JSON[name], SourceOptions())


@pytest.mark.parametrize(
    "values",
    [{}, [], [1], [{"data": 5}], [[2], [0], [1]], [{"data": 1}, {"x": 2}, "y"], ["Reactive"]],
    ids=["object", "empty", "self-ref", "out-of-range", "cycle", "not-checkly", "tag-only"],
)
def test_wrong_shapes_raise_parse_error(values):
    with pytest.raises(ParseError):
        _parse(values)


def test_long_reference_chain_is_refused_not_recursed():
    values = [[i + 1] for i in range(5000)] + [1]
    with pytest.raises(ParseError):
        _parse(values)


@given(st.binary(max_size=400))
@settings(max_examples=150)
def test_random_bytes_only_raise_parse_error(body):
    with contextlib.suppress(ParseError):
        checkly.parse(body, SourceOptions())


@given(json_values)
@settings(max_examples=150)
def test_random_json_only_raises_parse_error(value):
    try:
        _parse(value)
        _parse([value])
    except ParseError:
        pass


@given(st.data())
@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
def test_mutated_payload_only_raises_parse_error(data):
    values = mutate(data, load_fixture_json(FIXTURE), rate=0.05)
    with contextlib.suppress(ParseError):
        _parse(values)
