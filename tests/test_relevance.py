"""Alerts about what the team uses: a quiet notice for the rest, said plainly in English and French.

The engine tests look at the outbox (what will be sent), on SQLite and PostgreSQL,
with the real Anthropic page served from 127.0.0.1. The incident texts are the real
ones from the Anthropic and OpenAI fixtures.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import store_backends
from alerting import AlertHarness

from watcher.alerts.model import AlertAction
from watcher.alerts.relevance import judge
from watcher.alerts.slack_render import render_message
from watcher.catalog import resolve
from watcher.catalog.uses import capabilities_in_text, is_used, vendor_says_not_affected
from watcher.config import Settings
from watcher.incidents.model import Incident
from watcher.model import IncidentKind

CONSOLE = "Claude Console (platform.claude.com)"
# the first update of the real Anthropic incident (fixture summary-anthropic-claude-incident-2026-10-07)
USAGE_PAGE = (
    "investigating",
    "We are investigating elevated errors affecting usage data on the platform.claude.com Usage page and the "
    "Admin API usage report. Core functionality is not affected.",
    "2026-10-07T13:25:04Z",
)
API_DOWN = ("investigating", "Claude API requests are failing.", "2026-10-07T13:01:00Z")
NOW = datetime(2026, 10, 7, 14, 0, tzinfo=UTC)
ONCALL = {
    "oncall": {
        "people": [
            {"name": "Ana", "email": "ana@example.com", "slack": "U0ANA"},
            {"name": "Ben", "email": "ben@example.com", "slack": "U0BEN"},
        ],
        "rotation_start": "2026-10-05",
        "remind_after": 900,
        "escalate_after": 1800,
    }
}
USES = {"vendors": {"anthropic": {"uses": ["api", "chat app"]}}}

backend = store_backends.backend


def _vendors(**uses):
    s = Settings.model_validate({"watch": list(uses), "vendors": {k: {"uses": v} for k, v in uses.items()}})
    return {v.id: v for v in resolve(s)}


def _incident(vendor, title, body="", components=(), kind=IncidentKind.DEGRADATION):
    return Incident(
        vendor, title, kind, "r", NOW, NOW, components=list(components), bodies=[body] if body else []
    )


# -- words ------------------------------------------------------------------------------------


def test_uses_words_map_to_each_vendors_real_components():
    mapping = _vendors(openai=["api"])["openai"].capabilities
    assert is_used("Chat Completions", ("api",), mapping)
    assert not is_used("GPTs", ("api",), mapping)
    assert is_used("dots", ("api",), mapping), "unknown to the catalog: counts until told otherwise"
    assert is_used("GPTs", ("api", "GPT*"), mapping), "a component pattern works too"
    assert is_used("GPTs", (), mapping), "no uses: everything counts, as before"
    assert is_used("Image Generation", ("images",), mapping), "aliases"


def test_words_place_an_incident_that_names_no_component():
    assert capabilities_in_text("Support chat unavailable") == {"support"}
    assert capabilities_in_text("Elevated errors across ChatGPT, Codex, and the API") == {
        "chat app",
        "coding",
        "api",
    }
    assert capabilities_in_text("Something is wrong") == set()
    assert vendor_says_not_affected(USAGE_PAGE[1]) == "Core functionality is not affected"


def test_the_alert_says_what_is_and_is_not_affected_in_english_and_french():
    anthropic = _vendors(anthropic=["api", "chat app"])["anthropic"]
    inc = _incident("anthropic", "Elevated errors on platform.claude.com", USAGE_PAGE[1], [CONSOLE])
    en, fr = judge(anthropic, inc, "en"), judge(anthropic, inc, "fr")
    assert en.quiet and fr.quiet and not en.core
    assert en.scope == (
        "Core functionality is not affected, says Anthropic. Your API and chat app use is not affected: "
        f"this touches only {CONSOLE}."
    )
    assert fr.scope == (
        "Anthropic indique : « Core functionality is not affected ». Votre usage (API et application de chat) "
        f"n'est pas touché : l'incident concerne seulement {CONSOLE}."
    )
    openai = _vendors(openai=["api"])["openai"]
    chat = _incident(
        "openai", "Support chat unavailable", "Our Help Center and support chat are currently unavailable."
    )
    rel = judge(openai, chat)
    assert (
        rel.quiet
        and rel.scope == "Your API use is not affected: this touches only support chat and help center."
    )
    assert "chat d'assistance" in judge(openai, chat, "fr").scope
    api = _incident("openai", "Elevated errors across ChatGPT, Codex, and the API")
    rel = judge(openai, api)
    assert rel.relevant and rel.scope == "This touches what you use: API."


# -- the engine ----------------------------------------------------------------------------------


@pytest.fixture
def make(vendor_server, tmp_path, backend):
    made = []

    def build(config=None, **kw):
        kw.setdefault("store", backend.open())
        h = AlertHarness(vendor_server, tmp_path, config, **kw)
        made.append(h)
        return h

    yield build
    for h in made:
        h.close()


def _console_incident(h):
    h.outage(
        USAGE_PAGE,
        name="Elevated errors on platform.claude.com",
        impact="major",
        component=CONSOLE,
        component_status="partial_outage",
        indicator="minor",
        incident_id="zz1usage0001",
    )


def test_an_incident_on_what_the_team_does_not_use_is_a_quiet_notice(make):
    h = make({**ONCALL, **USES})
    _console_incident(h)
    h.poll()
    rows = h.rows()
    assert {r.action for r in rows} == {AlertAction.OPENED} and len(rows) == 2  # Slack and email
    alert = rows[0].alert
    assert alert.quiet and "Your API and chat app use is not affected" in alert.scope
    # the notice playbook: nothing like "expect failed requests"
    assert "Nothing to change in your work" in alert.playbook
    assert "failed requests" not in alert.playbook
    fallback, blocks = render_message(alert)
    assert fallback.startswith("ℹ") or "Notice" in fallback
    assert not any(
        e.get("action_id") == "ack" for b in blocks if b.get("type") == "actions" for e in b["elements"]
    ), "a quiet notice asks nobody to act"
    # no reminder, no escalation
    h.clock.tick(4 * 3600)
    assert h.engine.tick() == 0
    assert len(h.rows()) == 2


def test_the_same_incident_on_a_used_component_pages_and_is_reminded(make):
    h = make({**ONCALL, **USES})
    h.outage(API_DOWN)
    h.poll()
    alert = h.rows()[0].alert
    assert not alert.quiet and "This touches what you use: Claude API" in alert.scope
    assert "Nothing to change" not in alert.playbook
    h.clock.tick(901)
    assert h.engine.tick() == 2  # reminded on Slack and by email


def test_a_route_can_keep_quiet_notices_for_the_weekly_report(make):
    h = make(
        {**USES, "routes": [{"name": "marketing", "slack_channels": ["C0MKTG"], "quiet_notices": "report"}]}
    )
    _console_incident(h)
    h.poll()
    assert h.rows() == []
    assert [i.title for i in h.store.open_incidents("anthropic")] == [
        "Elevated errors on platform.claude.com"
    ]


def test_a_usage_page_incident_gets_the_notice_playbook_even_for_a_team_that_uses_everything(make):
    h = make({"alerts": {"locale": "fr"}})
    _console_incident(h)
    h.poll()
    alert = h.rows()[0].alert
    assert not alert.quiet, "no uses: everything is used, it pages as before"
    assert "Rien à changer dans votre travail" in alert.playbook
    assert "Anthropic indique : « Core functionality is not affected »" in alert.playbook
    assert "échecs" not in alert.playbook


def test_quiet_notice_scope_is_shown_in_email(make):
    from watcher.alerts.email import render_subject, render_text

    h = make(USES)
    _console_incident(h)
    h.poll()
    alert = h.rows()[0].alert
    assert "notice" in render_subject(alert)
    text = render_text(alert)
    assert "not affected" in text and "/ack/" not in text


# -- configuration --------------------------------------------------------------------------------


def test_every_catalog_capability_is_a_known_word():
    from watcher.catalog import load_catalog
    from watcher.catalog.uses import CAPABILITIES

    for vid, v in load_catalog().items():
        assert set(v.get("capabilities") or {}) <= set(CAPABILITIES), vid


def test_a_misspelt_capability_stops_watcher_with_the_fix(tmp_path):
    import subprocess
    import sys

    cfg = tmp_path / "w.toml"
    cfg.write_text('watch = ["openai"]\n[vendors.openai]\nuses = ["apii"]\n')
    r = subprocess.run(
        [sys.executable, "-m", "watcher", "config", "check", "--config", str(cfg)],
        capture_output=True,
        text=True,
    )
    assert r.returncode != 0
    assert "vendors.openai.uses: 'apii' is not a capability; did you mean 'api'?" in r.stderr
    cfg.write_text('watch = ["openai"]\n[vendors.openai]\nuses = ["api", "Compliance*"]\n')
    r = subprocess.run(
        [sys.executable, "-m", "watcher", "config", "check", "--config", str(cfg)],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stderr
    assert (
        "uses: api (Chat Completions, Responses" in r.stdout and "components named 'Compliance*'" in r.stdout
    )
