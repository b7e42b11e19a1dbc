"""`watcher run` as a real process: polls on schedule, survives broken sources, stops cleanly.

Each test runs on a SQLite file and on a PostgreSQL schema (tests/store_backends.py); the
process is started and stopped by tests/daemon_harness.py.
"""

from __future__ import annotations

import json
import signal
import socket

import scenario
from daemon_harness import SUMMARY, Daemon, anthropic_toml, free_port, write_config


def open_incidents(backend) -> list[tuple]:
    return backend.query("SELECT id, kind, state, title FROM incidents WHERE state = 'open'")


def test_daemon_follows_an_outage_while_other_sources_fail_and_stops_on_sigterm(vendor_server, tmp_path, backend):
    vendor_server.set(SUMMARY, scenario.operational())
    vendor_server.set("/hang/summary.json", b"{}", delay=30)  # a hanging vendor
    vendor_server.set("/junk/summary.json", b"\x89PNG not json at all")  # a broken vendor
    cfg = write_config(
        tmp_path / "w.toml",
        'watch = ["anthropic", "hangs", "junk"]\n',
        backend.storage_toml,
        f"[poll]\ninterval = 1\ntimeout = 2\n[web]\nport = {free_port()}\n",
        anthropic_toml(vendor_server.url(SUMMARY)),
        f"""[vendors.hangs]
name = "Hangs Forever"
[vendors.hangs.sources.summary]
type = "statuspage"
url = "{vendor_server.url("/hang/summary.json")}"
[vendors.junk]
name = "Serves Junk"
[vendors.junk.sources.summary]
type = "statuspage"
url = "{vendor_server.url("/junk/summary.json")}"
""",
    )
    d = Daemon(cfg)
    try:
        d.until(lambda: vendor_server.hits[SUMMARY] >= 2)
        assert open_incidents(backend) == []

        vendor_server.set(
            SUMMARY,
            scenario.incident(
                ("investigating", "All requests to the Claude API fail.", "2026-10-07T13:01:00Z")
            ),
        )
        [(iid, kind, state, title)] = d.until(lambda: open_incidents(backend))
        assert kind == "outage" and state == "open" and title == "Claude API unavailable"

        vendor_server.set(SUMMARY, scenario.operational())
        d.until(lambda: not open_incidents(backend))
        polls_before_stop = vendor_server.hits[SUMMARY]
        assert polls_before_stop >= 4
    finally:
        err = d.stop_cleanly()
    assert "stopped after" in err
    # one log line per state change, not per poll: the junk source failed on every poll
    # but is logged once; the hanging one once.
    assert err.count("junk/summary") == 1, err
    assert err.count("hangs/summary") == 1, err
    assert err.count("opened") == 1 and err.count("resolved") == 1, err
    assert backend.query("SELECT state FROM incidents WHERE id = ?", iid) == [("resolved",)]
    if backend.kind == "sqlite":  # a SQLite property: readers never wait for the writer
        assert backend.query("PRAGMA journal_mode") == [("wal",)]


def test_daemon_tells_systemd_it_is_ready_and_stopping_and_logs_json(vendor_server, tmp_path, backend):
    vendor_server.set(SUMMARY, scenario.operational())
    sock_path = tmp_path / "notify.sock"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    listener.bind(str(sock_path))
    listener.settimeout(20)
    cfg = write_config(
        tmp_path / "w.toml",
        'watch = ["anthropic"]\n',
        backend.storage_toml,
        "[web]\nenabled = false\n",
        anthropic_toml(vendor_server.url(SUMMARY)),
    )
    d = Daemon(cfg, env={"NOTIFY_SOCKET": str(sock_path)}, args=["--log-format", "json"])
    try:
        assert listener.recv(100) == b"READY=1"
        d.proc.send_signal(signal.SIGTERM)
        assert listener.recv(100) == b"STOPPING=1"
    finally:
        listener.close()
        err = d.stop_cleanly()
    lines = [json.loads(line) for line in err.splitlines() if line.strip()]
    assert lines and all({"ts", "level", "logger", "msg"} <= set(x) for x in lines)
    assert any("stopped after" in x["msg"] for x in lines)
