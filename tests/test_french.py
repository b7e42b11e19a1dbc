"""Issue 16, finding 9: with ``alerts.locale = "fr"`` every message reads in French.

Each message type goes through the real pipeline, engine and renderers (tests/alerting.py) and is
rendered for Slack (fallback, blocks, thread reply) and email (subject, both parts). Vendor text
(titles, updates, component names), product names and links are removed first; what is left must
hold none of the common English words below.
"""

from __future__ import annotations

import json
import math
import re

import scenario
from alerting import AlertHarness

from watcher.alerts.channels.apprise import apprise_text
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
USAGE = (
    "investigating",
    "The usage page is slow to load. Core functionality is not affected.",
    "2026-10-07T13:01:00Z",
)

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
    apprise_title, apprise_body = apprise_text(alert)
    return {
        "apprise title": apprise_title,
        "apprise body": apprise_body,
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
        # why: the classifier's own reason, said in French (the vendor's words it quotes in « »)
        assert "inutilisable pour les utilisateurs concernés (panne)" in opened["email text"], opened[
            "email text"
        ]
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


def test_the_test_alert_writes_its_start_time_one_way_in_fields_and_playbook():
    """Finding 5, tried again: the Slack field said "13:33" and the French playbook "13 h 33"."""
    from watcher.alerts.testing import sample_alert
    from watcher.config import Settings
    from watcher.i18n import format_clock, parse_time, zone

    for locale in ("fr", "en"):
        settings = Settings.model_validate(
            {"watch": ["openai"], "alerts": {"locale": locale, "timezone": "Europe/Paris"}}
        )
        alert = sample_alert(settings)
        started = parse_time(alert.started_at)
        assert started is not None
        clock = format_clock(started.astimezone(zone("Europe/Paris")), locale)
        parts = rendered(alert)
        for part, text in parts.items():
            times = re.findall(r"\b\d{1,2}(?::\d{2}| h \d{2})(?:\s?[AP]M)?", text)
            assert set(times) <= {clock}, f"{locale}, {part}: {times} (want {clock})"
        for part in ("slack blocks", "email text"):  # the field and the playbook: the same clock twice
            assert parts[part].count(clock) >= 2, f"{locale}, {part}: {clock} not in field and playbook"


def test_the_weekly_report_is_in_french():
    from datetime import UTC, datetime, timedelta

    from watcher import report as rpt

    start = datetime(2026, 10, 5, tzinfo=UTC)
    week = 7 * 86400.0
    busy = rpt.VendorReport("anthropic", "Anthropic", week, outage_seconds=3540, degraded_seconds=7200)
    busy.down_seconds = 10740
    busy.incidents_by_kind = {"outage": 1, "degradation": 1}
    busy.incidents = [
        rpt.IncidentLine(
            1,
            "Claude API unavailable",
            "outage",
            start + timedelta(days=2, hours=13),
            start + timedelta(days=2, hours=14),
        ),
        rpt.IncidentLine(
            2, "Elevated errors on platform.claude.com", "degradation", start + timedelta(days=3), None
        ),
    ]
    busy.open_at_end, busy.tta, busy.unacknowledged, busy.ttr = 1, [600.0], 1, [5340.0]
    busy.ttft_median, busy.ttft_prev_median = 0.82, 0.64
    busy.canary_passed, busy.canary_total, busy.probe_requests, busy.tokens, busy.cost = (
        9,
        10,
        40,
        12345,
        0.0123,
    )
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
        left = english_words(QUOTED.sub(" ", text), ["team@example.com"])
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
    # the summary says why, in French: the classifier's reason said again, not a generic line
    assert re.search(r"classé « dégradation » : .*dans le titre.*: fonctionne, mais moins bien", text), text


# --- watcher's own words about incidents and vendors ----------------------------------------------


def _outside_quotes(text: str) -> set[str]:
    """English words of ``text`` once the vendor's words quoted in « » are left out."""
    return english_words(QUOTED.sub(" ", text))


def test_every_classifier_reason_of_the_corpus_reads_in_french():
    """Each reason the classifier gives on the labelled corpus: stored in English, said in French."""
    from pathlib import Path

    from watcher.incidents import wording
    from watcher.incidents.classify import classify_record

    rows = [json.loads(line) for line in (Path(__file__).parents[1] / "data" / "incidents.jsonl").open()]
    seen_kinds = set()
    for row in rows:
        result = classify_record(row)
        stored = str(result.reason)  # what the store keeps: plain English
        assert wording.read_reason(stored) == stored, stored  # read back exactly
        french = wording.say_reason(stored, "fr")
        assert french != stored
        left = _outside_quotes(french)
        assert not left, f"reason: English left: {sorted(left)} in {french!r} (from {stored!r})"
        seen_kinds.add(result.kind)
        assert wording.say_reason(stored, "en") == stored
    assert len(seen_kinds) == 5


def test_an_old_row_and_a_reason_watcher_did_not_write_still_display():
    from watcher.incidents import wording
    from watcher.incidents.model import EventType

    # written by an earlier watcher, same English: read back and said in French
    old = '"failing" and "unable" in the updates: unusable for the users it concerns (outage)'
    assert wording.say_reason(old, "fr") == (
        "« failing » et « unable » dans les mises à jour : inutilisable pour les utilisateurs concernés (panne)"
    )
    # words watcher cannot read back (a detector's reason, older wording): shown as stored, never lost
    for text in ("chat requests fail: 5 of 5 in 10 min", "", "something: else (outage)"):
        assert wording.say_reason(text, "fr") == text
    assert (
        wording.say_event(EventType.VENDOR_UPDATE, "We are investigating.", "fr") == "We are investigating."
    )
    assert (
        wording.say_event(EventType.RESOLVED, "a reason from the future", "fr") == "a reason from the future"
    )


def test_every_incident_event_text_watcher_writes_reads_in_french():
    """Every text the incident stage writes into a timeline event, through the real reconcile()."""
    from datetime import UTC, datetime

    from watcher.i18n import Said
    from watcher.incidents import correlate, wording
    from watcher.incidents.model import EventType
    from watcher.model import ComponentStatus, IncidentKind

    reason = '"down" in the title: unusable for the users it concerns (outage)'
    texts = {
        EventType.MERGED: Said("incident_event.merged", title="Claude API unavailable"),
        EventType.MEASURED: Said("incident_event.probes_cleared"),
        EventType.STATUS_CHANGED: Said(
            "incident_event.status_changed", old="investigating", new="identified"
        ),
        EventType.REOPENED: Said("incident_event.reopened", status="identified"),
        EventType.KIND_CHANGED: correlate._kind_changed(
            IncidentKind.DEGRADATION, IncidentKind.OUTAGE, reason
        ),
        EventType.COMPONENTS_CHANGED: correlate._component_title(
            {n: ComponentStatus.PARTIAL_OUTAGE for n in ("A", "B", "C", "D", "E")}
        ),
        EventType.OPENED: correlate._component_title({"Chat": ComponentStatus.DEGRADED}),
    }
    resolved = [
        Said(f"incident_event.{k}")
        for k in ("maintenance_unlisted", "probes_working", "unlisted", "components_ok")
    ] + [Said("incident_event.vendor_marked", status="resolved")]
    upgrade = f"degradation → outage (classifier model 0123abcd): {reason}"  # watcher/incidents/reclassify.py
    cases = [
        *texts.items(),
        *((EventType.RESOLVED, r) for r in resolved),
        (EventType.KIND_CHANGED, upgrade),
        (EventType.MEASURED, Said("incident_event.probes_confirm", what="Claude API unavailable")),
    ]
    for kind, said in cases:
        stored = str(said)
        french = wording.say_event(kind, stored, "fr")
        assert french != stored, stored
        left = _outside_quotes(french.replace("Claude API unavailable", " "))
        assert not left, f"{kind}: English left: {sorted(left)} in {french!r} (from {stored!r})"
    assert wording.say_event(
        EventType.COMPONENTS_CHANGED, str(texts[EventType.COMPONENTS_CHANGED]), "fr"
    ) == ("Panne partielle : A, B, C et 2 autres")
    # the text the incident stage keeps is the English it always wrote (old rows read the same)
    assert str(resolved[-1]) == "vendor marked it resolved"
    assert str(texts[EventType.OPENED]) == "Degraded performance: Chat"
    # and a real reconcile() writes them: a component-only incident, then all well again
    from watcher.model import Component, Snapshot

    ctx = correlate.Context("anthropic", "anthropic/summary", datetime(2026, 10, 7, 13, tzinfo=UTC))
    down = Snapshot(components=(Component("c1", "Chat", ComponentStatus.MAJOR_OUTAGE),))
    [opened] = correlate.reconcile(ctx, down, [])
    [back] = correlate.reconcile(
        ctx, Snapshot(components=(Component("c1", "Chat", ComponentStatus.OPERATIONAL),)), [opened.incident]
    )
    for ev in [*opened.events, *back.events]:
        french = wording.say_event(ev.type, str(ev.text), "fr")
        assert not _outside_quotes(french), french
    assert wording.say_title(str(opened.incident.title), "fr") == "Panne majeure : Chat"


def test_vendor_states_read_in_french(vendor_server, tmp_path):
    """The one-line state of each vendor fixture, and the fixed ones, in French."""
    from test_vendor_state_evidence import TABLE, _state_of

    from watcher.i18n import Said, say

    for fixture, (vendor, _, _) in TABLE.items():
        (tmp_path / fixture).mkdir()
        st = _state_of(vendor_server, tmp_path / fixture, fixture, vendor)
        french = st.reason_in("fr")
        extra = [*st.vendor.capabilities, *(i.title for i in st.incidents), *(c.name for c in st.components)]
        left = english_words(french, extra)
        assert not left, f"{fixture}: English left: {sorted(left)} in {french!r} (from {st.reason!r})"
        assert st.reason_in("en") == st.reason
    st = _state_of(
        vendor_server,
        tmp_path,
        "summary-anthropic-claude-incident-2026-10-07.json",
        "anthropic",
        uses=["api", "chat app"],
    )
    assert st.reason_in("fr") == (
        "pas utilisé par l'équipe : Claude Console (platform.claude.com) : ralenti "
        "(Elevated errors on platform.claude.com) ; API et application de chat : en service"
    ), st.reason_in("fr")
    for key in ("no_source", "not_polled", "network_unreachable", "no_recent_data", "all_operational"):
        assert not english_words(say(Said(f"vendor_state.{key}"), "fr"))
    failing = Said(
        "vendor_state.with_failing",
        reason=Said("vendor_state.all_operational"),
        n=1,
        total=2,
        failure=Said("vendor_state.source_error", source="feed", error="HTTP 503"),
    )
    assert (
        say(failing, "fr")
        == "tous les composants sont opérationnels (1 sources sur 2 en échec : feed : HTTP 503)"
    )


def test_an_alerts_alternatives_say_their_state_in_french(vendor_server, tmp_path):
    """The other vendors' one-line states, in the alert's playbook and its email: French, vendor words as is."""
    h = AlertHarness(vendor_server, tmp_path, FR)
    try:
        vendor_server.set(
            "/openai/api/v2/summary.json",
            scenario.incident(
                ("investigating", "Chat Completions are slower than usual.", "2026-10-07T12:50:00Z"),
                name="Slow Chat Completions",
                impact="minor",
                component="Claude Code",  # the stand-in page's component names, served as OpenAI's
                component_status="degraded_performance",
                indicator="minor",
                incident_id="zz1openai001",
            ),
        )
        h.poll("openai")
        h.outage(UPDATE_1)
        h.poll()
        alert = next(r.alert for r in h.rows() if r.alert.vendor == "anthropic")
        [openai] = [a for a in alert.alternatives if a.vendor == "openai"]
        assert "ralenti" in openai.reason, openai.reason
        vendor_words = ["Slow Chat Completions", "Chat Completions are slower than usual.", "Claude Code"]
        assert not english_words(openai.reason, vendor_words), openai.reason
        assert_french("opened, with a degraded alternative", alert, vendor_words)
    finally:
        h.close()


def test_an_incident_watcher_opened_from_component_states_has_a_french_title(vendor_server, tmp_path):
    """No vendor incident yet, only a component down: the title watcher writes is French in the alert."""
    h = AlertHarness(vendor_server, tmp_path, FR)
    try:
        h.serve(scenario.components_down("major_outage"))
        h.poll()
        [inc] = h.store.open_incidents("anthropic")
        assert inc.title == "Major outage: Claude API (api.anthropic.com)"  # stored in English, as always
        alert = h.rows()[0].alert
        assert alert.title == "Panne majeure : Claude API (api.anthropic.com)", alert.title
        assert alert.event_text == alert.title, alert.event_text  # what changed: it opened
        assert_french("components alone", alert, ["Claude API (api.anthropic.com)"])
    finally:
        h.close()


def test_slash_command_replies_are_in_french(vendor_server, tmp_path, slack_server):
    """``/watcher`` in Slack answers in ``alerts.locale``: status (with the vendors' reasons), ack,
    mute, subscriptions, on-call, help, refusals and mistakes; times in the team's zone."""
    from test_slack_commands import ADMINS, ANA, BOSS, MALLORY, MKTG, SUBS, Room

    for channel in (MKTG, SUBS):
        slack_server.add_channel(channel)
    slack_server.set_usergroup(ADMINS, [BOSS])
    oncall = {**FR["oncall"], "people": [{"name": "Ana", "slack": ANA}, {"name": "Ben", "slack": None}]}
    room = Room(
        vendor_server, tmp_path, slack_server, {"admin_usergroup": ADMINS}, alerts=FR["alerts"], oncall=oncall
    )
    try:
        room.h.outage(UPDATE_1, name="Claude API unavailable")
        room.h.poll()
        room.h.deliver()
        [inc] = room.store.open_incidents("anthropic")
        said = {}
        for user, text in [
            (ANA, "status"),
            (ANA, f"ack {inc.id} je regarde"),
            (ANA, "status"),
            (ANA, "ack"),
            (ANA, "ack douze"),
            (ANA, "help"),
            (ANA, "redémarre"),
            (ANA, "oncall"),
            (ANA, "subscribe openai --kinds outage,degradation"),
            (ANA, "subscribe openai --kinds outage,degradation"),
            (ANA, "subscribe openai --kinds tout"),
            (ANA, "subscribe"),
            (ANA, "subscriptions"),
            (MALLORY, "unsubscribe openai"),
            (BOSS, "unsubscribe openai"),
            (BOSS, "unsubscribe openai"),
            (BOSS, "mute openai 2h travaux prévus"),
            (BOSS, "mute openai jamais"),
            (BOSS, "mute openai 90d"),
            (BOSS, "mute"),
            (BOSS, "status"),
            (BOSS, "unmute openai"),
            (BOSS, "unmute openai"),
            (BOSS, "unmute"),
            (BOSS, "status nimportequoi"),
        ]:
            said[f"{user} {text}"] = room.command(text, user=user)["text"]
        for label, text in said.items():
            left = english_words(text, ["Claude API unavailable", "je regarde", "travaux prévus"])
            assert not left, f"/watcher {label}: English left: {sorted(left)} in:\n{text}"
        assert "*Éditeurs*" in said[f"{ANA} status"] and "*Incidents ouverts*" in said[f"{ANA} status"]
        status = said[f"{ANA} status"]  # the second one: after the acknowledgement
        assert re.search(r"pris en charge par <@U0ANA00001> le \d+ \w+\.? 2026, \d\d:\d\d CEST", status), (
            status
        )
        assert "panne" in status and "outage" not in status
        refused = said[f"{MALLORY} unsubscribe openai"]
        assert "Seuls les administrateurs de watcher peuvent désabonner des canaux" in refused
        assert "CEST" in said[f"{BOSS} mute openai 2h travaux prévus"], "times in the team's zone"
    finally:
        room.close()


def test_the_boards_error_pages_are_in_french(vendor_server, tmp_path):
    """Error pages ("Unknown incident", "Form expired", "Name needed", "already resolved") in French on a French board."""
    from urllib.parse import urlencode

    from board_harness import BoardWorld, text_of
    from bs4 import BeautifulSoup

    w = BoardWorld(vendor_server, tmp_path, FR)
    try:
        iid = w.outage(UPDATE_1)
        card = w.page("/").find(id=f"incident-{iid}")
        form = card.find("form", class_="ackform")
        hidden = {i["name"]: i.get("value", "") for i in form.find_all("input") if i.get("type") == "hidden"}

        def post(path: str, data: dict) -> tuple[int, str]:
            r = w.http.post(
                path, content=urlencode(data), headers={"content-type": "application/x-www-form-urlencoded"}
            )
            soup = BeautifulSoup(r.text, "html.parser")
            assert soup.find("html")["lang"] == "fr"
            return r.status_code, text_of(soup.find("body")) + " " + text_of(soup.find("title"))

        pages = {
            "unknown": (404, w.http.get("/incidents/999999")),
            "expired": post(f"/incidents/{iid}/ack", {"by": "Ana", "csrf": "0" * 40}),
            "name": post(f"/incidents/{iid}/ack", {**hidden, "by": "  "}),
            "too large": post(f"/incidents/{iid}/ack", {**hidden, "by": "Ana", "reason": "x" * 70000}),
        }
        w.recover()
        pages["resolved"] = post(f"/incidents/{iid}/ack", {**hidden, "by": "Ana"})
        pages["unknown ack"] = post("/incidents/999999/ack", {**hidden, "by": "Ana"})
        r = pages["unknown"][1]
        pages["unknown"] = (r.status_code, text_of(BeautifulSoup(r.text, "html.parser")))
        expected = {
            "unknown": (404, "Incident inconnu"),
            "expired": (403, "Formulaire expiré"),
            "name": (400, "Nom requis"),
            "too large": (413, "Trop volumineux"),
            "resolved": (409, "est déjà résolu"),
            "unknown ack": (404, "Incident inconnu"),
        }
        for label, (status, text) in pages.items():
            assert (status, expected[label][1] in text) == (expected[label][0], True), (label, status, text)
            left = english_words(text)
            assert not left, f"{label}: English left: {sorted(left)}\n{text}"
    finally:
        w.close()


def _alarmed_detectors() -> dict[str, str]:
    """Real detectors driven into alarm; their explanations, as the store keeps them (English)."""
    import random
    from datetime import UTC, datetime, timedelta

    from watcher.detection import BernoulliConfig, BernoulliCusum, ConsecutiveRule, LatencyCusum
    from watcher.detection.latency import fit_latency_baseline

    t0 = datetime(2026, 10, 7, 13, 0, tzinfo=UTC)
    out: dict[str, str] = {}
    rule = ConsecutiveRule(3, 2, what="probe runs")
    for i in range(4):
        rule.update(True, t0 + timedelta(minutes=i))
    out["outage"] = rule.explain()
    errors = BernoulliCusum(BernoulliConfig.errors(), p0=0.005)
    for i in range(3):
        errors.update(True, t0 + timedelta(minutes=i))
    out["errors"] = errors.explain()
    quality = BernoulliCusum(BernoulliConfig(fast_interval_s=None, hard_fail_consecutive=2), p0=0.02)
    for i, failed in enumerate([False] * 5 + [True, True, True, False, True]):
        quality.update(failed, t0 + timedelta(minutes=5 * i))
    out["quality"] = quality.explain()
    rng = random.Random(7)
    history = [
        (t0 - timedelta(minutes=5 * (4032 - i)), math.exp(math.log(0.8) + 0.2 * rng.gauss(0, 1)))
        for i in range(4032)
    ]
    latency = LatencyCusum(baseline=fit_latency_baseline(history))
    for i in range(200):
        if latency.update(0.8 * 4, t0 + timedelta(minutes=5 * i)):
            break
    out["latency"] = latency.explain()
    out["errors; latency"] = "; ".join([out["errors"], out["latency"]])
    assert all(d.alarm for d in (rule, errors, quality, latency)), out
    return out


def test_the_reasons_of_watchers_own_detectors_read_in_french():
    """A probe incident's reason ("Outage: 4 probe runs failed since 13:00 UTC ...") said in French,
    from the English the store keeps; English stays exactly as it was written."""
    from datetime import UTC, datetime

    from watcher.detection.confirm import Confirmation, Sighting
    from watcher.i18n import Said
    from watcher.incidents.model import EventType
    from watcher.incidents.wording import read_detector, say_event, say_reason, say_title

    reasons = _alarmed_detectors()
    now = datetime(2026, 10, 7, 13, 5, tzinfo=UTC)
    seen = (Sighting("paris", now, True, now), Sighting("frankfurt", now, True, now))
    conf = Confirmation(seen, ("frankfurt", "paris", "virginia"), 2)
    reasons["confirmed"] = Said("detect.confirmed", explain=conf.explain(), since="13:05 UTC")
    assert "Since the first" in reasons["quality"] and "Clears after" in reasons["quality"], reasons[
        "quality"
    ]
    for label, reason in reasons.items():
        stored = str(reason)  # what the store keeps and reads back
        assert read_detector(stored) is not None, f"{label}: not read back: {stored}"
        assert say_reason(stored, "en") == stored
        french = say_reason(stored, "fr")
        left = english_words(french, ["TTFT"])
        assert not left and french != stored, f"{label}: English left: {sorted(left)} in:\n{french}"
        event = say_event(EventType.VENDOR_UPDATE, f"Seen by watcher's own probes: {stored}", "fr")
        assert event.startswith("Vu par les sondes de watcher : ") and french in event
        assert french in say_event(EventType.MEASURED, f"our probes confirm: {stored}", "fr")
    assert "Panne : 4 passages de sonde en échec depuis 13:00 UTC" in say_reason(reasons["outage"], "fr")
    assert "ne répond plus depuis 2 des 3 sites (paris, frankfurt)" in say_reason(reasons["confirmed"], "fr")
    # a reason watcher cannot read back entirely is shown as stored, never half-translated
    odd = reasons["outage"] + " Something a newer watcher added."
    assert say_reason(odd, "fr") == odd
    assert say_title("Anthropic API is not answering watcher's probes", "fr") == (
        "L'API Anthropic ne répond plus aux sondes de watcher"
    )


def test_the_email_acknowledge_link_pages_are_in_french(tmp_path):
    """The "Je m'en occupe" link of a French email opens a French page, and so do its answers."""
    from urllib.parse import urljoin

    from store_backends import Backend
    from test_web import World, link_for, parse_form

    from watcher.alerts.signing import ack_link

    w = World(tmp_path, Backend("sqlite", str(tmp_path / "w.db")), alerts=FR["alerts"])
    try:
        inc = w.incident()
        url = link_for(w, inc)
        pages = {"form": w.http.get(url)}
        form = parse_form(pages["form"].text)
        target = urljoin(url, form["action"])
        pages["no name"] = w.http.post(target, data={**form["fields"], "by": "   "})
        pages["done"] = w.http.post(target, data={**form["fields"], "by": "Ana"})
        pages["used"] = w.http.post(target, data={**form["fields"], "by": "Ben"})
        pages["already"] = w.http.get(link_for(w, inc, ttl=7200))
        pages["invalid"] = w.http.get(url.replace("s=", "s=0"))
        pages["unknown"] = w.http.get(ack_link(w.web.url, "ack-secret-for-tests", 999999, 3600))
        resolved = w.incident("Old trouble", resolved=True)
        pages["resolved"] = w.http.get(link_for(w, resolved))
        expected = {
            "form": "Prendre en charge l'incident n°",
            "no name": "Pas pris en charge",
            "done": "pris en charge par Ana",
            "used": "Lien déjà utilisé",
            "already": "Déjà pris en charge par Ana le",
            "invalid": "Lien non valide",
            "unknown": "Incident inconnu",
            "resolved": "Déjà résolu",
        }
        for label, r in pages.items():
            text = re.sub(r"<[^>]+>", " ", r.text).replace("&#x27;", "'")
            assert expected[label] in text, (label, r.status_code, text)
            assert '<html lang="fr">' in r.text or "<html lang=fr>" in r.text, label
            left = english_words(text, ["Elevated errors on the API", "Old trouble", "watcher"])
            assert not left, f"{label}: English left: {sorted(left)} in:\n{text}"
    finally:
        w.close()


def test_a_refused_mute_click_is_explained_in_french():
    """The Mute 1h button of a French alert, pressed by someone who may not: the refusal in French."""
    from watcher.alerts.actions import NO_PERMISSIONS, refusal_text
    from watcher.alerts.slash_io import Permissions

    for decision in (
        Permissions().check("U0MALLORY1"),
        Permissions(["U0BOSS0001"]).check("U0X"),
        NO_PERMISSIONS,
    ):
        assert decision[0] is False
        french = refusal_text(decision, "fr")
        assert "mettre des éditeurs en sourdine" in french and "{what}" not in french, french
        assert not english_words(french), french
        assert "mute vendors" in refusal_text(decision, "en")


def test_numbers_in_reasons_take_the_decimal_sign_of_the_language_and_stay_english_when_stored():
    from watcher.i18n import Said

    alarm = Said(
        "detect.latency_alarm", metric="time to first token", ratio="3.9", n=20, first="12:00", at="12:05", now="ok"
    )
    assert "3.9×" in alarm, "what is stored stays English, point included"
    assert "3,9×" in alarm.say("fr") and "3.9" not in alarm.say("fr")
    # a vendor's own words are not numbers to reformat: only a value that is a whole decimal number
    titled = Said("detect.latency_alarm", metric="GPT-4.5", ratio="2.0", n=20, first="x", at="y", now="z")
    assert "GPT-4.5" in titled.say("fr") and "2,0×" in titled.say("fr")
