"""The alert commands as an admin runs them: test-alert, outbox, ack, mute, unmute.

The commands that read or write the store run on SQLite and on PostgreSQL (``backend``,
tests/store_backends.py); the two that only check routes and channels run on SQLite.
"""

from __future__ import annotations

import json

import pytest
from alerting import AlertHarness
from daemon_harness import email_toml, slack_toml
from smtp_server import PASSWORD
from test_cli import run

CHANNEL = "C0MKTG"


def config(tmp_path, backend, body: str = "", watch: str = '["anthropic", "openai"]', name="c.toml") -> str:
    """A config file on ``backend``'s store (SQLite file or PostgreSQL schema); ``body`` after it."""
    cfg = tmp_path / name
    cfg.write_text(f"watch = {watch}\n{backend.storage_toml}{body}\n")
    return str(cfg)


def alert_config(tmp_path, slack, smtp, routes: str, backend=None) -> str:
    """Routes, Slack (the stand-in) and SMTP (aiosmtpd); the store is ``backend``'s, default SQLite."""
    storage = backend.storage_toml if backend is not None else f'[storage]\npath = "{tmp_path / "w.db"}"\n'
    cfg = tmp_path / "alerts.toml"
    cfg.write_text(
        f'watch = ["anthropic", "openai"]\n{storage}{routes}\n{slack_toml(slack)}{email_toml(smtp, timeout=5)}'
    )
    return str(cfg)


def secrets(slack, smtp) -> dict:
    return {
        "WATCHER_SLACK__TOKEN": slack.token,
        "WATCHER_EMAIL__PASSWORD": PASSWORD,
        "SSL_CERT_FILE": str(smtp.ca_file),
    }


def test_test_alert_sends_a_sample_through_every_routed_channel(tmp_path, slack_server, smtp_server, backend):
    slack_server.add_channel(CHANNEL)
    cfg = alert_config(
        tmp_path,
        slack_server,
        smtp_server,
        f'[[routes]]\nname = "m"\nslack_channels = ["{CHANNEL}"]\nemails = ["team@example.com"]',
        backend,
    )
    r = run("test-alert", "--config", cfg, env=secrets(slack_server, smtp_server))
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"slack:{CHANNEL}" in r.stdout and "email:team@example.com" in r.stdout
    assert "FAILED" not in r.stdout
    [msg] = slack_server.messages(CHANNEL)
    assert "test" in msg.text.lower()
    [mail] = smtp_server.messages
    assert mail.rcpt_tos == ["team@example.com"]
    assert slack_server.token not in r.stdout + r.stderr


def test_test_alert_names_what_to_fix_when_a_channel_fails(tmp_path, slack_server, smtp_server):
    cfg = alert_config(
        tmp_path, slack_server, smtp_server, '[[routes]]\nname = "m"\nslack_channels = ["C0NOPE"]'
    )
    r = run("test-alert", "--config", cfg, env=secrets(slack_server, smtp_server))
    assert r.returncode != 0
    assert "FAILED" in r.stdout and "channel_not_found" in r.stdout


def test_test_alert_without_routes_says_how_to_add_one(tmp_path, slack_server, smtp_server):
    cfg = alert_config(tmp_path, slack_server, smtp_server, "")
    r = run("test-alert", "--config", cfg)
    assert r.returncode != 0
    assert "[[routes]]" in r.stderr


@pytest.fixture
def incident_db(vendor_server, tmp_path, backend):
    """A database with one open, alerted (queued) Anthropic outage, made by the real pipeline."""
    h = AlertHarness(vendor_server, tmp_path, backend=backend)
    h.outage()
    h.poll()
    [inc] = h.store.open_incidents("anthropic")
    h.close()
    return inc.id


def test_ack_from_the_cli_records_who_and_queues_the_update(tmp_path, incident_db, backend):
    cfg = config(tmp_path, backend, '[[routes]]\nname = "marketing"\nslack_channels = ["C0MKTG"]')
    r = run(
        "ack", str(incident_db), "--by", "Ana", "--reason", "moving blog drafts to GPT", "--config", str(cfg)
    )
    assert r.returncode == 0, r.stderr
    assert "acknowledged by Ana" in r.stdout
    out = run("outbox", "--json", "--config", str(cfg))
    rows = json.loads(out.stdout)["notifications"]  # one document
    assert {row["action"] for row in rows} >= {"opened", "acknowledged"}
    # nothing was sent (no Slack here): each row says why it waits
    opened = next(row for row in rows if row["action"] == "opened")
    acked = next(row for row in rows if row["action"] == "acknowledged")
    assert opened["why"].startswith("due: being sent now")
    assert acked["why"].startswith(f"waiting behind #{opened['id']} (same incident and target")
    table = run("outbox", "--config", str(cfg)).stdout
    assert "WHY / ERROR" in table and f"waiting behind #{opened['id']}" in table
    again = run("ack", "99999", "--by", "Ana", "--config", str(cfg))
    assert again.returncode != 0 and "no incident #99999" in again.stderr
    for forged in ("U0VICTIM01", "Ana\nINFO forged"):
        bad = run("ack", str(incident_db), "--by", forged, "--config", str(cfg))
        assert bad.returncode != 0 and "--by:" in bad.stderr


