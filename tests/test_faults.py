"""Fault suite: hostile documents, kill -9 during an alert storm. Each test states what it proves.

(Fetch-level faults, a gzip bomb, a hanging or dripping server, a redirect loop, TLS
failures, live in tests/test_fetch.py; Slack and SMTP outages in tests/test_delivery.py;
a read-only database and a full disk in tests/test_ops.py; time zones in test_routing.py.)
"""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time

import pytest
import scenario
from daemon_harness import free_port

from watcher.model import Snapshot
from watcher.sources import parser_for
from watcher.sources.base import ParseError, SourceOptions

JSON_TYPES = [
    "statuspage",
    "statuspage_incidents",
    "statuspage_maintenances",
    "instatus",
    "betterstack",
    "gcp",
    "checkly",
]
ALL_TYPES = [*JSON_TYPES, "feed"]


def parse(kind: str, body: bytes):
    opts = SourceOptions(base_url="https://status.example.com", product_ids=("x",), html_rules={})
    return parser_for(kind)(body, opts)


@pytest.mark.parametrize("kind", JSON_TYPES)
def test_json_nested_100000_deep_is_a_parse_error_not_a_crash(kind):
    """Proves: a document built to overflow the parser's recursion ends in ParseError for that source."""
    body = b"[" * 100_000 + b"]" * 100_000
    with pytest.raises(ParseError):
        parse(kind, body)
    body = b'{"a":' * 100_000 + b"1" + b"}" * 100_000
    with pytest.raises(ParseError):
        parse(kind, body)


@pytest.mark.parametrize("kind", ALL_TYPES)
def test_invalid_utf8_is_a_parse_error_or_a_clean_snapshot(kind):
    """Proves: bytes that are not UTF-8 never raise anything but ParseError."""
    body = b'{"page": {"name": "\xff\xfe\xfa"}, "components": [\xc3\x28]}'
    try:
        snapshot = parse(kind, body)
    except ParseError:
        return
    assert isinstance(snapshot, Snapshot)


def test_xml_entity_bomb_in_a_feed_is_refused():
    """Proves: a billion-laughs feed is refused before anything expands it."""
    lol = "".join(f'<!ENTITY l{i} "{"&l" + str(i - 1) + ";" * 10 if i else "lol"}">' for i in range(10))
    body = (
        f'<?xml version="1.0"?><!DOCTYPE rss [{lol}]><rss version="2.0"><channel><title>&l9;</title>'
        "<item><title>&l9;</title></item></channel></rss>"
    ).encode()
    with pytest.raises(ParseError):
        parse("feed", body)


def storm_incident(i: int, *updates: tuple[str, str, str]) -> bytes:
    """Storm vendor ``i``'s page with its incident open ("Storm incident ii"); default: one update."""
    updates = updates or (("investigating", f"Vendor {i} requests fail.", "2026-10-07T13:01:00Z"),)
    return scenario.incident(*updates, name=f"Storm incident {i:02d}", incident_id=f"storm{i:02d}")


def storm_down(vendor_server, n: int) -> None:
    """Every storm vendor's page shows its incident, all at once."""
    for i in range(n):
        vendor_server.set(f"/v{i}/summary.json", storm_incident(i))


def storm_config(
    tmp_path, vendor_server, slack_server, smtp_server, n: int, *, storage_url: str | None = None, down: bool = True
) -> tuple:
    """A config watching ``n`` custom vendors ``v0``… served by ``vendor_server`` (each already in an
    incident, unless ``down`` is false: then operational until :func:`storm_down`), alerting Slack
    channel C0STORM and, when ``smtp_server`` is given, oncall@example.com. Storage is the SQLite
    file returned beside the config, or the PostgreSQL ``storage_url``."""
    lines = []
    ids = []
    for i in range(n):
        vid = f"v{i}"
        ids.append(vid)
        path = f"/{vid}/summary.json"
        vendor_server.set(path, storm_incident(i) if down else scenario.operational())
        lines += [f"[vendors.{vid}]", f'name = "Storm {i}"', f"[vendors.{vid}.sources.summary]"]
        lines += ['type = "statuspage"', f'url = "{vendor_server.url(path)}"']
    db = tmp_path / "w.db"
    cfg = tmp_path / "w.toml"
    storage = f'url = "{storage_url}"' if storage_url else f'path = "{db}"'
    email = (
        f"""
[email]
host = "127.0.0.1"
port = {smtp_server.port}
username = "bob"
sender = "watcher <alerts@example.com>"
timeout = 5
"""
        if smtp_server is not None
        else ""
    )
    cfg.write_text(
        f"""
watch = {json.dumps(ids)}
[storage]
{storage}
[poll]
interval = 1
timeout = 3
[web]
enabled = false
port = {free_port()}
[[routes]]
name = "storm"
slack_channels = ["C0STORM"]
{'emails = ["oncall@example.com"]' if smtp_server is not None else ""}
[slack]
base_url = "{slack_server.api_url}"
timeout = 5
{email}
"""
        + "\n".join(lines)
        + "\n"
    )
    return cfg, db


