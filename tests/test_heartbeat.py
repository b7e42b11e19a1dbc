"""The heartbeat pings a healthchecks-style URL; a local HTTP server records the pings."""

from __future__ import annotations

import asyncio
import logging
import threading
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from watcher import heartbeat
from watcher.catalog import resolve
from watcher.config import Settings
from watcher.store.base import SourceRecord
from watcher.store.sqlite import SQLiteStore
from watcher.web.context import WebContext

UUID = "5f1c0e2a-7f3b-4d7e-9a3c-1b2c3d4e5f60"


class PingServer:
    """Records (method, path, body) of every request; answers ``status``."""

    def __init__(self):
        self.pings: list[tuple[str, str, bytes]] = []
        self.status = 200
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _answer(self):
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n) if n else b""
                outer.pings.append((self.command, self.path, body))
                self.send_response(outer.status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"OK")

            do_GET = do_POST = do_HEAD = _answer

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/ping/{UUID}"

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(autouse=True)
def _reset():
    heartbeat.reset()
    yield
    heartbeat.reset()


def settings(url: str | None) -> Settings:
    return Settings.model_validate({"heartbeat": {"url": url}} if url else {})


def beat(url, healthy, **kw):
    async def go():
        async with httpx.AsyncClient(trust_env=False) as client:
            return await heartbeat.beat(client, settings(url), healthy, **kw)

    return asyncio.run(go())


def test_healthy_pings_the_url_and_unhealthy_pings_fail():
    with PingServer() as srv:
        assert beat(srv.url, True) is True
        assert beat(srv.url, False) is True
        assert beat(srv.url, False, detail="database not writable") is True
    assert srv.pings == [
        ("GET", f"/ping/{UUID}", b""),
        ("GET", f"/ping/{UUID}/fail", b""),
        ("POST", f"/ping/{UUID}/fail", b"database not writable"),
    ]


def test_fail_url_keeps_the_query_string():
    assert heartbeat.fail_url("https://hc-ping.com/abc/?create=1") == "https://hc-ping.com/abc/fail?create=1"


def test_no_url_no_ping():
    assert beat(None, True) is False


def test_errors_never_raise_and_are_logged_once_until_pings_work_again(caplog):
    caplog.set_level(logging.DEBUG, logger="watcher.heartbeat")
    with PingServer() as srv:
        srv.status = 500
        assert beat(srv.url, True) is False
        assert beat(srv.url, True) is False
        srv.status = 200
        assert beat(srv.url, True) is True
        assert beat(srv.url, True) is True
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    infos = [r for r in caplog.records if r.levelno == logging.INFO]
    assert len(warnings) == 1 and "HTTP 500" in warnings[0].getMessage()
    assert len(infos) == 1 and "accepts pings again" in infos[0].getMessage()
    assert UUID not in caplog.text, "the ping URL's secret part is never logged"
    # unreachable: a closed port
    dead = srv.url
    assert beat(dead, True) is False


def test_beat_from_health_pings_with_the_health_verdict(tmp_path):
    now = datetime.now(UTC)
    with PingServer() as srv:
        s = Settings.model_validate(
            {"watch": ["openai"], "storage": {"path": str(tmp_path / "w.db")}, "heartbeat": {"url": srv.url}}
        )
        store = SQLiteStore(s.storage.path)
        vendors = resolve(s)
        for v in vendors:
            for spec in v.sources:
                store.save_source(SourceRecord(spec.key, spec.vendor, spec.type, spec.url, last_success_at=now))
        ctx = WebContext(s, store, vendors, started_at=now - timedelta(hours=1), runtime={"scheduler_running": True})

        async def go():
            async with httpx.AsyncClient(trust_env=False) as client:
                first = await heartbeat.beat_from_health(client, ctx)
                ctx.runtime["scheduler_running"] = False
                second = await heartbeat.beat_from_health(client, ctx)
                return first, second

        assert asyncio.run(go()) == (True, True)
        store.close()
    assert [(m, p) for m, p, _ in srv.pings] == [("GET", f"/ping/{UUID}"), ("POST", f"/ping/{UUID}/fail")]
    assert b"scheduler is not running" in srv.pings[1][2]
