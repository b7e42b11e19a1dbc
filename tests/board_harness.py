"""The status board and JSON API served for tests: the real pipeline, store and engine behind real HTTP.

:class:`BoardWorld` wraps an :class:`~alerting.AlertHarness` (Anthropic's Statuspage
served from 127.0.0.1 and polled by the real pipeline into a real store, a SQLite file
or a PostgreSQL schema,
OpenAI operational beside it) and serves the whole web app under uvicorn on a free
127.0.0.1 port, built exactly as the daemon builds it::

    create_app(engine, signing_secret=..., ack_secret=...,
               extra_routes=[*board.routes(ctx), *api.routes(ctx)], middleware=auth.middleware(ctx))

``web`` settings (host, login) go in ``config["web"]``; the server itself always
listens on 127.0.0.1, the login rules follow the *configured* host.

The ``make`` fixture (``make = board_harness.make`` in a test module) builds worlds on each
store (``backend``, tests/store_backends.py) and closes them after the test.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
import pytest
from alerting import AlertHarness
from bs4 import BeautifulSoup
from web_server import WebServer

from watcher.web import api, auth, board
from watcher.web.app import create_app
from watcher.web.context import WebContext

SIGNING_SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
UPDATE_1 = ("investigating", "Claude API requests are failing.", "2026-10-07T13:01:00Z")
UPDATE_2 = ("identified", "We found the cause and are deploying a fix.", "2026-10-07T13:20:00Z")


class BoardWorld:
    def __init__(
        self, vendor_server, tmp_path, config: dict[str, Any] | None = None, transports=None, backend=None
    ):
        self.h = AlertHarness(vendor_server, tmp_path, config, transports=transports, backend=backend)
        self.ctx = WebContext(
            settings=self.h.settings,
            store=self.h.store,
            vendors=self.h.vendors,
            engine=self.h.engine,
            clock=self.h.clock,
        )
        ctx = self.ctx
        self.app = create_app(
            self.h.engine,
            signing_secret=SIGNING_SECRET,
            ack_secret=self.h.engine.ack_secret,
            extra_routes=[*board.routes(ctx), *api.routes(ctx)],
            middleware=auth.middleware(ctx),
        )
        self.web = WebServer(self.app).start()
        self.url = self.web.url
        self.http = httpx.Client(base_url=self.url, timeout=10, trust_env=False)

    # -- the watched world ------------------------------------------------------------------------

    @property
    def store(self):
        return self.h.store

    @property
    def clock(self):
        return self.h.clock

    def outage(self, *updates, **kw) -> int:
        """Anthropic reports an outage; polled through the real pipeline. Returns the incident id."""
        self.h.outage(*(updates or (UPDATE_1,)), **kw)
        self.h.poll()
        [inc] = [i for i in self.store.open_incidents("anthropic") if not i.is_maintenance]
        return inc.id

    def recover(self) -> None:
        from scenario import operational

        self.h.serve(operational())
        self.h.poll()

    def probe(self, vendor: str, minutes_ago: float, ttft_s: float | None, *, error_class: str = "timeout"):
        """One of our own chat probes of ``vendor``; ``ttft_s`` None for a failed one."""
        self.store.add_probe_result(
            {
                "vendor": vendor,
                "kind": "chat",
                "at": self.clock() - timedelta(minutes=minutes_ago),
                "ok": ttft_s is not None,
                "ttft_s": ttft_s,
                "total_s": (ttft_s or 0) + 0.2 if ttft_s else None,
                "error_class": None if ttft_s is not None else error_class,
                "network_ok": True,
            }
        )

    # -- the web ----------------------------------------------------------------------------------

    def page(self, path: str = "/", **kw) -> BeautifulSoup:
        r = self.http.get(path, **kw)
        assert r.status_code == 200, (r.status_code, r.text[:500])
        return BeautifulSoup(r.text, "html.parser")

    def close(self) -> None:
        self.http.close()
        self.web.stop()
        self.h.close()


@pytest.fixture
def make(vendor_server, tmp_path, backend):
    """``make(config=None, transports=None)``: a :class:`BoardWorld` on each store (SQLite, PostgreSQL).
    Several worlds of one test share the PostgreSQL schema but not the SQLite file."""
    made = []

    def build(config=None, transports=None) -> BoardWorld:
        w = BoardWorld(vendor_server, tmp_path / f"w{len(made)}", config, transports=transports, backend=backend)
        made.append(w)
        return w

    yield build
    for w in made:
        w.close()


def text_of(node) -> str:
    """What a reader sees in an element: its text with whitespace collapsed."""
    return " ".join(node.get_text(" ").split()) if node is not None else ""
