"""Incidents reach Slack and email through the outbox: once, in order, in place, and after failures.

Everything is real except the clock: the vendor page and the Slack Web API are
HTTP servers on 127.0.0.1 (tests/vendor_server.py, tests/slack_server.py), email
goes to aiosmtpd (tests/smtp_server.py). Each test runs on both stores: a SQLite file and
a PostgreSQL schema (tests/store_backends.py).
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from datetime import timedelta

import alerting
import scenario
from alerting import CHANNEL, UPDATE_1, UPDATE_2, mailer_for

# the fixtures: ``make`` builds alert harnesses on each store (SQLite, PostgreSQL), ``slack`` the stand-in
make, slack = alerting.make, alerting.slack



def test_one_incident_is_one_slack_message_updated_in_place_with_thread_replies(make, slack):
    h = make()
    h.outage(UPDATE_1)
    h.poll()
    assert h.deliver() == 1
    [msg] = slack.messages(CHANNEL)
    assert "Claude API unavailable" in msg.all_text()
    assert "Acknowledge" in msg.all_text()

    h.clock.tick()
    h.outage(UPDATE_1, UPDATE_2)
    h.poll()
    h.deliver()
    [same] = slack.messages(CHANNEL)
    assert same.ts == msg.ts and same.edited
    assert UPDATE_2[1] in same.all_text()
    assert len(slack.replies(CHANNEL, msg.ts)) == 1

    h.clock.tick(600)
    h.serve(scenario.operational())
    h.poll()
    h.deliver()
    [done] = slack.messages(CHANNEL)
    assert done.ts == msg.ts
    assert "Resolved" in done.all_text()
    assert "Acknowledge" not in done.all_text(), "no buttons on a resolved incident"
    assert len(slack.replies(CHANNEL, msg.ts)) == 2
    assert [n.state for n in h.rows()] == ["delivered"] * 3


def test_slack_down_for_a_while_delivers_everything_after_in_order(make, slack):
    h = make({"alerts": {"fallback_after": 86400}})
    slack.down()
    h.outage(UPDATE_1)
    h.poll()
    h.deliver()
    h.clock.tick()
    h.outage(UPDATE_1, UPDATE_2)
    h.poll()
    for _ in range(5):  # an hour of retries against a dead Slack
        h.clock.tick(600)
        h.deliver()
    assert slack.messages(CHANNEL) == []
    first = h.rows()[0]
    assert first.state == "pending" and first.attempts >= 3
    assert "cannot reach Slack" in first.last_error
    assert h.rows()[1].attempts == 0, "the update waits for the opening: order is kept"

    slack.up()
    h.clock.tick(600)
    h.deliver()
    [msg] = slack.messages(CHANNEL)
    assert UPDATE_2[1] in msg.all_text(), "the edit came after the post"
    assert len(slack.replies(CHANNEL, msg.ts)) == 1
    assert [n.state for n in h.rows()] == ["delivered", "delivered"]


def test_a_429_is_retried_no_sooner_than_retry_after(make, slack):
    h = make()
    slack.fail_next(1, status=429, headers={"Retry-After": "120"})
    h.outage(UPDATE_1)
    h.poll()
    h.deliver()
    [n] = h.rows()
    assert n.state == "pending"
    assert n.not_before >= h.clock() + timedelta(seconds=120)
    h.clock.tick(60)
    assert h.deliver() == 0, "not before Retry-After"
    h.clock.tick(61)
    h.deliver()
    assert len(slack.messages(CHANNEL)) == 1
    assert len(slack.calls("chat.postMessage")) == 2, "slack-sdk did not retry behind our back"


def test_a_permanent_slack_error_stops_retrying_and_says_what_to_fix(make, slack):
    h = make(routes=[{"name": "m", "slack_channels": ["C0GONE"]}])
    h.outage(UPDATE_1)
    h.poll()
    h.deliver()
    [n] = h.rows()
    assert n.state == "dead"
    assert "channel_not_found" in n.last_error and "C0GONE" in n.last_error
    h.clock.tick(3600)
    assert h.deliver() == 0
    assert len(slack.calls("chat.postMessage")) == 1


def test_a_kill_between_claim_and_send_delivers_exactly_once_after_restart(make, slack, backend):
    h = make()
    h.outage(UPDATE_1)
    h.poll()
    [n] = h.rows()
    # another process claims the row and is killed with SIGKILL before it sends anything
    script = backend.opener + textwrap.dedent(
        f"""
        import os, signal
        from datetime import datetime, UTC
        assert s.claim({n.id}, datetime.now(UTC))
        os.kill(os.getpid(), signal.SIGKILL)
        """
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert proc.returncode == -9, proc.stderr
    assert h.deliver() == 0, "a claimed row is not sent by anyone else"
    # the restart: the deliverer recovers rows left claimed, then sends them
    assert h.deliverer.recover() == 1
    assert h.deliver() == 1
    assert h.deliver() == 0
    assert len(slack.messages(CHANNEL)) == 1
    assert len(slack.calls("chat.postMessage")) == 1
    [n] = h.rows()
    assert n.state == "delivered"


def test_a_vendor_update_with_mentions_and_markup_is_inert_in_slack(make, slack):
    h = make()
    evil = "<!channel> please look <@U0BOSS> <script>alert(1)</script> <http://evil.example|click>"
    h.outage(("investigating", evil, "2026-10-07T13:01:00Z"), name="<!here> Outage & <b>worse</b>")
    h.poll()
    h.deliver()
    [msg] = slack.messages(CHANNEL)
    text = msg.all_text()
    for bad in ("<!channel>", "<!here>", "<@U0BOSS>", "<script>", "<http://evil.example"):
        assert bad not in text
    assert "please look" in text  # the words are still shown, only defused


def test_slack_failing_past_the_limit_falls_back_to_email_and_slack_still_gets_it_later(
    make, slack, smtp_server
):
    h = make(
        {"alerts": {"fallback_after": 600}, "email": {"fallback_to": ["oncall@example.com"]}},
        mailer=mailer_for(smtp_server),
    )
    slack.fail_next(1000, status=500)
    h.outage(UPDATE_1)
    h.poll()
    h.deliver()
    assert smtp_server.messages == [], "one failure is not yet a reason to fall back"
    for _ in range(4):
        h.clock.tick(300)
        h.deliver()
    [mail] = smtp_server.messages
    assert mail.rcpt_tos == ["oncall@example.com"]
    assert "Anthropic" in mail.message["Subject"] and "outage" in mail.message["Subject"]
    assert len([r for r in h.rows() if r.channel == "email"]) == 1, "one fallback, not one per retry"

    slack.clear_failures()
    h.clock.tick(600)
    h.deliver()
    assert len(slack.messages(CHANNEL)) == 1, "Slack still gets the alert once it is back"


def test_a_permanent_slack_error_falls_back_to_email_at_once_without_duplicates(make, slack, smtp_server):
    h = make(
        {"email": {"fallback_to": ["oncall@example.com"]}},
        routes=[
            {"name": "m", "slack_channels": ["C0GONE"], "emails": ["team@example.com"]},
            {"name": "n", "slack_channels": ["C0GONE2"]},
        ],
        mailer=mailer_for(smtp_server),
    )
    h.outage(UPDATE_1)
    h.poll()
    h.deliver()
    h.deliver()
    got = sorted(r for m in smtp_server.messages for r in m.rcpt_tos)
    # route m already emails the team: no second copy; route n had no email: its fallback list
    assert got == ["oncall@example.com", "team@example.com"]
    dead = [r for r in h.rows() if r.state == "dead"]
    assert [(d.channel, d.target, d.fallback_sent) for d in dead] == [
        ("slack", "C0GONE", True),
        ("slack", "C0GONE2", True),
    ]


def test_all_emails_about_one_incident_thread_together(make, slack, smtp_server):
    h = make(routes=[{"name": "m", "emails": ["team@example.com"]}], mailer=mailer_for(smtp_server))
    h.outage(UPDATE_1)
    h.poll()
    h.deliver()
    h.clock.tick()
    h.outage(UPDATE_1, UPDATE_2)
    h.poll()
    h.deliver()
    h.clock.tick()
    h.serve(scenario.operational())
    h.poll()
    h.deliver()
    first, second, third = (m.message for m in smtp_server.messages)
    root = first["Message-ID"]
    assert second["In-Reply-To"] == root and third["In-Reply-To"] == root
    assert root in third["References"]
    assert len({first["Message-ID"], second["Message-ID"], third["Message-ID"]}) == 3
    assert "resolved" in third["Subject"]


def test_reminder_and_escalation_replies_mention_the_person_who_must_act(make, slack):
    h = make(
        {
            "oncall": {
                "people": [{"name": "Ana", "slack": "U0ANA"}, {"name": "Ben", "slack": "U0BEN"}],
                "rotation_start": "2026-10-05",
                "remind_after": 900,
                "escalate_after": 1800,
            }
        }
    )
    h.outage(UPDATE_1)
    h.poll()
    h.deliver()
    h.clock.tick(901)
    h.engine.tick()
    h.deliver()
    h.clock.tick(900)
    h.engine.tick()
    h.deliver()
    [msg] = slack.messages(CHANNEL)
    reminder, escalation = (r.text for r in slack.replies(CHANNEL, msg.ts))
    assert reminder.startswith("⏰ Reminder") and reminder.endswith("<@U0ANA>")
    assert "Escalated to Ben" in escalation and escalation.endswith("<@U0BEN>")


class Hook:
    """A generic webhook receiver on 127.0.0.1 (what Apprise's json:// posts to)."""

    def __init__(self):
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        self.bodies: list[dict] = []
        self.status = 200
        outer = self

        class H(BaseHTTPRequestHandler):
            def do_POST(self):
                import json

                data = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if outer.status == 200:
                    outer.bodies.append(json.loads(data))
                self.send_response(outer.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *a):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), H)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"json://127.0.0.1:{self.server.server_address[1]}/hook"

    def close(self):
        self.server.shutdown()


