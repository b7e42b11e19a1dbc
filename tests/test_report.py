"""The weekly report, built from a store with real incidents and sent to Slack and email stand-ins.

The incidents come through the real pipeline (AlertHarness: Anthropic's real
Statuspage payload served from 127.0.0.1, the real alert engine and outbox);
the report goes to the Slack stand-in (tests/slack_server.py) and to aiosmtpd.
Every test on that week runs on both stores (SQLite on a file, PostgreSQL in a
fresh schema: tests/store_backends.py) and asserts the same figures on each.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
import scenario
import store_backends
from alerting import AlertHarness
from test_delivery import mailer_for

from watcher import report as rpt
from watcher.alerts.deliver import Transports
from watcher.alerts.slack import SlackBot
from watcher.config import Settings

# each test using ``week`` runs on SQLite and on PostgreSQL
backend = store_backends.backend

PARIS = ZoneInfo("Europe/Paris")
EVIL = "<!channel> Claude API <b>down</b> & out"
CHANNEL = "C0MKTG"
REPORT_CHANNEL = "C0REPORT"
START = datetime(2026, 10, 5, 9, 0, tzinfo=PARIS).astimezone(UTC)  # Monday 09:00 Paris
END = datetime(2026, 10, 12, 9, 0, tzinfo=PARIS).astimezone(UTC)


@pytest.fixture
def week(vendor_server, tmp_path, slack_server, smtp_server, backend):
    """A week with two Anthropic incidents (one acknowledged) and a week of probe results, in ``backend``."""
    slack_server.add_channel(CHANNEL)
    slack_server.add_channel(REPORT_CHANNEL)
    transports = Transports(
        slack_bot=SlackBot(slack_server.token, base_url=slack_server.api_url, timeout=2),
        mailer=mailer_for(smtp_server),
    )
    h = AlertHarness(
        vendor_server,
        tmp_path,
        {
            "routes": [{"name": "marketing", "slack_channels": [CHANNEL]}],
            "report": {
                "slack_channels": [REPORT_CHANNEL],
                "emails": ["team@example.com"],
                "timezone": "Europe/Paris",
            },
        },
        transports=transports,
        store=backend.open(),
    )
    # 1. an outage, acknowledged after 10 minutes, resolved at 14:00
    h.outage(("investigating", "Claude API requests are failing.", "2026-10-07T13:01:00Z"), name=EVIL)
    h.poll()
    h.deliver()
    [first] = h.store.open_incidents("anthropic")
    h.clock.tick(600)
    h.engine.acknowledge(first.id, "ana", via="slack")
    h.clock.now = datetime(2026, 10, 7, 14, 0, tzinfo=UTC)
    h.serve(scenario.operational())
    h.poll()
    h.poll("openai")
    h.deliver()
    # 2. a degradation the next day, never acknowledged, two hours long
    h.clock.now = datetime(2026, 10, 8, 10, 0, tzinfo=UTC)
    h.serve(
        scenario.incident(
            ("investigating", "Responses are slower than usual.", "2026-10-08T10:00:00Z"),
            name="Slow responses on Claude",
            impact="minor",
            component_status="degraded_performance",
            incident_id="zz2slow",
        )
    )
    h.poll()
    h.deliver()
    h.clock.now = datetime(2026, 10, 8, 12, 0, tzinfo=UTC)
    h.serve(scenario.operational())
    h.poll()
    h.deliver()
    # probes: first-token times this week and the week before, canaries, spending
    for day, ttfts in ((START + timedelta(days=1), [0.4, 0.5, 0.6]), (START - timedelta(days=3), [0.4, 0.4, 0.4])):
        for i, v in enumerate(ttfts):
            h.store.add_probe_result(
                {"vendor": "anthropic", "kind": "chat", "at": day + timedelta(minutes=i), "ok": True,
                 "ttft_s": v, "tokens_in": 30, "tokens_out": 10, "cost": 0.001}
            )
    for i in range(10):
        h.store.add_probe_result(
            {"vendor": "anthropic", "kind": "chat", "at": START + timedelta(days=2, minutes=i), "ok": True,
             "canary": "sum", "passed": i != 3, "tokens_in": 20, "tokens_out": 5, "cost": 0.0005}
        )
    yield h, slack_server, smtp_server
    h.close()


def test_build_report_from_real_incidents(week):
    h, _, _ = week
    incs = {i.title: i for i in h.store.incidents(vendor="anthropic")}
    outage, slow = incs[EVIL], incs["Slow responses on Claude"]
    assert outage.kind.value == "outage" and slow.kind.value == "degradation"

    r = rpt.build_report(h.store, h.vendors, h.settings, START, END)
    a = next(v for v in r.vendors if v.vendor == "anthropic")
    o = next(v for v in r.vendors if v.vendor == "openai")
    down_outage = (outage.resolved_at - outage.started_at).total_seconds()
    down_slow = (slow.resolved_at - slow.started_at).total_seconds()
    assert down_outage == 59 * 60 and down_slow == 2 * 3600
    assert a.outage_seconds == down_outage and a.degraded_seconds == down_slow
    assert a.availability == pytest.approx(100 * (1 - (59 * 60 + 7200) / (7 * 86400)))
    assert a.incidents_by_kind == {"outage": 1, "degradation": 1}
    assert [i.title for i in a.incidents] == [EVIL, "Slow responses on Claude"]
    assert a.incidents[0].acknowledged_by == "ana"
    assert a.tta == [600.0] and a.unacknowledged == 1
    assert sorted(a.ttr) == [59 * 60, 7200]
    assert a.ttr_stats() == (pytest.approx((3540 + 7200) / 2), pytest.approx(3540 + 0.9 * (7200 - 3540)))
    assert a.ttft_median == pytest.approx(0.5) and a.ttft_prev_median == pytest.approx(0.4)
    assert a.latency_change == pytest.approx(25.0)
    assert (a.canary_passed, a.canary_total) == (9, 10)
    assert a.tokens == 3 * 40 + 10 * 25 and a.probe_requests == 13
    assert a.cost == pytest.approx(3 * 0.001 + 10 * 0.0005)
    assert o.quiet and o.availability == 100.0

    # an incident spilling over the window is clipped to it; a later week does not see these
    r2 = rpt.build_report(h.store, h.vendors, h.settings, datetime(2026, 10, 7, 13, 31, tzinfo=UTC), END)
    a2 = next(v for v in r2.vendors if v.vendor == "anthropic")
    assert a2.outage_seconds == 29 * 60
    assert a2.incidents_by_kind == {"degradation": 1}
    later = rpt.build_report(h.store, h.vendors, h.settings, END, END + timedelta(days=7))
    assert all(v.quiet for v in later.vendors)


def test_the_report_reads_well_and_escapes_vendor_text(week):
    h, _, _ = week
    r = rpt.build_report(h.store, h.vendors, h.settings, START, END)
    text = rpt.render_text(r)
    assert "watcher weekly report: Mon 5 Oct 2026 – Mon 12 Oct 2026 (Europe/Paris)" in text
    assert "Availability:        98.22 % (outage 59 min, degraded 2 hr)" in text
    assert "Incidents:           1 outage, 1 degradation" in text
    assert "Time to acknowledge: median 10 min, p90 10 min (1 acknowledged, 1 never)" in text
    assert "Time to resolve:     median 1 hr 29 min, p90 1 hr 53 min (2 resolved)" in text
    assert "Probe latency:       median first token 500 ms, 25 % slower than the week before (400 ms)" in text
    assert "Canary accuracy:     90.0 % (9 of 10 right)" in text
    assert "No incidents, 100 % available: OpenAI" in text
    assert "Wed 7 Oct 15:01 → Wed 7 Oct 16:00, 59 min" in text  # Paris time

    fallback, blocks = rpt.render_slack_blocks(r)
    shown = "\n".join(str(b) for b in blocks)
    assert "<!channel>" not in shown and "<b>" not in shown
    assert "&lt;!channel&gt; Claude API &lt;b&gt;down&lt;/b&gt; &amp; out" in shown
    assert len(blocks) <= 50

    msg = rpt.render_email(r, sender="watcher <alerts@example.com>", recipients=["team@example.com"])
    assert msg["Subject"] == "[watcher] Weekly report 5 Oct – 12 Oct 2026: 2 incidents"
    html = msg.get_body(("html",)).get_content()
    assert "&lt;!channel&gt; Claude API &lt;b&gt;down&lt;/b&gt; &amp; out" in html
    assert "<b>down</b>" not in html
    assert EVIL in msg.get_body(("plain",)).get_content()


def test_send_report_to_slack_and_email(week):
    h, slack, smtp = week
    r = rpt.build_report(h.store, h.vendors, h.settings, START, END)
    results = asyncio.run(rpt.send_report(r, h.settings, h.transports))
    assert [(x.target, x.ok) for x in results] == [("slack:C0REPORT", True), ("email:team@example.com", True)]
    [msg] = slack.messages(REPORT_CHANNEL)
    shown = msg.all_text()
    assert "watcher weekly report" in shown
    assert "Availability: 98.22 %" in shown
    assert "&lt;!channel&gt;" in shown and "<!channel>" not in shown + msg.text
    [mail] = smtp.wait_for(1)
    assert mail.rcpt_tos == ["team@example.com"]
    assert mail.message["Subject"].startswith("[watcher] Weekly report")
    assert "Time to acknowledge" in mail.message.get_body(("plain",)).get_content()
    assert mail.tls and mail.login == "bob"


def test_run_weekly_queues_once_per_week_and_the_outbox_retries_a_target_that_failed(week):
    """The report goes through the outbox: queued once per target and week, sent by the Deliverer with the
    alerts' retries (a Slack 500 is tried again after its backoff, not on the next weekly run)."""
    h, slack, smtp = week
    before = datetime(2026, 10, 12, 8, 59, tzinfo=PARIS)
    assert asyncio.run(rpt.run_weekly(h.store, h.vendors, h.settings, h.transports, now=before)) == []
    slack.fail_next(1, status=500)  # Slack has a bad minute at 09:00
    at = datetime(2026, 10, 12, 9, 1, tzinfo=PARIS)
    first = asyncio.run(rpt.run_weekly(h.store, h.vendors, h.settings, h.transports, now=at))
    assert first == ["slack:C0REPORT", "email:team@example.com"]
    h.clock.now = at.astimezone(UTC)
    h.deliver()
    reports = [n for n in h.rows() if n.action.value == "report"]
    assert {(n.channel, n.target, n.state) for n in reports} == {
        ("slack", REPORT_CHANNEL, "pending"),
        ("email", "team@example.com", "delivered"),
    }
    assert all(n.incident_id == 0 for n in reports)
    assert slack.messages(REPORT_CHANNEL) == []
    second = asyncio.run(rpt.run_weekly(h.store, h.vendors, h.settings, h.transports, now=at + timedelta(minutes=5)))
    assert second == [], "queued once: the outbox retries, the schedule does not queue it again"
    h.clock.now = (at + timedelta(minutes=5)).astimezone(UTC)
    h.deliver()
    third = asyncio.run(rpt.run_weekly(h.store, h.vendors, h.settings, h.transports, now=at + timedelta(hours=3)))
    assert third == []
    assert len(slack.messages(REPORT_CHANNEL)) == 1 and len(smtp.messages) == 1
    assert [n.state for n in h.rows() if n.action.value == "report"] == ["delivered", "delivered"]
    # the report covered the week before Monday 09:00 Paris
    assert "Mon 5 Oct 2026 – Mon 12 Oct 2026" in slack.messages(REPORT_CHANNEL)[0].all_text()
    [mail] = smtp.messages
    assert mail.message["Subject"].startswith("[watcher] Weekly report")
    assert rpt.last_sent(h.store, "slack:C0REPORT") == at.astimezone(UTC)
    assert any(a["what"] == "report" for a in h.store.audit_log())


