"""Issue 16, finding 8: what an alert says, as a reader sees it.

Times in ``alerts.timezone``, a resolve that tells people how to get back to work (not the red
playbook) with the vendor's last word, a client note that agrees with the alternatives shown,
``watcher test-alert`` on the real state of the watched vendors, and a plain-text email part
with no Markdown marks left in it. The real pipeline, store and engine (tests/alerting.py).
"""

from __future__ import annotations

import scenario
from alerting import AlertHarness

from watcher.alerts.email import render_text
from watcher.alerts.playbook import PlaybookFacts, render_playbook
from watcher.alerts.slack_render import render_message, render_reply

UPDATE_1 = ("investigating", "We are investigating failing Claude API requests.", "2026-10-07T13:01:00Z")
UPDATE_2 = ("identified", "We found the cause and are deploying a fix.", "2026-10-07T13:20:00Z")
UPDATE_3 = ("monitoring", "A fix is in place; we are monitoring the results.", "2026-10-07T13:40:00Z")


def _texts(alert) -> str:
    fallback, blocks = render_message(alert)
    return fallback + "\n" + repr(blocks) + "\n" + render_text(alert)


def _open_then_resolve(h):
    h.clock.tick()
    h.outage(UPDATE_1)
    h.poll()
    h.clock.tick(1200)
    h.outage(UPDATE_1, UPDATE_2)
    h.poll()
    h.clock.tick(1200)
    h.outage(UPDATE_1, UPDATE_2, UPDATE_3)
    h.poll()
    h.clock.tick(600)
    h.serve(scenario.operational())
    h.poll()
    return [r.alert for r in [r for r in h.rows() if r.channel == "slack"]]


def test_start_times_are_in_the_configured_time_zone_not_raw_utc(vendor_server, tmp_path):
    h = AlertHarness(vendor_server, tmp_path, {"alerts": {"timezone": "Europe/Paris"}})
    try:
        h.clock.tick()
        h.outage(UPDATE_1)
        h.poll()
        alert = [r for r in h.rows() if r.channel == "slack"][0].alert
        text = _texts(alert)
        assert "15:01 CEST" in text  # 13:01 UTC is 15:01 in Paris in October
        assert "2026-10-07T13:01" not in text and "13:01 UTC" not in text
    finally:
        h.close()


def test_resolve_replaces_the_playbook_and_quotes_the_vendors_last_update(vendor_server, tmp_path):
    h = AlertHarness(vendor_server, tmp_path)
    try:
        alerts = _open_then_resolve(h)
        resolved = alerts[-1]
        assert resolved.action.value == "resolved"
        assert "🔴" not in resolved.playbook and "Do now" not in resolved.playbook
        assert "resolved after" in resolved.playbook and "Resume" in resolved.playbook
        assert resolved.latest_update == UPDATE_3[1]
        for text in (_texts(resolved), render_reply(resolved)):
            assert UPDATE_3[1] in text
            assert UPDATE_1[1] not in text
            assert "is down: what to do now" not in text
    finally:
        h.close()


def _facts(alternatives=()):
    return PlaybookFacts(
        vendor="openai",
        vendor_name="OpenAI",
        kind="outage",
        title="ChatGPT is down",
        status="investigating",
        started_at=None,
        components=(),
        used_for=("blog drafts",),
        alternatives=alternatives,
    )


def test_the_client_note_never_claims_backup_tools_when_none_is_healthy():
    from watcher.alerts.model import Alternative

    for locale in ("en", "fr"):
        for kind in ("outage", "degradation"):
            facts = _facts()
            facts = type(facts)(**{**{f: getattr(facts, f) for f in facts.__slots__}, "kind": kind})
            none = render_playbook(facts, locale=locale)
            assert "backup tools" not in none and "outils de secours" not in none, (locale, kind)
        healthy = render_playbook(
            _facts((Alternative("anthropic", "Anthropic", "operational"),)), locale="en"
        )
        assert "backup tools" in healthy
