"""`watcher run` with Slack and SMTP configured: the whole path a user meets, as real processes.

The daemon polls a vendor page (127.0.0.1), posts to the Slack stand-in, mails
aiosmtpd over STARTTLS with a login, serves the interactivity endpoint; a signed
click on "Acknowledge" edits the Slack message in place; the resolve closes it.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from urllib.parse import urlencode

import httpx
import scenario
from smtp_server import PASSWORD, USERNAME
from test_daemon import free_port, wait_for

from watcher.alerts.slack_signature import sign

SIGNING_SECRET = "8f14e45fceea167a5a36dedd4bea2543"
CHANNEL = "C0MKTG"
SUMMARY = "/claude/api/v2/summary.json"


def test_watcher_run_alerts_slack_and_email_and_takes_an_acknowledgement(
    vendor_server, slack_server, smtp_server, tmp_path
):
    slack_server.add_channel(CHANNEL)
    vendor_server.set(SUMMARY, scenario.operational())
    web_port = free_port()
    db = tmp_path / "w.db"
    cfg = tmp_path / "w.toml"
    cfg.write_text(
        f"""
watch = ["anthropic"]
[storage]
path = "{db}"
[poll]
interval = 1
timeout = 2
[web]
port = {web_port}
[vendors.anthropic]
used_for = ["blog drafts"]
[vendors.anthropic.sources.summary]
url = "{vendor_server.url(SUMMARY)}"
[vendors.anthropic.sources.incidents]
enabled = false
[vendors.anthropic.sources.maintenances]
enabled = false
[vendors.anthropic.sources.history]
enabled = false
[[routes]]
name = "marketing"
slack_channels = ["{CHANNEL}"]
emails = ["team@example.com"]
[slack]
base_url = "{slack_server.api_url}"
timeout = 3
[email]
host = "127.0.0.1"
port = {smtp_server.port}
username = "{USERNAME}"
sender = "watcher <alerts@example.com>"
[alerts]
public_url = "http://127.0.0.1:{web_port}"
"""
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("WATCHER_")}
    env.update(
        WATCHER_SLACK__TOKEN=slack_server.token,
        WATCHER_SLACK__SIGNING_SECRET=SIGNING_SECRET,
        WATCHER_EMAIL__PASSWORD=PASSWORD,
        WATCHER_ALERTS__ACK_SECRET="a-long-random-secret-for-ack-links",
        SSL_CERT_FILE=str(smtp_server.ca_file),  # trust the test CA, as an admin would a private one
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "watcher", "run", "--config", str(cfg)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        wait_for(lambda: vendor_server.hits[SUMMARY] >= 2, proc)
        vendor_server.set(
            SUMMARY,
            scenario.incident(
                ("investigating", "All requests to the Claude API fail.", "2026-10-07T13:01:00Z")
            ),
        )
        [msg] = wait_for(lambda: slack_server.messages(CHANNEL), proc)
        assert "Claude API unavailable" in msg.all_text()
        wait_for(lambda: smtp_server.messages, proc)
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
        edited = wait_for(
            lambda: (m := slack_server.message(CHANNEL, msg.ts)) and "ana" in m.all_text() and m, proc
        )
        assert edited.edited
        assert not any(
            b.get("type") == "actions" and any(e.get("action_id") == "ack" for e in b["elements"])
            for b in edited.blocks
        ), "no Acknowledge button once acknowledged"

        vendor_server.set(SUMMARY, scenario.operational())
        wait_for(lambda: "Resolved" in slack_server.message(CHANNEL, msg.ts).all_text(), proc)
        wait_for(lambda: len(smtp_server.messages) >= 3, proc)  # opened, acknowledged, resolved
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert "Traceback" not in err
    assert slack_server.token not in err and PASSWORD not in err, "secrets never logged"
    assert len(slack_server.messages(CHANNEL)) == 1, "one Slack message for the whole incident"
    subjects = [m.message["Subject"] for m in smtp_server.messages]
    assert "resolved" in subjects[-1]
    roots = {m.message["Message-ID"] for m in smtp_server.messages[:1]}
    assert all(m.message["In-Reply-To"] in roots for m in smtp_server.messages[1:])


def test_watcher_run_probes_a_vendor_api_and_alerts_when_it_stops_answering(
    vendor_server, slack_server, llm_server, tmp_path
):
    slack_server.add_channel(CHANNEL)
    vendor_server.set("/control", b"ok")
    llm_server.openai.set(answer="4", models=["mistral-small"])
    db = tmp_path / "w.db"
    cfg = tmp_path / "w.toml"
    cfg.write_text(
        f"""
watch = ["mistral"]
[storage]
path = "{db}"
[web]
enabled = false
[vendors.mistral.sources.summary]
enabled = false
[[routes]]
name = "m"
slack_channels = ["{CHANNEL}"]
[slack]
base_url = "{slack_server.api_url}"
[probes]
interval = 1
fast_interval = 1
canaries_per_run = 1
fail_consecutive = 2
control_urls = ["{vendor_server.url("/control")}"]
[probes.vendors.mistral]
base_url = "{llm_server.base("openai")}"
format = "openai"
model = "mistral-small"
"""
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("WATCHER_")}
    env.update(
        WATCHER_SLACK__TOKEN=slack_server.token,
        WATCHER_PROBES__VENDORS__MISTRAL__KEY=llm_server.key("openai"),
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "watcher", "run", "--config", str(cfg)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        wait_for(lambda: len(llm_server.openai.requests) >= 4, proc)
        llm_server.openai.fail_next(10_000, status=503)
        [msg] = wait_for(lambda: slack_server.messages(CHANNEL), proc)
        assert "not answering" in msg.all_text()
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert "Traceback" not in err
    assert llm_server.key("openai") not in err