def storm_tally(texts: list[str], n: int) -> tuple[list[int], int]:
    """Root alerts (Slack top-level texts, first mails' subjects) per storm incident: the incidents
    with none (lost), and the copies beyond one (duplicated)."""
    per_incident = {i: sum(f"Storm incident {i:02d}" in t for t in texts) for i in range(n)}
    lost = [i for i, c in per_incident.items() if c == 0]
    return lost, sum(c - 1 for c in per_incident.values() if c > 1)


def _pending(db) -> int:
    try:
        with sqlite3.connect(db) as conn:
            return conn.execute(
                "SELECT COUNT(*) FROM notifications WHERE state IN ('pending', 'sending')"
            ).fetchone()[0]
    except sqlite3.OperationalError:
        return -1


def test_kill_9_during_an_alert_storm_loses_nothing_and_duplicates_at_most_one_per_kill(
    tmp_path, vendor_server, slack_server, smtp_server
):
    """Proves: 20 SIGKILLs at random moments while alerts are being sent lose no alert, and each
    kill costs at most one duplicate (a send that was in flight when the process died)."""
    n = 12
    kills = 20
    slack_server.add_channel("C0STORM")
    cfg, db = storm_config(tmp_path, vendor_server, slack_server, smtp_server, n)
    env = {k: v for k, v in os.environ.items() if not k.startswith("WATCHER_")}
    env["WATCHER_SLACK__TOKEN"] = slack_server.token
    env["WATCHER_EMAIL__PASSWORD"] = "s3cret-Pa55"
    env["SSL_CERT_FILE"] = str(smtp_server.ca_file)
    rng = random.Random(20261123)
    slack_server.slow("chat.postMessage", 0.15)  # sends are in flight when a kill lands
    cmd = [sys.executable, "-m", "watcher", "run", "--config", str(cfg)]
    for cycle in range(kills):
        if cycle % 5 == 4:  # the vendors post updates meanwhile: edits and thread replies join the storm
            for i in range(n):
                vendor_server.set(
                    f"/v{i}/summary.json",
                    storm_incident(
                        i,
                        ("investigating", f"Vendor {i} requests fail.", "2026-10-07T13:01:00Z"),
                        ("identified", f"Vendor {i} update {cycle}.", f"2026-10-07T13:{10 + cycle:02d}:00Z"),
                    ),
                )
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
        time.sleep(rng.uniform(0.4, 2.0))
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            posted = {m.text for m in slack_server.messages("C0STORM")}
            if _pending(db) == 0 and len(posted) >= n:
                break
            time.sleep(0.2)
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    lost, duplicated = storm_tally([m.text for m in slack_server.messages("C0STORM")], n)
    firsts = [m.message["Subject"] for m in smtp_server.messages if not m.message["In-Reply-To"]]
    mail_lost, mail_dup = storm_tally(firsts, n)
    print(
        f"\n{kills} kills: Slack {len(lost)} lost, {duplicated} duplicated; "
        f"email {len(mail_lost)} lost, {mail_dup} duplicated (same Message-ID, so mail clients drop them)"
    )
    assert lost == [] and mail_lost == [], f"alerts lost: Slack {lost}, email {mail_lost}"
    assert duplicated + mail_dup <= kills, f"{duplicated + mail_dup} duplicates for {kills} kills"
    assert _pending(db) == 0
    assert "Traceback" not in err
