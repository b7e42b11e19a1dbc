"""`watcher run` as a real process: polls on schedule, survives broken sources, stops cleanly."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import scenario


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(predicate, proc: subprocess.Popen | None = None, timeout: float = 20.0, step: float = 0.1):
    """Poll until `predicate` holds; if the daemon died meanwhile, fail with what it printed."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            out, err = proc.communicate()
            raise AssertionError(f"daemon exited with {proc.returncode}:\n{err[-4000:]}")
        value = predicate()
        if value:
            return value
        time.sleep(step)
    raise AssertionError("condition not met in time")


def open_incidents(db: Path) -> list[tuple]:
    if not db.exists():
        return []
    try:
        with sqlite3.connect(db) as conn:
            return conn.execute(
                "SELECT id, kind, state, title FROM incidents WHERE state = 'open'"
            ).fetchall()
    except sqlite3.OperationalError:  # schema not created yet
        return []


def start_daemon(cfg: Path, *, env: dict[str, str] | None = None, log: Path | None = None) -> subprocess.Popen:
    """`watcher run --config cfg` with no WATCHER_* variable of ours (``env`` adds variables).

    Its output is piped; with ``log``, appended to that file instead (for daemons nobody
    reads while they run: a full pipe would block them).
    """
    full = {k: v for k, v in os.environ.items() if not k.startswith("WATCHER_")}
    full.update(env or {})
    cmd = [sys.executable, "-m", "watcher", "run", "--config", str(cfg)]
    if log is None:
        return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=full)
    with open(log, "a") as out:  # the child keeps its own descriptor
        return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=out, text=True, env=full)


def test_daemon_follows_an_outage_while_other_sources_fail_and_stops_on_sigterm(vendor_server, tmp_path):
    path = "/claude/api/v2/summary.json"
    vendor_server.set(path, scenario.operational())
    vendor_server.set("/hang/summary.json", b"{}", delay=30)  # a hanging vendor
    vendor_server.set("/junk/summary.json", b"\x89PNG not json at all")  # a broken vendor
    db = tmp_path / "w.db"
    cfg = tmp_path / "w.toml"
    cfg.write_text(
        f"""
watch = ["anthropic", "hangs", "junk"]
[storage]
path = "{db}"
[poll]
interval = 1
timeout = 2
[web]
port = {free_port()}
[vendors.anthropic.sources.summary]
url = "{vendor_server.url(path)}"
[vendors.anthropic.sources.incidents]
enabled = false
[vendors.anthropic.sources.maintenances]
enabled = false
[vendors.anthropic.sources.history]
enabled = false
[vendors.hangs]
name = "Hangs Forever"
[vendors.hangs.sources.summary]
type = "statuspage"
url = "{vendor_server.url("/hang/summary.json")}"
[vendors.junk]
name = "Serves Junk"
[vendors.junk.sources.summary]
type = "statuspage"
url = "{vendor_server.url("/junk/summary.json")}"
"""
    )
    proc = start_daemon(cfg)
    try:
        wait_for(lambda: vendor_server.hits[path] >= 2, proc)
        assert open_incidents(db) == []

        vendor_server.set(
            path,
            scenario.incident(
                ("investigating", "All requests to the Claude API fail.", "2026-10-07T13:01:00Z")
            ),
        )
        [(iid, kind, state, title)] = wait_for(lambda: open_incidents(db), proc)
        assert kind == "outage" and state == "open" and title == "Claude API unavailable"

        vendor_server.set(path, scenario.operational())
        wait_for(lambda: not open_incidents(db), proc)
        polls_before_stop = vendor_server.hits[path]
        assert polls_before_stop >= 4
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=15)
    assert proc.returncode == 0, err
    assert "Traceback" not in err
    assert "stopped after" in err
    # one log line per state change, not per poll: the junk source failed on every poll
    # but is logged once; the hanging one once.
    assert err.count("junk/summary") == 1, err
    assert err.count("hangs/summary") == 1, err
    assert err.count("opened") == 1 and err.count("resolved") == 1, err
    with sqlite3.connect(db) as conn:
        (mode,) = conn.execute("PRAGMA journal_mode").fetchone()
        assert mode == "wal"
        (state,) = conn.execute("SELECT state FROM incidents WHERE id = ?", [iid]).fetchone()
        assert state == "resolved"


def test_daemon_tells_systemd_it_is_ready_and_stopping_and_logs_json(vendor_server, tmp_path):
    import json
    import socket

    vendor_server.set("/s/summary.json", scenario.operational())
    sock_path = tmp_path / "notify.sock"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    listener.bind(str(sock_path))
    listener.settimeout(20)
    cfg = tmp_path / "w.toml"
    cfg.write_text(
        f"""
watch = ["anthropic"]
[storage]
path = "{tmp_path / "w.db"}"
[web]
enabled = false
[vendors.anthropic.sources.summary]
url = "{vendor_server.url("/s/summary.json")}"
[vendors.anthropic.sources.incidents]
enabled = false
[vendors.anthropic.sources.maintenances]
enabled = false
[vendors.anthropic.sources.history]
enabled = false
"""
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("WATCHER_")}
    env["NOTIFY_SOCKET"] = str(sock_path)
    proc = subprocess.Popen(
        [sys.executable, "-m", "watcher", "run", "--config", str(cfg), "--log-format", "json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert listener.recv(100) == b"READY=1"
        proc.send_signal(signal.SIGTERM)
        assert listener.recv(100) == b"STOPPING=1"
        out, err = proc.communicate(timeout=20)
    finally:
        listener.close()
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    lines = [json.loads(line) for line in err.splitlines() if line.strip()]
    assert lines and all({"ts", "level", "logger", "msg"} <= set(x) for x in lines)
    assert any("stopped after" in x["msg"] for x in lines)