def test_apprise_channels_get_alerts_through_the_same_outbox_with_retries(make):
    hook = Hook()
    try:
        h = make(routes=[{"name": "teams", "apprise": [hook.url]}])
        hook.status = 500
        h.outage(("investigating", "<!channel> API failing", "2026-10-07T13:01:00Z"))
        h.poll()
        h.deliver()
        [n] = h.rows()
        assert n.state == "pending" and n.attempts == 1, "a failed webhook is retried, not dropped"
        hook.status = 200
        h.clock.tick(600)
        h.deliver()
        [body] = hook.bodies
        assert "Anthropic" in body["title"] and "outage" in body["title"]
        assert "<!channel>" not in body["message"]
        assert "API failing" in body["message"]
        assert [r.state for r in h.rows()] == ["delivered"]
    finally:
        hook.close()


def test_email_failing_past_the_limit_falls_back_to_the_slack_fallback_channel(make, slack, smtp_server):
    h = make(
        {"alerts": {"fallback_after": 600}, "slack": {"fallback_channel": CHANNEL}},
        routes=[{"name": "m", "emails": ["team@example.com"]}],
        mailer=mailer_for(smtp_server),
    )
    smtp_server.reject_rcpt(None, 451)  # the mail server defers everything
    h.outage(UPDATE_1)
    h.poll()
    h.deliver()
    assert slack.messages(CHANNEL) == []
    for _ in range(4):
        h.clock.tick(300)
        h.deliver()
    [msg] = slack.messages(CHANNEL)
    assert "Claude API unavailable" in msg.all_text()
    email_row = next(r for r in h.rows() if r.channel == "email")
    assert email_row.state == "pending" and email_row.fallback_sent, "email keeps trying too"
    # the fallback channel now follows the incident to its end, while email is still down
    h.clock.tick()
    h.serve(scenario.operational())
    h.poll()
    h.deliver()
    [msg] = slack.messages(CHANNEL)
    assert "Resolved" in msg.all_text()
