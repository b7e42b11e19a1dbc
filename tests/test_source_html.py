"""HTML fallback parser driven by html_rules (inline synthetic pages)."""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from watcher.model import ComponentStatus, IncidentScope, IncidentStatus
from watcher.sources import html
from watcher.sources.base import ParseError, SourceOptions

PAGE = b"""<!DOCTYPE html>
<html><head><title>Example AI Status</title></head>
<body>
  <div class="overall"><span class="state">Partial System Outage</span></div>
  <ul class="components">
    <li class="component" data-status="operational"><span class="name">Chat API</span>
        <span class="status">Operational</span></li>
    <li class="component" data-status="degraded"><span class="name">Embeddings</span>
        <span class="status">Degraded Performance</span></li>
    <li class="component" data-status="down"><span class="name">Image API</span>
        <span class="status">Down for everyone</span></li>
    <li class="component"><span class="name">Fine-tuning</span><span class="status">Wobbly</span></li>
  </ul>
  <section class="incidents">
    <article class="incident">
      <a href="/incidents/inc_42"><h3>Image generation failing</h3></a>
      <span class="incident-status">Identified</span>
      <time datetime="2026-09-30T17:05:00Z">5 minutes ago</time>
    </article>
    <article class="incident"><h3>Something odd</h3></article>
  </section>
</body></html>
"""

RULES = {
    "state_selector": ".overall .state",
    "states": {
        "All Systems Operational": "operational",
        "Partial System Outage": "partial_outage",
        "Down for everyone": "major_outage",
    },
    "component_selector": "li.component",
    "component_name_selector": ".name",
    "component_status_selector": ".status",
    "incident_selector": "article.incident",
    "incident_title_selector": "h3",
    "incident_status_selector": ".incident-status",
    "incident_time_selector": "time",
}


def _parse(body: bytes = PAGE, rules=None, base_url="https://status.example-ai.com"):
    return html.parse(body, SourceOptions(base_url=base_url, html_rules=RULES if rules is None else rules))


def test_rules_read_state_components_and_incidents():
    snap = _parse()
    assert snap.indicator == "major"
    assert snap.page_name == "Example AI Status"
    assert [(c.name, c.status) for c in snap.components] == [
        ("Chat API", ComponentStatus.OPERATIONAL),
        ("Embeddings", ComponentStatus.DEGRADED),
        ("Image API", ComponentStatus.MAJOR_OUTAGE),
        ("Fine-tuning", ComponentStatus.UNKNOWN),
    ]
    assert snap.incident_scope is IncidentScope.ACTIVE
    first, second = snap.incidents
    assert first.key == "inc_42"
    assert first.url == "https://status.example-ai.com/incidents/inc_42"
    assert first.status is IncidentStatus.IDENTIFIED
    assert first.updated_at == datetime(2026, 9, 30, 17, 5, tzinfo=UTC)
    assert second.title == "Something odd"
    assert second.status is IncidentStatus.UNKNOWN and second.url is None and second.updated_at is None
    assert second.key.startswith("html-")


def test_status_from_attribute():
    rules = dict(RULES, component_status_attribute="data-status")
    del rules["component_status_selector"]  # read the attribute on the row itself
    statuses = [c.status for c in _parse(rules=rules).components]
    assert statuses == [
        ComponentStatus.OPERATIONAL,
        ComponentStatus.DEGRADED,
        ComponentStatus.MAJOR_OUTAGE,
        ComponentStatus.UNKNOWN,  # no attribute at all
    ]


def test_unconfigured_parts_are_not_published():
    snap = _parse(rules={"state_selector": ".overall .state", "states": RULES["states"]})
    assert snap.components is None
    assert snap.incidents is None
    assert snap.indicator == "major"


def test_no_incidents_on_page_is_an_empty_tuple_and_scope_is_configurable():
    body = PAGE.replace(b'class="incident"', b'class="gone"')
    snap = _parse(body, rules=dict(RULES, incident_scope="history"))
    assert snap.incidents == ()
    assert snap.incident_scope is IncidentScope.HISTORY


def test_state_text_not_in_table_is_unknown_indicator():
    snap = _parse(PAGE.replace(b"Partial System Outage", b"Everything is on fire"))
    assert snap.indicator is None


@pytest.mark.parametrize(
    "rules",
    [
        {},
        {"state_selectr": ".x"},
        {"state_selector": ""},
        {"state_selector": 3},
        {"state_selector": "div[", "states": {}},
        {"states": {"a": 1}},
        {"incident_selector": "article", "incident_scope": "forever"},
    ],
    ids=["none", "typo", "empty", "not-str", "bad-css", "bad-states", "bad-scope"],
)
def test_bad_rules_raise_parse_error(rules):
    with pytest.raises(ParseError):
        _parse(rules=rules)


def test_layout_change_raises_parse_error():
    with pytest.raises(ParseError, match="matched nothing"):
        _parse(rules={"state_selector": ".does-not-exist"})


