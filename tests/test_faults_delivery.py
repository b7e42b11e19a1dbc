"""Hung channels, fallbacks, crashes in flight and stuck alerts (issue 15, findings 5 to 8).

Everything is real except the clock: the Slack stand-in (tests/slack_server.py) and aiosmtpd
(tests/smtp_server.py) on 127.0.0.1, the real pipeline, engine and deliverer, on SQLite and on
PostgreSQL (tests/store_backends.py).
"""

from __future__ import annotations

import asyncio
import time

import alerting
import scenario
from alerting import CHANNEL, UPDATE_1, UPDATE_2, mailer_for

from watcher.alerts.deliver import wait_reasons
from watcher.store import open_store

# the fixtures: ``make`` builds alert harnesses on each store (SQLite, PostgreSQL), ``slack`` the stand-in
make, slack = alerting.make, alerting.slack
EMAILS = [f"oncall{i}@example.com" for i in range(8)]


def _timed_deliver(h) -> tuple[float, float]:
    """Run one delivery pass; (when it started, how long it took), in ``time.time()`` seconds."""
    start = time.time()
    h.deliver()
    return start, time.time() - start


# -- finding 5: a hung channel must not hold back the other --------------------------------------


def test_a_hung_smtp_server_does_not_delay_slack(make, slack, smtp_server):
    """SMTP accepts connections and never answers (8 addresses, so every email sender thread hangs):
    the Slack alert still goes out at once, not after the SMTP client's timeout."""
    smtp_server.stall_at = "connect"
    mailer = mailer_for(smtp_server)
    mailer.timeout = 3
    h = make(
        {"alerts": {"fallback_after": 86400}},
        mailer=mailer,
        routes=[  # the email route first: its rows come before Slack's in the outbox
            {"name": "mail", "emails": EMAILS},
            {"name": "marketing", "slack_channels": [CHANNEL]},
        ],
    )
    h.outage(UPDATE_1)
    h.poll()
    start, took = _timed_deliver(h)
    [post] = slack.calls("chat.postMessage")
    assert took >= 2.5, "the email sends did wait for their timeout"
    assert post.at - start < 1.5, f"Slack waited {post.at - start:.1f}s behind the hung SMTP server"
    assert {n.channel: n.state for n in h.rows()} == {"email": "pending", "slack": "delivered"}
    reasons = wait_reasons(h.rows(), h.clock(), h.settings)
    mail = [n for n in h.rows() if n.channel == "email"]
    assert all("backing off until" in reasons[n.id] and "no answer" in reasons[n.id] for n in mail), reasons


def test_a_silent_slack_does_not_delay_email(make, slack, smtp_server):
    slack.down("hang")
    h = make({"alerts": {"fallback_after": 86400}}, mailer=mailer_for(smtp_server), slack_timeout=3)
    h.settings.routes[0].emails.append("team@example.com")
    try:
        h.outage(UPDATE_1)
        h.poll()
        start, took = _timed_deliver(h)
        assert took >= 2.5, "the Slack send did wait for its timeout"
        [mail] = smtp_server.wait_for(1)
        rows = {n.channel: n for n in h.rows()}
        assert rows["email"].state == "delivered" and rows["slack"].state == "pending"
        assert (rows["email"].delivered_at - h.clock()).total_seconds() == 0
        assert mail.message["Subject"]
        sent = [r for r in slack.requests]
        assert sent and all(r.status is None for r in sent)
    finally:
        slack.up()
    assert took < 3 + 1.5


def test_outbox_says_why_each_row_waits(make, slack):
    """Behind an earlier message of the same incident, in backoff, in flight, held by quiet hours."""
    h = make({"alerts": {"fallback_after": 86400}})
    slack.down()
    h.outage(UPDATE_1)
    h.poll()
    h.deliver()
    [first] = h.rows()
    why = wait_reasons(h.rows(), h.clock(), h.settings)
    assert why[first.id].startswith("backing off until") and "cannot reach Slack" in why[first.id]
    h.clock.tick()
    h.outage(UPDATE_1, UPDATE_2)
    h.poll()
    first, second = h.rows()
    why = wait_reasons(h.rows(), h.clock(), h.settings)
    assert why[second.id].startswith(f"waiting behind #{first.id} (same incident and target")
    h.clock.tick(3600)
    assert h.store.claim(first.id, h.clock())  # a send in flight (the claim of a worker)
    h.clock.tick(95)
    why = wait_reasons(h.rows(), h.clock(), h.settings)
    assert why[first.id].startswith("in flight for 95s: the slack server has not answered")
    slack.up()


