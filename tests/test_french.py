"""Issue 16, finding 9: with ``alerts.locale = "fr"`` every message reads in French.

Each message type goes through the real pipeline, engine and renderers (tests/alerting.py) and is
rendered for Slack (fallback, blocks, thread reply) and email (subject, both parts). Vendor text
(titles, updates, component names), product names and links are removed first; what is left must
hold none of the common English words below.
"""

from __future__ import annotations

import json
import re

import scenario
from alerting import AlertHarness

from watcher.alerts.email import render_html, render_subject, render_text
from watcher.alerts.model import AlertAction
from watcher.alerts.slack_render import render_message, render_reply

# Common English words that have no business in a French message (none is also a French word).
ENGLISH = frozenset(
    """
    the and with from your this that what when why who now not after before open opened resolved
    update updated latest acknowledge acknowledged reminder escalated mute cancel kind state
    affected started scheduled duration links other right healthy alternatives vendor vendors
    incident's sent replies read automated changed yet team work do does is are was has have
    been will you we our of to in on at by for or it its down back
    """.split()
)

UPDATE_1 = ("investigating", "We are investigating failing Claude API requests.", "2026-10-07T13:01:00Z")
UPDATE_2 = ("identified", "We found the cause and are deploying a fix.", "2026-10-07T13:20:00Z")
USAGE = ("investigating", "The usage page is slow to load. Core functionality is not affected.", "2026-10-07T13:01:00Z")

FR = {
    "alerts": {"locale": "fr", "timezone": "Europe/Paris"},
    "oncall": {
        "people": [
            {"name": "Ana", "email": "ana@example.com", "slack": "U0ANA"},
            {"name": "Ben", "email": "ben@example.com", "slack": "U0BEN"},
        ],
        "rotation_start": "2026-10-05",
        "remind_after": 900,
        "escalate_after": 1800,
    },
}

VENDOR_TEXT = [
    UPDATE_1[1],
    UPDATE_2[1],
    USAGE[1],
    "Claude API unavailable",
    "Elevated errors on platform.claude.com",
    "Core functionality is not affected",  # quoted from the update, in the scope line
]
QUOTED = re.compile(r"« ([^»]*) »")  # the vendor's own words, quoted in a French sentence
PRODUCT_NAMES = ["Anthropic", "OpenAI", "Claude API", "Claude", "ChatGPT", "watcher test-alert", "watcher"]


def english_words(text: str, extra_vendor_text=()) -> set[str]:
    for s in [*VENDOR_TEXT, *extra_vendor_text]:
        text = text.replace(s, " ")
    # links, markup and config keys shown as code (`used_for = [...]`) are not prose
    text = re.sub(r"<code[^>]*>.*?</code>|https?://\S+|<[^>]*>|&\w+;|`[^`]*`", " ", text)
    for name in PRODUCT_NAMES:
        text = text.replace(name, " ")
    return {w for w in re.findall(r"[A-Za-z']+", text) if w.lower() in ENGLISH}


def rendered(alert) -> dict[str, str]:
    fallback, blocks = render_message(alert)
    texts = []

    def walk(node):
        if isinstance(node, dict):
            for k, v in node.items():
                if k == "text" and isinstance(v, str):
                    texts.append(v)
                else:
                    walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(blocks)
    subject = render_subject(alert, 1 if alert.action is not AlertAction.OPENED else 0)
    return {
        "slack fallback": fallback,
        "slack blocks": "\n".join(texts),
        "slack reply": render_reply(alert),
        "email subject": subject,
        "email text": render_text(alert),
        "email html": render_html(alert, subject),
    }


def assert_french(label: str, alert, extra=()) -> None:
    for part, text in rendered(alert).items():
        left = english_words(text, extra)
        lines = [ln for ln in re.split(r"\n|(?=<)", text) if english_words(ln, extra)]
        assert not left, f"{label}, {part}: English left: {sorted(left)} in:\n" + "\n".join(lines)


def test_every_alert_message_type_is_in_french(vendor_server, tmp_path):
    h = AlertHarness(vendor_server, tmp_path, FR)
    try:
        h.clock.tick()
        h.outage(UPDATE_1)
        h.poll()
        h.clock.tick(600)
        assert h.engine.tick() == 0
        h.clock.tick(400)
        h.engine.tick()  # reminder
        h.clock.tick(900)
        h.engine.tick()  # escalation
        h.clock.tick(60)
        h.outage(UPDATE_1, UPDATE_2)
        h.poll()  # update
        h.engine.acknowledge(h.rows()[0].alert.incident_id, "Ana", "je regarde")
        h.clock.tick(600)
        h.serve(scenario.operational())
        h.poll()  # resolve
        seen = {}
        for row in h.rows():
            seen.setdefault(row.alert.action, row.alert)
        assert set(seen) >= {
            AlertAction.OPENED,
            AlertAction.REMINDER,
            AlertAction.ESCALATION,
            AlertAction.UPDATED,
            AlertAction.ACKNOWLEDGED,
            AlertAction.RESOLVED,
        }, set(seen)
        for action, alert in seen.items():
            assert alert.locale == "fr"
            assert_french(action.value, alert)
        opened = rendered(seen[AlertAction.OPENED])
        assert "Début" in opened["slack blocks"] and "CEST" in opened["slack blocks"]
        assert "Je m'en occupe" in opened["slack blocks"]
        assert "Que faire" in opened["email text"] or "que faire" in opened["email text"]
    finally:
        h.close()


