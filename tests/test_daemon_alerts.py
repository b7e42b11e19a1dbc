"""`watcher run` with Slack and SMTP configured: the whole path a user meets, as real processes.

The daemon polls a vendor page (127.0.0.1), posts to the Slack stand-in, mails
aiosmtpd over STARTTLS with a login, serves the interactivity endpoint; a signed
click on "Acknowledge" edits the Slack message in place; the resolve closes it. Each test
runs on a SQLite file and on a PostgreSQL schema (tests/store_backends.py).
"""

from __future__ import annotations

import json
import time
from urllib.parse import urlencode

import httpx
import scenario
from daemon_harness import (
    CHANNEL,
    Daemon,
    anthropic_toml,
    email_toml,
    free_port,
    route_toml,
    slack_toml,
    write_config,
)
from smtp_server import PASSWORD, USERNAME

from watcher.alerts.slack_signature import sign

SIGNING_SECRET = "8f14e45fceea167a5a36dedd4bea2543"
SUMMARY = "/claude/api/v2/summary.json"


def test_watcher_run_alerts_slack_and_email_and_takes_an_acknowledgement(
    vendor_server, slack_server, smtp_server, tmp_path, backend
):
    slack_server.add_channel(CHANNEL)
    vendor_server.set(SUMMARY, scenario.operational())
    web_port = free_port()
    cfg = write_config(
        tmp_path / "w.toml",
        'watch = ["anthropic"]\n',
        backend.storage_toml,
        f"[poll]\ninterval = 1\ntimeout = 2\n[web]\nport = {web_port}\n",
        anthropic_toml(vendor_server.url(SUMMARY), used_for=["blog drafts"]),
        route_toml(extra='emails = ["team@example.com"]\n'),
        slack_toml(slack_server),
        email_toml(smtp_server),
        f'[alerts]\npublic_url = "http://127.0.0.1:{web_port}"\n',
    )
    d = Daemon(
        cfg,
        env=dict(
            WATCHER_SLACK__TOKEN=slack_server.token,
            WATCHER_SLACK__SIGNING_SECRET=SIGNING_SECRET,
            WATCHER_EMAIL__PASSWORD=PASSWORD,
            WATCHER_ALERTS__ACK_SECRET="a-long-random-secret-for-ack-links",
            SSL_CERT_FILE=str(smtp_server.ca_file),  # trust the test CA, as an admin would a private one
        ),
    )
    try:
        d.until(lambda: vendor_server.hits[SUMMARY] >= 2)
        vendor_server.set(
            SUMMARY,
            scenario.incident(
                ("investigating", "All requests to the Claude API fail.", "2026-10-07T13:01:00Z")
            ),
        )
        [msg] = d.until(lambda: slack_server.messages(CHANNEL))
        assert "Claude API unavailable" in msg.all_text()
        d.until(lambda: smtp_server.messages)
        first_mail = smtp_server.messages[0].message
        assert "Anthropic" in first_mail["Subject"] and "outage" in first_mail["Subject"]
        assert smtp_server.messages[0].login == USERNAME

        # the on-call marketer clicks Acknowledge in Slack
        [ack_button] = [
            e
            for b in msg.blocks
            if b.get("type") == "actions"
            for e in b["elements"]
            if e.get("action_id") == "ack"
        ]
        payload = {
            "type": "block_actions",
            "user": {"id": "U0ANA", "username": "ana"},
            "container": {"channel_id": CHANNEL, "message_ts": msg.ts},
            "actions": [{"action_id": "ack", "value": ack_button["value"], "type": "button"}],
        }
        body = urlencode({"payload": json.dumps(payload)}).encode()
        ts = str(int(time.time()))
        r = httpx.post(
            f"http://127.0.0.1:{web_port}/slack/interactivity",
            content=body,
            headers={
                "Content-Type": "application/x-www-form-urlencoded",
                "X-Slack-Request-Timestamp": ts,
                "X-Slack-Signature": sign(SIGNING_SECRET, ts, body),
            },
        )
        assert r.status_code == 200
        edited = d.until(
            lambda: (m := slack_server.message(CHANNEL, msg.ts)) and "ana" in m.all_text() and m
        )
        assert edited.edited
        assert not any(
            b.get("type") == "actions" and any(e.get("action_id") == "ack" for e in b["elements"])
            for b in edited.blocks
        ), "no Acknowledge button once acknowledged"

        vendor_server.set(SUMMARY, scenario.operational())
        d.until(lambda: "Resolved" in slack_server.message(CHANNEL, msg.ts).all_text())
        d.until(lambda: len(smtp_server.messages) >= 3)  # opened, acknowledged, resolved
    finally:
        err = d.stop_cleanly()
    assert slack_server.token not in err and PASSWORD not in err, "secrets never logged"
    assert len(slack_server.messages(CHANNEL)) == 1, "one Slack message for the whole incident"
    subjects = [m.message["Subject"] for m in smtp_server.messages]
    assert "resolved" in subjects[-1]
    roots = {m.message["Message-ID"] for m in smtp_server.messages[:1]}
    assert all(m.message["In-Reply-To"] in roots for m in smtp_server.messages[1:])


def test_watcher_run_probes_a_vendor_api_and_alerts_when_it_stops_answering(
    vendor_server, slack_server, llm_server, tmp_path, backend
):
    slack_server.add_channel(CHANNEL)
    vendor_server.set("/control", b"ok")
    llm_server.openai.set(answer="4", models=["mistral-small"])
    cfg = write_config(
        tmp_path / "w.toml",
        'watch = ["mistral"]\n',
        backend.storage_toml,
        "[web]\nenabled = false\n[vendors.mistral.sources.summary]\nenabled = false\n",
        route_toml(name="m"),
        slack_toml(slack_server),
        f"""[probes]
interval = 1
fast_interval = 1
canaries_per_run = 1
fail_consecutive = 2
control_urls = ["{vendor_server.url("/control")}"]
[probes.vendors.mistral]
base_url = "{llm_server.base("openai")}"
format = "openai"
model = "mistral-small"
""",
    )
    d = Daemon(
        cfg,
        env=dict(
            WATCHER_SLACK__TOKEN=slack_server.token,
            WATCHER_PROBES__VENDORS__MISTRAL__KEY=llm_server.key("openai"),
        ),
    )
    try:
        d.until(lambda: len(llm_server.openai.requests) >= 4)
        llm_server.openai.fail_next(10_000, status=503)
        [msg] = d.until(lambda: slack_server.messages(CHANNEL))
        assert "not answering" in msg.all_text()
    finally:
        err = d.stop_cleanly()
    assert llm_server.key("openai") not in err