# -- finding 6: the fallback carries the incident as it is now, resolve included ----------------


def test_a_fallback_after_the_vendor_resolved_shows_it_resolved_and_nothing_stays_open(
    make, slack, smtp_server
):
    """Slack fails; the vendor resolves while the opening alert is still retrying; then the
    fallback to email starts: the email shows the incident resolved, not "(open)"."""
    h = make(
        {"alerts": {"fallback_after": 600}, "email": {"fallback_to": ["oncall@example.com"]}},
        mailer=mailer_for(smtp_server),
    )
    slack.fail_next(1000, status=500)
    h.outage(UPDATE_1)
    h.poll()
    h.deliver()
    h.clock.tick(300)
    h.serve(scenario.operational())
    h.poll()  # resolved: the resolve is queued behind the failing opening
    for _ in range(4):
        h.clock.tick(300)
        h.deliver()
    subjects = [m.message["Subject"] for m in smtp_server.messages]
    assert subjects and all("resolved" in s for s in subjects), subjects
    assert not any("(open)" in s for s in subjects), subjects
    for _ in range(3):  # nothing else is owed to email: no late "(open)" after all
        h.clock.tick(600)
        h.deliver()
    assert [m.message["Subject"] for m in smtp_server.messages] == subjects

    slack.clear_failures()
    h.clock.tick(600)
    h.deliver()
    [msg] = slack.messages(CHANNEL)
    assert "Resolved" in msg.all_text(), "Slack, back, ends on the resolve too"


def test_changes_after_a_fallback_follow_it_to_the_resolve(make, slack, smtp_server):
    h = make(
        {"alerts": {"fallback_after": 600}, "email": {"fallback_to": ["oncall@example.com"]}},
        mailer=mailer_for(smtp_server),
    )
    slack.fail_next(1000, status=500)
    h.outage(UPDATE_1)
    h.poll()
    for _ in range(4):
        h.clock.tick(300)
        h.deliver()
    [opened] = smtp_server.messages
    assert "(open)" in opened.message["Subject"]
    h.clock.tick(60)
    h.serve(scenario.operational())
    h.poll()
    h.deliver()
    opened_, resolved = smtp_server.messages
    assert "resolved" in resolved.message["Subject"]
    assert resolved.message["In-Reply-To"] == opened.message["Message-ID"]


# -- finding 7: a post that happened but was never recorded is adopted, not duplicated -----------


def test_a_lost_answer_to_the_opening_post_is_adopted_not_posted_twice(make, slack):
    """Slack posts the alert but the answer never arrives: the retry finds the message by its
    metadata, edits it, and the resolve ends on that one message (no orphan showing "outage")."""
    h = make()
    slack.lose_answer_next(1, method="chat.postMessage")
    h.outage(UPDATE_1)
    h.poll()
    h.deliver()
    [posted] = slack.messages(CHANNEL)
    assert h.rows()[0].state == "pending", "watcher never heard that it was posted"
    h.clock.tick(600)
    h.deliver()
    [same] = slack.messages(CHANNEL)
    assert same.ts == posted.ts and same.edited
    assert h.rows()[0].ref.get("adopted") is True
    h.clock.tick(600)
    h.serve(scenario.operational())
    h.poll()
    h.deliver()
    [done] = slack.messages(CHANNEL)
    assert done.ts == posted.ts and "Resolved" in done.all_text()


def test_a_crash_between_post_and_record_adopts_the_message_after_restart(make, slack):
    """kill -9 after Slack took the post, before the database knew: the next start re-sends the row,
    which finds the message already there and adopts it."""
    h = make()
    h.outage(UPDATE_1)
    h.poll()
    [row] = h.rows()
    assert h.store.claim(row.id, h.clock())
    h.transports.slack_bot.post(CHANNEL, row.alert)  # ...and the process dies here
    h.store.close()
    h.store = h.deliverer.store = h.engine.store = open_store(h.settings)  # restart
    assert h.deliverer.recover() == 1
    h.deliver()
    [msg] = slack.messages(CHANNEL)
    assert [n.state for n in h.rows()] == ["delivered"]
    assert h.store.slack_thread(row.incident_id, CHANNEL) == msg.ts


def test_without_the_history_scope_the_retry_posts_and_says_why(make, slack, caplog):
    h = make()
    slack.revoke_scope("channels:history")
    slack.lose_answer_next(1, method="chat.postMessage")
    h.outage(UPDATE_1)
    h.poll()
    h.deliver()
    h.clock.tick(600)
    h.deliver()
    assert len(slack.messages(CHANNEL)) == 2
    assert "add the channels:history and groups:history scopes" in caplog.text