def test_mute_and_unmute_from_the_cli(tmp_path, backend):
    cfg = config(tmp_path, backend, watch='["openai"]')
    r = run("mute", "openai", "--for", "2h", "--reason", "planned migration", "--config", str(cfg))
    assert r.returncode == 0, r.stderr
    assert "openai muted until" in r.stdout
    bad = run("mute", "openai", "--for", "soon", "--config", str(cfg))
    assert bad.returncode != 0 and bad.stderr
    unknown = run("mute", "nosuchvendor", "--for", "1h", "--config", str(cfg))
    assert unknown.returncode != 0 and "unknown vendor" in unknown.stderr
    r = run("unmute", "openai", "--config", str(cfg))
    assert "mute ended" in r.stdout
    r = run("unmute", "openai", "--config", str(cfg))
    assert "was not muted" in r.stdout


def test_outbox_on_an_empty_database_says_so(tmp_path, backend):
    cfg = config(tmp_path, backend, watch='["openai"]')
    r = run("outbox", "--config", str(cfg))
    assert r.returncode == 0 and "outbox is empty" in r.stdout


def test_outbox_names_the_weekly_report_instead_of_incident_0(tmp_path, vendor_server, backend):
    """The report belongs to no incident (id 0 in the outbox): the table says what it is, not "#0"."""
    import asyncio
    from datetime import UTC, datetime

    from watcher import report as rpt
    from watcher.alerts.deliver import Transports

    h = AlertHarness(vendor_server, tmp_path, {"report": {"emails": ["team@example.com"]}}, backend=backend)
    h.outage()
    h.poll()  # an incident's alert too, to tell the two apart
    monday = datetime(2026, 10, 12, 9, 5, tzinfo=UTC)
    try:
        queued = asyncio.run(rpt.run_weekly(h.store, h.vendors, h.settings, Transports(), now=monday))
        [inc] = h.store.open_incidents("anthropic")
    finally:
        h.close()
    assert queued == ["email:team@example.com"]
    cfg = config(tmp_path, backend)
    table = run("outbox", "--config", cfg).stdout
    [report_line] = [line for line in table.splitlines() if " report " in line]
    assert "weekly report" in report_line and "email:team@example.com" in report_line
    assert "#0" not in table
    assert any(f"#{inc.id}" in line and "opened" in line for line in table.splitlines())
    rows = json.loads(run("outbox", "--json", "--config", cfg).stdout)["notifications"]
    assert [(r["incident_id"], r["action"]) for r in rows if r["action"] == "report"] == [(0, "report")], (
        "scripts keep the numbers"
    )


def test_outbox_never_prints_an_apprise_urls_tokens(tmp_path, vendor_server, backend):
    """An Apprise URL carries its service's token: the table shows its scheme, as doctor and test-alert do."""
    secret = "json://127.0.0.1:9/hook-token-s3cret"
    h = AlertHarness(vendor_server, tmp_path, {"routes": [{"name": "m", "apprise": [secret]}]}, backend=backend)
    h.outage()
    h.poll()
    h.close()
    cfg = config(tmp_path, backend)
    table = run("outbox", "--config", cfg).stdout
    assert "apprise:json://…" in table and "s3cret" not in table


def test_test_alert_shows_the_real_state_of_the_watched_vendors_only(
    tmp_path, slack_server, smtp_server, vendor_server, backend
):
    """Issue 16, finding 8: no made-up Mistral or Gemini states and latencies for vendors nobody watches."""
    from datetime import UTC, datetime

    h = AlertHarness(vendor_server, tmp_path, backend=backend)  # the daemon's database: both polled just now
    h.clock.now = datetime.now(UTC)
    h.poll()
    h.poll("openai")
    h.close()
    slack_server.add_channel(CHANNEL)
    cfg = alert_config(
        tmp_path, slack_server, smtp_server, f'[[routes]]\nname = "m"\nslack_channels = ["{CHANNEL}"]', backend
    )
    r = run("test-alert", "--config", cfg, env=secrets(slack_server, smtp_server))
    assert r.returncode == 0, r.stdout + r.stderr
    [msg] = slack_server.messages(CHANNEL)
    shown = json.dumps(msg.blocks, ensure_ascii=False)
    assert "Mistral" not in shown and "Gemini" not in shown
    assert " ms" not in shown  # no latency our probes did not measure
    assert "Anthropic" in shown and "operational" in shown  # the other watched vendor, as polled