def test_a_page_that_lists_no_components_is_valid_not_a_permanent_error():
    snap = _parse(rules={**RULES, "component_selector": ".does-not-exist"})
    assert snap.components == ()
    assert snap.indicator is not None and len(snap.incidents) == 2


# Synthetic, in the layout of Atlassian Statuspage's HTML (component-container / is-group /
# child-components-container): two regions list components with the same names.
GROUPED = b"""<!DOCTYPE html><html><head><title>Auth Status</title></head><body>
<div class="page-status"><span class="status">All Systems Operational</span></div>
<div class="components-container">
  <div class="component-container is-group">
    <div class="component-inner-container"><span class="name">US-1</span></div>
    <div class="child-components-container">
      <div class="component-inner-container"><span class="name">Authentication</span>
        <span class="component-status">Operational</span></div>
      <div class="component-inner-container"><span class="name">Management API</span>
        <span class="component-status">Degraded Performance</span></div>
    </div>
  </div>
  <div class="component-container is-group">
    <div class="component-inner-container"><span class="name">EU-1</span></div>
    <div class="child-components-container">
      <div class="component-inner-container"><span class="name">Authentication</span>
        <span class="component-status">Major Outage</span></div>
      <div class="component-inner-container"><span class="name">Management API</span>
        <span class="component-status">Operational</span></div>
    </div>
  </div>
  <div class="component-container">
    <div class="component-inner-container"><span class="name">Marketplace</span>
      <span class="component-status">Operational</span></div>
  </div>
</div></body></html>"""

GROUPED_RULES = {
    "state_selector": ".page-status .status",
    "component_selector": ".child-components-container .component-inner-container, "
    ".component-container:not(.is-group) > .component-inner-container",
    "component_name_selector": ".name",
    "component_status_selector": ".component-status",
    "component_group_selector": ".component-container.is-group",
    "component_group_name_selector": ":scope > .component-inner-container .name",
}


def test_components_with_one_name_in_two_groups_are_kept_apart():
    snap = _parse(GROUPED, GROUPED_RULES)
    got = {(c.group_id, c.name): c.status for c in snap.components}
    assert got == {
        ("US-1", "Authentication"): ComponentStatus.OPERATIONAL,
        ("US-1", "Management API"): ComponentStatus.DEGRADED,
        ("EU-1", "Authentication"): ComponentStatus.MAJOR_OUTAGE,
        ("EU-1", "Management API"): ComponentStatus.OPERATIONAL,
        (None, "Marketplace"): ComponentStatus.OPERATIONAL,
    }
    assert len({c.id for c in snap.components}) == 5


def test_grouped_components_stay_apart_in_the_vendor_state():
    from watcher.pipeline import summarize

    summary = summarize(_parse(GROUPED, GROUPED_RULES), lambda name: True)
    assert summary["components"] == {
        "US-1 / Authentication": "operational",
        "US-1 / Management API": "degraded_performance",
        "EU-1 / Authentication": "major_outage",
        "EU-1 / Management API": "operational",
        "Marketplace": "operational",
    }


@pytest.mark.parametrize(
    "body",
    [b'{"status": "ok"}', b"[1, 2]", b"<html>" + b"x" * (5 * 1024 * 1024)],
    ids=["json-object", "json-array", "over-5mb"],
)
def test_refused_bodies(body):
    with pytest.raises(ParseError):
        _parse(body)


def test_deeply_nested_and_invalid_utf8_html_does_not_crash():
    deep = b"<div>" * 100_000 + b'<span class="state">Partial System Outage</span>' + b"</div>" * 100_000
    try:
        snap = _parse(deep, rules={"state_selector": ".state", "states": RULES["states"]})
        assert snap.indicator == "major"
    except ParseError:
        pass
    snap = _parse(PAGE.replace(b"Chat API", b"Chat \xff\xfe API"))
    assert len(snap.components) == 4


@given(st.binary(max_size=500))
@settings(max_examples=150)
def test_random_bytes_only_raise_parse_error(body):
    with contextlib.suppress(ParseError):
        _parse(body)


_tags = st.sampled_from(
    ['<li class="component">', "</li>", '<span class="name">', '<span class="status">', "</span>",
     '<article class="incident">', "</article>", '<a href="/incidents/x">', '<a href="javascript:x">', "</a>",
     '<time datetime="0001-01-01T00:00:00+01:00">', "<h3>", "</h3>", '<div class="overall">',
     '<span class="state">', "Operational", "Degraded", "<", ">", "&amp;", "&#0;"]
)


@given(st.lists(_tags | st.text(max_size=8), max_size=40).map("".join))
@settings(max_examples=150)
def test_random_markup_only_raises_parse_error(markup):
    with contextlib.suppress(ParseError):
        _parse(markup.encode("utf-8", "surrogatepass"))