def test_a_report_slack_refuses_for_good_falls_back_to_email_like_an_alert(week):
    """A permanent failure (the bot is not in the channel) kills the Slack row and the report goes to
    ``email.fallback_to`` instead, as an alert's would."""
    h, slack, smtp = week
    h.settings.report.slack_channels = ["C0GONE"]  # a channel the Slack stand-in does not know
    h.settings.report.emails = []
    h.settings.email.fallback_to = ["oncall@example.com"]
    at = datetime(2026, 10, 12, 9, 1, tzinfo=PARIS)
    assert asyncio.run(rpt.run_weekly(h.store, h.vendors, h.settings, h.transports, now=at)) == ["slack:C0GONE"]
    h.clock.now = at.astimezone(UTC)
    h.deliver()
    h.deliver()
    rows = [n for n in h.rows() if n.action.value == "report"]
    assert [(n.channel, n.target, n.state) for n in rows] == [
        ("slack", "C0GONE", "dead"),
        ("email", "oncall@example.com", "delivered"),
    ]
    [mail] = smtp.wait_for(1)
    assert mail.rcpt_tos == ["oncall@example.com"]
    assert "Time to acknowledge" in mail.message.get_body(("plain",)).get_content()


def report_settings(**kw) -> Settings:
    return Settings.model_validate({"report": {"weekday": "monday", "time": "09:00", "timezone": "Europe/Paris", **kw}})