# -- finding 8: health turns unhealthy when alerts are stuck --------------------------------------


def _health(h):
    from watcher.web.context import WebContext
    from watcher.web.ops import check_health

    ctx = WebContext(
        h.settings, h.store, h.vendors, started_at=h.clock(), clock=h.clock, runtime={"scheduler_running": True}
    )
    return ctx, asyncio.run(check_health(ctx))


def test_health_turns_unhealthy_when_the_oldest_alert_is_stuck_and_names_the_channel(
    make, slack, backend, tmp_path
):
    import subprocess
    import sys

    h = make({"alerts": {"fallback_after": 86400}})
    slack.down()
    h.outage(UPDATE_1)
    h.poll()
    h.deliver()
    h.clock.tick(300)
    _, health = _health(h)
    assert not any(r.startswith("slack:") for r in health.reasons), "5 minutes is within the limit"
    assert health.body["outbox"]["channels"]["slack"]["stuck"] is False
    h.clock.tick(301 + 60)
    h.deliver()
    ctx, health = _health(h)
    [reason] = [r for r in health.reasons if r.startswith("slack:")]
    assert not health.ok
    assert f"#{h.rows()[0].id} to {CHANNEL} has waited 11m (limit alerts.stuck_after = 600s)" in reason
    assert "cannot reach Slack" in reason

    # the heartbeat pings "fail" with the same reason
    import httpx
    from test_heartbeat import UUID, PingServer

    from watcher import heartbeat

    with PingServer() as srv:
        ctx.settings.heartbeat.url = srv.url

        async def go():
            async with httpx.AsyncClient(trust_env=False) as client:
                return await heartbeat.beat_from_health(client, ctx)

        assert asyncio.run(go()) is True
    [(method, path, body)] = srv.pings
    assert path == f"/ping/{UUID}/fail" and b"slack: alerts are not getting through" in body

    # watcher health, from another process, says the same (its clock is the real one: later still)
    cfg = tmp_path / "health.toml"
    cfg.write_text('watch = ["anthropic"]\n' + backend.storage_toml)
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    r = subprocess.run(
        [sys.executable, "-m", "watcher", "health", "--config", str(cfg)], capture_output=True, text=True, env=env
    )
    assert r.returncode == 1 and "unhealthy: slack: alerts are not getting through" in r.stderr, r.stderr

    slack.up()
    h.clock.tick(600)
    h.deliver()
    _, health = _health(h)
    assert not any(r.startswith("slack:") for r in health.reasons)


def test_alerts_held_by_quiet_hours_are_not_stuck(make, slack):
    h = make(
        routes=[
            {
                "name": "marketing",
                "slack_channels": [CHANNEL],
                "quiet_hours": {"start": "12:00", "end": "20:00", "timezone": "UTC", "kinds_allowed": []},
            }
        ]
    )
    h.outage(UPDATE_1)
    h.poll()
    h.deliver()
    [row] = h.rows()
    assert row.held and row.state == "pending"
    h.clock.tick(3 * 3600)
    _, health = _health(h)
    assert "slack" not in health.body["outbox"]["channels"]


def test_the_delivery_loop_sleeps_while_a_hung_lane_holds_due_rows(make, slack, smtp_server):
    """Due rows waiting behind a hung target must not make the loop poll the outbox in a tight spin."""
    from watcher.alerts.model import AlertAction

    smtp_server.stall_at = "connect"
    mailer = mailer_for(smtp_server)
    mailer.timeout = 1
    h = make(routes=[{"name": "mail", "emails": ["team@example.com"]}], mailer=mailer)
    h.outage(UPDATE_1)
    h.poll()
    [row] = h.rows()
    for iid in (row.incident_id + 1, row.incident_id + 2):  # two more incidents for the same hung address
        h.store.enqueue(
            incident_id=iid, action=AlertAction.OPENED, channel="email", target="team@example.com",
            route="mail", alert=row.alert, now=h.clock(),
        )  # fmt: skip
    passes = []
    due = h.store.due_notifications
    h.store.due_notifications = lambda *a, **kw: passes.append(1) or due(*a, **kw)

    async def go():
        stopping = asyncio.Event()
        task = asyncio.create_task(h.deliverer.run(stopping))
        await asyncio.sleep(1.5)
        stopping.set()
        await task

    asyncio.run(go())
    assert len(passes) <= 5, f"{len(passes)} passes over the outbox in 1.5 s"
