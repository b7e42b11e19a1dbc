"""A vendor's state comes from its page's own evidence: component statuses and the indicator.

Table test over every real Statuspage ``summary.json`` in the fixtures, each served
from 127.0.0.1 and read through the real pipeline into a real SQLite store: the state
must agree with the page's indicator and component statuses, and the reason must say
why, naming the components. Then the same pages for a team that says what it uses.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from watcher.catalog import resolve
from watcher.config import Settings
from watcher.fetch import make_client
from watcher.model import ComponentStatus, VendorState
from watcher.pipeline import Pipeline
from watcher.status import vendor_status
from watcher.store.sqlite import SQLiteStore

FIXTURES = Path(__file__).parent / "fixtures" / "statuspage"
PATH = "/api/v2/summary.json"

# fixture → (vendor, state, words the reason must contain), written from the page itself
TABLE = {
    # indicator "minor"; only the Console is degraded; its incident (impact major) names the Console
    "summary-anthropic-claude-incident-2026-10-07.json": (
        "anthropic",
        VendorState.DEGRADED,
        ["Claude Console (platform.claude.com) degraded", "5 other components operational"],
    ),
    # indicator "none", every component operational: the open GenAI incident (impact none,
    # no component) is shown, but the page itself says all is well
    "summary-hubspot-genai-incident-2023-11-08.json": (
        "hubspot",
        VendorState.OPERATIONAL,
        ["Generative AI features are unavailable for some customers", "the page says all is well"],
    ),
    # indicator "minor", 21 components degraded, none down: degraded, never "outage" because of
    # the "Support chat unavailable" incident (impact none, names no component)
    "summary-openai-incidentio-compat-2026-09-29.json": (
        "openai",
        VendorState.DEGRADED,
        ["Realtime degraded", "more", "Support chat unavailable"],
    ),
    # indicator "none", four components operational, no incidents key
    "summary-perplexity-incidentio-compat-2026-09-18.json": (
        "perplexity",
        VendorState.OPERATIONAL,
        ["all components operational"],
    ),
}

_INDICATOR_MAX = {
    "none": VendorState.OPERATIONAL,
    "maintenance": VendorState.MAINTENANCE,
    "minor": VendorState.DEGRADED,
    "major": VendorState.OUTAGE,
    "critical": VendorState.OUTAGE,
}
_RANK = {
    VendorState.OPERATIONAL: 0,
    VendorState.MAINTENANCE: 1,
    VendorState.DEGRADED: 2,
    VendorState.OUTAGE: 3,
}


def _state_of(vendor_server, tmp_path, fixture: str, vendor: str, **patch):
    vendor_server.set(PATH, (FIXTURES / fixture).read_bytes())
    settings = Settings.model_validate(
        {
            "watch": [vendor],
            "storage": {"path": str(tmp_path / f"{vendor}.db")},
            "vendors": {
                vendor: {
                    **patch,
                    "sources": {
                        sid: ({"url": vendor_server.url(PATH)} if sid == "summary" else {"enabled": False})
                        for sid in ("summary", "incidents", "maintenances", "history", "feed")
                        if sid == "summary" or _has_source(vendor, sid)
                    },
                }
            },
        }
    )
    vendors = resolve(settings)
    store = SQLiteStore(settings.storage.path)
    now = datetime(2026, 10, 7, 14, 0, tzinfo=UTC)

    async def go():
        async with make_client(user_agent="test") as client:
            pipe = Pipeline(store, client, settings, vendors, clock=lambda: now)
            await pipe.poll(vendors[0].sources[0])

    asyncio.run(go())
    try:
        return vendor_status(vendors[0], store.sources(vendor), store.open_incidents(vendor), now)
    finally:
        store.close()


def _has_source(vendor: str, sid: str) -> bool:
    from watcher.catalog import load_catalog

    return any(s["id"] == sid for s in load_catalog()[vendor]["sources"])


def test_the_table_covers_every_statuspage_summary_fixture():
    assert set(TABLE) == {p.name for p in FIXTURES.glob("summary-*.json")}


@pytest.mark.parametrize("fixture", sorted(TABLE))
def test_vendor_state_agrees_with_the_page_indicator_and_components(vendor_server, tmp_path, fixture):
    vendor, expected, words = TABLE[fixture]
    doc = json.loads((FIXTURES / fixture).read_text())
    st = _state_of(vendor_server, tmp_path, fixture, vendor)

    assert st.state is expected, st.reason
    for w in words:
        assert w in st.reason, st.reason
    # consistent with the page: never worse than its indicator (or its worst component) says,
    # never better than its worst component
    indicator = doc["status"]["indicator"]
    worst = max(
        (ComponentStatus(c["status"]) for c in doc["components"] if not c.get("group")),
        key=lambda s: s.severity,
    )
    floor = {
        ComponentStatus.OPERATIONAL: VendorState.OPERATIONAL,
        ComponentStatus.MAINTENANCE: VendorState.MAINTENANCE,
        ComponentStatus.DEGRADED: VendorState.DEGRADED,
        ComponentStatus.PARTIAL_OUTAGE: VendorState.DEGRADED,
        ComponentStatus.MAJOR_OUTAGE: VendorState.OUTAGE,
    }[worst]
    ceiling = max(_INDICATOR_MAX[indicator], floor, key=_RANK.get)
    assert _RANK[floor] <= _RANK[st.state] <= _RANK[ceiling], (indicator, worst, st.state, st.reason)
    # the per-component truth is exported with it (API, `watcher status --json`)
    js = st.to_json()
    assert {c["name"] for c in js["components"]} >= {
        c["name"] for c in doc["components"] if not c.get("group")
    }


def test_openai_state_for_a_team_using_the_api_names_what_is_not_used(vendor_server, tmp_path):
    st = _state_of(
        vendor_server,
        tmp_path,
        "summary-openai-incidentio-compat-2026-09-29.json",
        "openai",
        uses=["api"],
    )
    assert st.state is VendorState.DEGRADED  # the API components are degraded: that is the team's news
    assert "Realtime degraded" in st.reason and "Elevated errors across ChatGPT" in st.reason
    assert "not used by the team: " in st.reason and "Support chat unavailable" in st.reason
    by_name = {c.name: c for c in st.components}
    assert by_name["Chat Completions"].used and not by_name["GPTs"].used
    assert by_name["dots"].used, "a component the catalog does not know counts until told otherwise"


def test_anthropic_console_incident_does_not_touch_a_team_using_api_and_chat(vendor_server, tmp_path):
    st = _state_of(
        vendor_server,
        tmp_path,
        "summary-anthropic-claude-incident-2026-10-07.json",
        "anthropic",
        uses=["api", "chat app"],
    )
    assert st.state is VendorState.OPERATIONAL, st.reason
    assert st.reason == (
        "not used by the team: Claude Console (platform.claude.com) degraded "
        "(Elevated errors on platform.claude.com); API and chat app operational"
    )
    console = next(c for c in st.components if c.name.startswith("Claude Console"))
    assert not console.used and console.incidents, "the incident applies to the component it names"