def paris(*args) -> datetime:
    return datetime(*args, tzinfo=PARIS)


def test_due_at_the_configured_weekday_time_and_zone():
    s = report_settings()
    assert rpt.last_occurrence(paris(2026, 10, 14, 12, 0), s) == paris(2026, 10, 12, 9, 0)
    assert rpt.last_occurrence(paris(2026, 10, 12, 8, 59), s) == paris(2026, 10, 5, 9, 0)
    assert not rpt.due(paris(2026, 10, 12, 8, 59), s, paris(2026, 10, 5, 9, 2))
    assert rpt.due(paris(2026, 10, 12, 9, 0), s, paris(2026, 10, 5, 9, 2))
    assert rpt.due(paris(2026, 10, 12, 9, 0), s, None)
    assert not rpt.due(paris(2026, 10, 12, 9, 30), s, paris(2026, 10, 12, 9, 1)), "sent already"
    assert not rpt.due(paris(2026, 10, 14, 9, 30), s, paris(2026, 10, 5, 9, 1)), "too late: next week's"
    assert rpt.due(paris(2026, 10, 13, 8, 0), s, paris(2026, 10, 5, 9, 1)), "up to a day late after a restart"
    assert not rpt.due(paris(2026, 10, 12, 9, 30), report_settings(enabled=False), None)
    # another zone: Monday 09:00 in Tokyo is Monday 00:00 UTC
    tokyo = report_settings(timezone="Asia/Tokyo")
    assert rpt.last_occurrence(datetime(2026, 10, 12, 0, 30, tzinfo=UTC), tokyo) == datetime(2026, 10, 12, 0, 0, tzinfo=UTC)


def test_the_week_across_a_clock_change_is_the_seven_local_days():
    s = report_settings()
    start, end = rpt.report_window(paris(2026, 10, 26, 10, 0), s)  # summer time ended on Sunday 25 October
    assert start == paris(2026, 10, 19, 9, 0) and end == paris(2026, 10, 26, 9, 0)
    assert end - start == timedelta(days=7, hours=1)
    assert start.astimezone(PARIS).time() == time(9, 0) and end.astimezone(PARIS).time() == time(9, 0)


def test_send_report_without_channels_configured_says_so(week):
    h, _, _ = week
    r = rpt.build_report(h.store, h.vendors, h.settings, START, END)
    results = asyncio.run(rpt.send_report(r, h.settings, Transports()))
    assert [(x.target, x.ok, x.permanent) for x in results] == [
        ("slack:C0REPORT", False, True),
        ("email:team@example.com", False, True),
    ]
    assert "WATCHER_SLACK__TOKEN" in results[0].error
