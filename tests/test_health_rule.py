"""``/healthz`` and ``watcher health`` give the same verdict when no source answers.

Finding 4 of issue 16, tried again: with the catalog's slow 900 s feeds, ``/healthz``
allowed 3 × the *slowest* interval (45 minutes) before calling a watcher that hears
nothing unhealthy, while ``watcher health`` said unhealthy at once. Both now use
:func:`watcher.health.silence_reason`: a few intervals of the *fastest* source.

Real parts: the sources are real 127.0.0.1 endpoints, one refusing connections and one
accepting them and never answering; they are polled by a real ``watcher check``; the
verdicts come from the real ``watcher health`` process and a real ``/healthz`` over HTTP
on the same SQLite file. Only the time since the sources began failing is moved back (in
the store, as a daemon running that long would have left it), so no test waits on the clock.
"""

from __future__ import annotations

import dataclasses
import socket
from datetime import UTC, datetime, timedelta

import pytest
from test_cli import run
from test_ops import Served, app_for

from watcher.catalog import resolve
from watcher.config import load_settings
from watcher.health import silence_limit
from watcher.store.sqlite import SQLiteStore
from watcher.web.context import WebContext


def closed_port() -> int:
    """A 127.0.0.1 port nobody listens on: connections are refused."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


@pytest.fixture
def silent_server():
    """A 127.0.0.1 port that accepts connections and never says a word."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(16)
    yield s.getsockname()[1]
    s.close()


def config(tmp_path, refused: int, silent: int):
    cfg = tmp_path / "watcher.toml"
    cfg.write_text(
        f'watch = ["fast", "slow"]\n[storage]\npath = "{tmp_path / "w.db"}"\n[poll]\ntimeout = 1\n'
        '[vendors.fast]\nname = "Fast"\n[vendors.fast.sources.summary]\ntype = "statuspage"\n'
        f'url = "http://127.0.0.1:{refused}/s.json"\ninterval = 60\n'
        '[vendors.slow]\nname = "Slow"\n[vendors.slow.sources.feed]\ntype = "feed"\n'
        f'url = "http://127.0.0.1:{silent}/feed.xml"\ninterval = 900\n'
    )
    return cfg


def failing_for(path, seconds: float) -> None:
    """Make the store say every source has failed since ``seconds`` ago (polled just now)."""
    store = SQLiteStore(path)
    try:
        since = datetime.now(UTC) - timedelta(seconds=seconds)
        for rec in store.sources():
            assert rec.last_success_at is None and rec.error, rec
            store.save_source(dataclasses.replace(rec, error_since=since))
    finally:
        store.close()


def healthz(settings, started_ago: float) -> tuple[int, dict]:
    store = SQLiteStore(settings.storage.path)
    try:
        ctx = WebContext(
            settings,
            store,
            resolve(settings),
            started_at=datetime.now(UTC) - timedelta(seconds=started_ago),
            runtime={"scheduler_running": True},
        )
        with Served(app_for(ctx)) as http:
            resp = http.get("/healthz")
        return resp.status_code, resp.json()
    finally:
        store.close()


def test_the_limit_is_a_few_intervals_of_the_fastest_source_not_the_slowest():
    assert silence_limit([60, 900]) == 300  # 3 x 60 s, at least 5 minutes
    assert silence_limit([120, 300, 900]) == 360
    assert silence_limit([900]) == 2700


def test_healthz_and_watcher_health_agree_when_no_source_ever_answers(tmp_path, silent_server):
    cfg = config(tmp_path, closed_port(), silent_server)
    settings = load_settings(cfg)
    run("check", "--config", str(cfg))  # real polls: one refused, one never answered; failing_for checks
    # 4 minutes of failures: within 5 minutes (3 x the 60 s source), both still give it time
    failing_for(settings.storage.path, 240)
    res = run("health", "--config", str(cfg))
    status, body = healthz(settings, started_ago=240)
    assert res.returncode == 0, res.stderr
    assert status == 200, body
    # 6 minutes: both red, long before 45 minutes (3 x the 900 s feed)
    failing_for(settings.storage.path, 360)
    res = run("health", "--config", str(cfg))
    status, body = healthz(settings, started_ago=360)
    assert res.returncode == 1, res.stdout
    assert status == 503, body
    [reason] = body["reasons"]
    assert "no source has answered ever" in reason and "limit 300s" in reason
    assert "no source has answered ever" in res.stderr and "limit 300s" in res.stderr
    assert "0 of 2 sources answering" in reason and "0 of 2 sources answering" in res.stderr
    assert "fast/summary" in reason or "slow/feed" in reason  # the failing source is named


def test_a_fresh_healthz_with_nothing_polled_gives_the_fastest_sources_time_only(tmp_path, silent_server):
    settings = load_settings(config(tmp_path, closed_port(), silent_server))
    SQLiteStore(settings.storage.path).close()  # the daemon's empty database, before its first poll
    assert healthz(settings, started_ago=295)[0] == 200
    status, body = healthz(settings, started_ago=310)
    assert status == 503 and "no source has answered ever" in body["reasons"][0], body