def test_a_quiet_notice_is_in_french(vendor_server, tmp_path):
    h = AlertHarness(vendor_server, tmp_path, {**FR, "vendors": {"anthropic": {"uses": ["api", "chat app"]}}})
    try:
        h.outage(
            USAGE,
            name="Elevated errors on platform.claude.com",
            impact="major",
            component="Claude Console (platform.claude.com)",
            component_status="partial_outage",
            indicator="minor",
            incident_id="zz1usage0001",
        )
        h.poll()
        alert = h.rows()[0].alert
        assert alert.quiet
        assert_french("notice", alert, [c for c in alert.components])
    finally:
        h.close()


def test_the_test_alert_is_in_french():
    from watcher.alerts.testing import sample_alert
    from watcher.config import Settings

    settings = Settings.model_validate({"watch": ["openai", "anthropic"], "alerts": {"locale": "fr"}})
    alert = sample_alert(settings)
    assert_french("test alert", alert)
    assert json.dumps(alert.to_json())  # still serialisable for the outbox


def test_the_weekly_report_is_in_french():
    from datetime import UTC, datetime, timedelta

    from watcher import report as rpt

    start = datetime(2026, 10, 5, tzinfo=UTC)
    week = 7 * 86400.0
    busy = rpt.VendorReport("anthropic", "Anthropic", week, outage_seconds=3540, degraded_seconds=7200)
    busy.down_seconds = 10740
    busy.incidents_by_kind = {"outage": 1, "degradation": 1}
    busy.incidents = [
        rpt.IncidentLine(1, "Claude API unavailable", "outage", start + timedelta(days=2, hours=13),
                         start + timedelta(days=2, hours=14)),
        rpt.IncidentLine(2, "Elevated errors on platform.claude.com", "degradation",
                         start + timedelta(days=3), None),
    ]
    busy.open_at_end, busy.tta, busy.unacknowledged, busy.ttr = 1, [600.0], 1, [5340.0]
    busy.ttft_median, busy.ttft_prev_median = 0.82, 0.64
    busy.canary_passed, busy.canary_total, busy.probe_requests, busy.tokens, busy.cost = 9, 10, 40, 12345, 0.0123
    quiet = rpt.VendorReport("openai", "OpenAI", week)
    report = rpt.Report(start, start + timedelta(days=7), "Europe/Paris", start, [busy, quiet], "fr")
    fallback, blocks = rpt.render_slack_blocks(report)
    parts = {
        "text": rpt.render_text(report),
        "slack": fallback + "\n" + json.dumps(blocks, ensure_ascii=False),
        "subject": rpt.render_subject(report),
        "html": rpt.render_html(report),
    }
    for part, text in parts.items():
        left = english_words(text)
        assert not left, f"weekly report, {part}: English left: {sorted(left)}\n{text}"
    assert "lun. 5 oct. 2026" in parts["text"] and "Disponibilité" in parts["text"]
    assert "12\u202f345" in parts["text"] or "12 345" in parts["text"]  # numbers as written in French


def test_the_board_page_is_in_french(vendor_server, tmp_path):
    from board_harness import BoardWorld, text_of

    w = BoardWorld(vendor_server, tmp_path, FR)
    try:
        first = w.outage(UPDATE_1)
        w.clock.tick(25 * 60)
        w.recover()  # one incident in the history, with its duration
        w.clock.tick(60)
        w.outage(UPDATE_1, incident_id="zz1outage002")  # and one open now
        w.clock.tick(10 * 60)
        soup = w.page("/")
        assert soup.find("html")["lang"] == "fr"
        text = text_of(soup.find("body")) + " " + text_of(soup.find("title"))
        left = english_words(text)
        assert not left, f"board: English left: {sorted(left)}\n{text}"
        assert "Je m'en occupe" in text and "Incidents en cours" in text
        assert "a duré 24 min" in text, text
        incident = w.page(f"/incidents/{first}")
        text = text_of(incident.find("body")) + " " + text_of(incident.find("title"))
        # the whole page: timeline labels, watcher's own event texts, delivery details, the classifier's
        # reason; only the vendor's words (quoted in « »), the playbook's own prose is checked elsewhere
        left = english_words(text, [*QUOTED.findall(text), "team@example.com"])
        assert not left, f"incident page: English left: {sorted(left)}\n{text}"
        assert "Chronologie" in text and "Ouverture" in text and "Résolution" in text
        assert "inutilisable pour les utilisateurs concernés" in text or "fonctionne, mais moins bien" in text
        assert "l'incident n'est plus listé comme en cours sur la page d'état" in text, text
    finally:
        w.close()


def test_every_english_text_has_a_french_one():
    """Adding a language is one folder with the same keys: French has every key English has."""
    from watcher.i18n import locales, messages

    assert {"en", "fr"} <= set(locales())
    assert set(messages("en")) - set(messages("fr")) == set()


def test_the_demo_is_in_french():
    import io

    from watcher import demo

    out = io.StringIO()
    assert demo.main(["--speed", "1000", "--no-web", "--locale", "fr"], out=out) == 0
    text = out.getvalue()
    kept = []
    for line in text.splitlines():
        if re.match(r"\s*(│ )?> ", line.replace("    │ >", "    │ > ")) or line.lstrip("│ ").startswith(">"):
            continue  # the vendor's updates, quoted
        line = re.sub(r"mise à jour de l'éditeur : .*", "", line)  # the vendor's update, in one line
        kept.append(line)
    left = english_words(
        "\n".join(kept),
        [
            "Core functionality is not affected",
            "Claude Console (platform.claude.com)",
            "summary-anthropic-claude-incident-2026-10-07.json",
            "marketing-oncall@example.com",
            "Statuspage",
        ],
    )
    assert not left, f"demo: English left: {sorted(left)}\n{text}"
    assert "Alerte à marketing-oncall@example.com (ouverture)" in text
    assert "résolu au bout de 8 h 49 min" in text
