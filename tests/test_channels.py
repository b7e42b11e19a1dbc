"""Adding a channel is one class and one registration: a toy "pager" channel, routed to and delivered.

Routes reach it through configuration alone (a route's ``targets.pager``), as they would reach a channel
added to watcher: no settings field and no routing code of its own.

The pager posts JSON to a real HTTP server on 127.0.0.1. Nothing of watcher is
replaced: the incident comes from the real pipeline (a vendor page served
locally), the engine routes it through :func:`watcher.alerts.routing.targets_for`,
the outbox row is sent by the real :class:`~watcher.alerts.deliver.Deliverer`
(its first try fails with a 503 and is retried after its backoff), and the
labels of the board and the metrics (a pager row counted under its own label) come from the same registry.
"""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from alerting import AlertHarness

from watcher.alerts.channels import Channel, Check, Outlet, Transports, registry
from watcher.alerts.channels.base import FAIL, OK
from watcher.alerts.deliver import channel_timeout
from watcher.alerts.model import TransportError
from watcher.alerts.routing import targets_for

UPDATE = ("investigating", "<!channel> Claude API requests are failing.", "2026-10-07T13:01:00Z")


class Pager:
    """A pager service on 127.0.0.1: records every JSON page; answers ``status``."""

    def __init__(self) -> None:
        self.pages: list[dict[str, Any]] = []
        self.status = 200
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # the pager's health page: what its doctor check reads
                self.send_response(200 if outer.status == 200 else outer.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if outer.status == 200:
                    outer.pages.append(json.loads(body))
                self.send_response(outer.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *a: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/page"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class PagerChannel(Channel):
    """The whole channel: a name, its labels, a render and a send. Routes name its targets in their
    ``targets`` table (``targets = { pager = [URL] }``): no settings field, no routing code."""

    name = "pager"
    labels = {"en": "Pager", "fr": "Bipeur"}

    def timeout(self, settings) -> float:
        return 3.0

    def checks(self, settings, transports, targets) -> list[Check]:
        """Its own lines in ``watcher doctor``: each routed pager answers its health page (nothing is paged)."""
        out = []
        for url in targets:
            try:
                with urllib.request.urlopen(url, timeout=3) as resp:
                    out.append(Check(OK, f"pager {url}", f"answers ({resp.status})"))
            except (urllib.error.URLError, OSError) as e:
                out.append(Check(FAIL, f"pager {url}", f"does not answer: {e}", "check the pager's URL"))
        return out

    def render(self, alert) -> dict[str, Any]:
        return {
            "incident": alert.incident_id,
            "action": alert.action.value,
            "title": alert.title,
            "state": alert.state,
        }

    async def send(self, out: Outlet, n) -> dict[str, Any]:
        page = self.render(n.alert)

        def post() -> int:
            req = urllib.request.Request(
                n.target, data=json.dumps(page).encode(), headers={"Content-Type": "application/json"}
            )
            try:
                with urllib.request.urlopen(req, timeout=3) as resp:
                    return resp.status
            except urllib.error.HTTPError as e:
                raise TransportError(f"pager answered {e.code}", permanent=e.code < 500) from None

        status = await out.in_thread(self.name, post)
        return {"status": status}


@pytest.fixture
def pager():
    p = Pager()
    yield p
    p.close()


def test_a_registered_toy_channel_is_routed_to_and_delivered_through_the_outbox(
    vendor_server, tmp_path, pager
):
    with registry.registered(PagerChannel()):
        routes = [{"name": "oncall", "targets": {"pager": [pager.url]}}]
        h = AlertHarness(vendor_server, tmp_path, {"routes": routes}, transports=Transports())
        try:
            [routed] = targets_for(h.settings.routes, "anthropic", "outage", [])
            assert (routed.target.channel, routed.target.address, routed.route) == (
                "pager",
                pager.url,
                "oncall",
            )

            pager.status = 503  # the pager has a bad minute: the outbox retries, as for Slack
            h.outage(UPDATE)
            h.poll()
            h.deliver()
            [row] = h.rows()
            assert (row.channel, row.target, row.state, row.attempts) == ("pager", pager.url, "pending", 1)
            assert "503" in (row.last_error or "")

            pager.status = 200
            h.clock.tick(600)
            h.deliver()
            [page] = pager.pages
            [inc] = h.store.open_incidents("anthropic")
            assert page == {"incident": inc.id, "action": "opened", "title": inc.title, "state": "open"}
            assert [r.state for r in h.rows()] == ["delivered"]

            # the labels and lists shown elsewhere come from the same registry
            from watcher.web.views import channel_label

            assert channel_label("pager") == "Pager"
            assert registry.label("pager", "fr") == "Bipeur"
            assert "pager" in registry.names()
            assert channel_timeout(h.settings, "pager") == 3.0
            from watcher.web.context import WebContext
            from watcher.web.prometheus import metrics_text

            ctx = WebContext(h.settings, h.store, h.vendors, started_at=h.clock(), clock=h.clock, runtime={})
            figures = metrics_text(ctx).decode()
            assert 'watcher_outbox_notifications{channel="pager",state="delivered"} 1.0' in figures
            assert 'watcher_delivery_failures_total{channel="pager"} 1.0' in figures
            assert 'watcher_outbox_notifications{channel="apprise",state="pending"} 0.0' in figures
        finally:
            h.close()
    assert registry.get("pager") is None, "unregistered after the block"
    assert registry.names()[:3] == ("slack", "email", "apprise")


def cli(monkeypatch, capsys, *argv: str) -> tuple[int, str, str]:
    """``watcher ARGV`` in this process, so that the toy channel registered by the test is known to it."""
    import os

    from watcher.cli import main

    for key in [k for k in os.environ if k.startswith("WATCHER_")]:
        monkeypatch.delenv(key)
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def pager_config(tmp_path, targets: str) -> str:
    cfg = tmp_path / "watcher.toml"
    cfg.write_text(
        f'watch = ["anthropic", "openai"]\n[storage]\npath = "{tmp_path / "w.db"}"\n'
        f'[[routes]]\nname = "oncall"\ntargets = {{ {targets} }}\n'
    )
    return str(cfg)


def test_the_commands_know_a_registered_channel_from_the_registry(tmp_path, pager, monkeypatch, capsys):
    """``config check`` (the doctor's route lines and the channel's own checks), ``test-alert`` and the
    config's channel names: a route naming only the pager has a target, is checked by the pager's own
    doctor lines, gets the sample alert, and a misspelt channel is refused."""
    with registry.registered(PagerChannel()):
        cfg = pager_config(tmp_path, f'pager = ["{pager.url}"]')
        code, out, err = cli(monkeypatch, capsys, "config", "check", "-c", cfg)
        assert code == 0, out + err
        assert f"route oncall: every vendor, 5 kind(s), impact >= none -> pager:{pager.url}" in out
        assert f"ok    pager {pager.url}: answers (200)" in out, "the channel's own doctor line"
        pager.status = 503
        code, out, err = cli(monkeypatch, capsys, "config", "check", "-c", cfg)
        assert code == 1 and f"FAIL  pager {pager.url}: does not answer" in out
        pager.status = 200

        code, out, err = cli(monkeypatch, capsys, "test-alert", "-c", cfg)
        assert code == 0, out + err
        assert f"pager:{pager.url}" in out and "ok" in out
        [page] = pager.pages
        assert page["action"] == "test" and page["incident"] == 0

        bad = pager_config(tmp_path, f'pagr = ["{pager.url}"]')
        code, out, err = cli(monkeypatch, capsys, "config", "check", "-c", bad)
        assert code == 2
        assert "routes.0.targets.pagr: no channel is called 'pagr' (route 'oncall'" in err
        assert "the channels are: slack, email, apprise, pager. Did you mean 'pager'?" in err
        code, out, err = cli(monkeypatch, capsys, "run", "-c", bad)
        assert code == 2 and "'pagr'" in err, "the daemon does not start with alerts routed nowhere"

        empty = pager_config(tmp_path, "pager = []")
        code, out, err = cli(monkeypatch, capsys, "test-alert", "-c", empty)
        assert code == 2
        assert "have no slack_channels, emails, apprise or targets.pager target" in err
    # once the pager is gone, a config that routes to it is refused: nothing is dropped silently
    code, out, err = cli(monkeypatch, capsys, "config", "check", "-c", cfg)
    assert code == 2 and "no channel is called 'pager'" in err and "slack, email, apprise." in err


def test_every_built_in_channel_renders_vendor_text_escaped_for_its_format():
    """``Channel.render`` is what ``send`` sends: a vendor title trying mentions and markup stays inert."""
    import dataclasses
    import json as _json

    from watcher.alerts.testing import sample_alert
    from watcher.config import Settings

    evil = "<!channel> <b>down</b> & @here [x](javascript:alert(1))"
    alert = dataclasses.replace(sample_alert(Settings.model_validate({"watch": ["openai", "anthropic"]})), title=evil)
    slack_text, blocks = registry.get("slack").render(alert)
    shown = slack_text + _json.dumps(blocks)
    assert "<!channel>" not in shown and "&lt;!channel&gt;" in shown
    subject, text, html = registry.get("email").render(alert)
    assert "<b>down</b>" not in html and "&lt;b&gt;down&lt;/b&gt;" in html
    assert 'href="javascript' not in html
    title, body = registry.get("apprise").render(alert)
    assert "<!channel>" not in title + body and "@here" not in title + body
