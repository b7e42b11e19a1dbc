"""``watcher demo``: what watcher does, in one minute, with no accounts and no internet.

A simulated vendor (a tiny HTTP server on 127.0.0.1) replays a real recorded
incident: Anthropic's status page on 7 October 2026, "Elevated errors on
platform.claude.com", through its four real updates (investigating,
investigating, identified, monitoring), then the page clearing as Statuspage
does once an incident is resolved. OpenAI's page (also a real payload, set to
operational) plays the healthy alternative.

The real pipeline watches it: the poller fetches the page over HTTP into a
temporary SQLite database, the incident engine opens, updates and resolves one
incident, the alert engine queues alerts with their playbook in the outbox, and
the real deliverer sends them to a "channel" that prints to this console. A
teammate acknowledges half-way, as with the Slack button. The clock is the
recording's: alerts say the incident lasted hours, though the demo takes a
minute (``--speed`` makes it faster still).

Unless ``--no-web``, watcher's web app runs on 127.0.0.1 meanwhile (the board
when it is installed, ``/healthz`` and ``/metrics``) and the alert's
acknowledge link works there.

The recorded pages ship in ``watcher/demo_data`` (with where they came from).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import copy
import json
import secrets
import socket
import sys
import tempfile
import textwrap
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from pathlib import Path
from typing import Any, TextIO

RECORDING = "summary-anthropic-claude-incident-2026-10-07.json"
ALTERNATIVE = "summary-openai-incidentio-compat-2026-09-29.json"
SUMMARY_PATH = "/api/v2/summary.json"
DEFAULT_PORT = 8765
DEMO_SECONDS = 60.0
TEAM_EMAIL = "marketing-oncall@example.com"
ACKER = "Sam (marketing)"


def _load(name: str) -> dict:
    return json.loads(resources.files("watcher").joinpath("demo_data", name).read_text("utf-8"))


# -- the recording, scene by scene ----------------------------------------------------------------


@dataclass(slots=True)
class Scene:
    at: datetime
    """The recording's time for this scene (the demo clock jumps there)."""
    title: str
    document: bytes
    """What the simulated vendor serves at /api/v2/summary.json."""
    update: str = ""
    """The vendor's new update text, if any."""
    acknowledge: bool = False
    """After this scene, a teammate acknowledges the incident."""


def _ts(s: str) -> datetime:
    return datetime.fromisoformat(s.replace("Z", "+00:00"))


def scenes(locale: str = "en") -> list[Scene]:
    """The recorded incident as the page looked before, after each real update, and once cleared."""
    from watcher.i18n import t

    real = _load(RECORDING)
    incident = real["incidents"][0]
    updates = sorted(incident["incident_updates"], key=lambda u: u["created_at"])

    def page(k: int | None) -> dict:
        doc = copy.deepcopy(real)
        for c in doc["components"]:
            c["status"] = "operational"
        doc["incidents"] = []
        doc["status"] = {"indicator": "none", "description": "All Systems Operational"}
        if k is None:
            return doc
        shown = updates[: k + 1]
        status_of: dict[str, str] = {}
        for u in shown:
            for ac in u.get("affected_components") or ():
                status_of[ac["code"]] = ac["new_status"]
        for c in doc["components"]:
            if c["id"] in status_of:
                c["status"] = status_of[c["id"]]
        inc = copy.deepcopy(incident)
        inc["incident_updates"] = copy.deepcopy(list(reversed(shown)))  # Statuspage lists newest first
        inc["status"] = shown[-1]["status"]
        inc["updated_at"] = shown[-1]["created_at"]
        inc["monitoring_at"] = shown[-1]["created_at"] if inc["status"] == "monitoring" else None
        inc["resolved_at"] = None
        inc["components"] = [c for c in doc["components"] if c["id"] in status_of]
        doc["incidents"] = [inc]
        doc["status"] = copy.deepcopy(real["status"])
        return doc

    def enc(doc: dict) -> bytes:
        return json.dumps(doc).encode()

    first = _ts(updates[0]["created_at"])
    out = [Scene(first - timedelta(minutes=5), t(locale, "demo.scene_before"), enc(page(None)))]
    for k, u in enumerate(updates):
        out.append(
            Scene(
                _ts(u["created_at"]) + timedelta(minutes=1),
                t(locale, "demo.scene_update", status=_status_word(locale, u["status"])),
                enc(page(k)),
                update=u["body"],
                acknowledge=(u["status"] == "identified"),
            )
        )
    last = _ts(updates[-1]["created_at"])
    out.append(
        Scene(
            last + timedelta(minutes=30),
            t(locale, "demo.scene_after"),
            enc(page(None)),
        )
    )
    return out


def alternative_document() -> bytes:
    doc = _load(ALTERNATIVE)
    for c in doc["components"]:
        c["status"] = "operational"
    doc["incidents"] = []
    doc["status"] = {"indicator": "none", "description": "All Systems Operational"}
    return json.dumps(doc).encode()


# -- the simulated vendor ---------------------------------------------------------------------------


class SimulatedVendor:
    """Serves ``/anthropic/api/v2/summary.json`` and ``/openai/api/v2/summary.json`` on 127.0.0.1."""

    def __init__(self) -> None:
        self.pages: dict[str, bytes] = {}
        self._lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_GET(self):
                with outer._lock:
                    body = outer.pages.get(self.path.split("?", 1)[0])
                status = 200 if body is not None else 404
                body = body if body is not None else b'{"error": "not found"}'
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True, name="demo-vendor")

    def url(self, vendor: str) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/{vendor}{SUMMARY_PATH}"

    def set(self, vendor: str, body: bytes) -> None:
        with self._lock:
            self.pages[f"/{vendor}{SUMMARY_PATH}"] = body

    def start(self) -> SimulatedVendor:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


# -- console output ---------------------------------------------------------------------------------


class Console:
    def __init__(self, out: TextIO):
        self.out = out

    def line(self, text: str = "") -> None:
        print(text, file=self.out, flush=True)

    def block(self, text: str, prefix: str = "    │ ") -> None:
        for ln in text.rstrip("\n").split("\n"):
            self.line(prefix + ln)


class ConsoleMailer:
    """An email "transport" that prints each alert as the plain-text email the team would get."""

    def __init__(self, console: Console, locale: str = "en"):
        self.console = console
        self.locale = locale
        self.sent: list = []

    def send(self, alert, recipients: list[str], seq):
        from watcher.alerts.email import render_subject, render_text
        from watcher.alerts.model import AlertAction, Delivery
        from watcher.i18n import t

        loc = self.locale
        self.sent.append(alert)
        c = self.console
        subject = render_subject(alert, seq)
        action = t(loc, f"demo.action.{alert.action.value}")
        c.line("  ✉ " + t(loc, "demo.alert_to", to=", ".join(recipients), action=action, subject=subject))
        if alert.action is AlertAction.OPENED:
            c.line("    ┌─ " + t(loc, "demo.email_box") + " ─")
            c.block(render_text(alert))  # the real text/plain part, as the team's mail client shows it
            c.line("    └─")
        else:
            if alert.event_text:
                c.line("    │ " + t(loc, "email.what_changed", text=alert.event_text))
            if alert.latest_update and alert.action is not AlertAction.RESOLVED:
                c.block(textwrap.fill(alert.latest_update, 96), prefix="    │ > ")
            if alert.duration:
                c.line("    │ " + t(loc, "demo.duration", duration=alert.duration))
        return Delivery(ref={"message_id": f"<demo-{len(self.sent)}@watcher.invalid>"})


# -- the demo ----------------------------------------------------------------------------------------


class DemoClock:
    def __init__(self, now: datetime):
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def _status_word(locale: str, status: str) -> str:
    from watcher.i18n import has, t

    return t(locale, f"status.{status}") if has(locale, f"status.{status}") else status


def _settings(vendor: SimulatedVendor, db: Path, public_url: str | None, ack_secret: str, locale: str = "en"):
    from watcher.catalog import load_catalog
    from watcher.config import Settings

    def only_summary(vid: str, url: str) -> dict:
        sources: dict[str, dict[str, Any]] = {s["id"]: {"enabled": False} for s in load_catalog()[vid].get("sources", []) if s["id"] != "summary"}
        sources["summary"] = {"url": url, "interval": 60}
        return {"sources": sources}

    anthropic = only_summary("anthropic", vendor.url("anthropic"))
    from watcher.i18n import t

    anthropic["used_for"] = [w.strip() for w in t(locale, "demo.used_for").split(",")]
    alerts: dict[str, Any] = {"ack_secret": ack_secret, "locale": locale}
    if public_url:
        alerts["public_url"] = public_url
    class _Isolated(Settings):
        """The demo's own settings only: no WATCHER_* variable (a real token, a real database) leaks in."""

        @classmethod
        def settings_customise_sources(cls, settings_cls, init_settings, *_args, **_kwargs):
            return (init_settings,)

    values: dict[str, Any] = {
        "watch": ["anthropic", "openai"],
        "storage": {"path": str(db)},
        "vendors": {"anthropic": anthropic, "openai": only_summary("openai", vendor.url("openai"))},
        "routes": [{"name": "marketing", "emails": [TEAM_EMAIL]}],
        "email": {"host": "demo.invalid", "sender": "watcher <watcher@example.com>"},
        "alerts": alerts,
        "probes": {"enabled": False},
        "web": {"enabled": False, "host": "127.0.0.1"},
    }
    own = _Isolated(**values)
    return Settings.model_construct(**{k: getattr(own, k) for k in Settings.model_fields})


def _bind(port: int) -> socket.socket:
    """A listening socket on 127.0.0.1:port, or on a free port when that one is taken."""
    for p in (port, 0) if port else (0,):
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", p))
        except OSError:
            sock.close()
            continue
        sock.listen(64)
        sock.setblocking(False)
        return sock
    raise OSError("no free port on 127.0.0.1")


def _web_parts(ctx) -> tuple[list, list, bool]:
    """(routes, middleware, has_board): the board, the JSON API and their login when those modules are
    installed (they are optional here), then health and metrics."""
    import importlib

    from watcher.web import ops

    routes: list = []
    middleware: list = []
    board = False
    for name in ("board", "api"):
        try:
            module = importlib.import_module(f"watcher.web.{name}")
            routes += list(module.routes(ctx))
        except Exception as e:  # the demo goes on without that page
            if not isinstance(e, ImportError):
                print(f"(watcher.web.{name} could not start: {e!r})", file=sys.stderr)
            continue
        board = board or name == "board"
    try:
        from watcher.web import auth

        middleware = list(auth.middleware(ctx))
    except ImportError:
        pass
    return routes + ops.routes(ctx), middleware, board


async def run_demo(
    *,
    speed: float = 1.0,
    web: bool = True,
    port: int = DEFAULT_PORT,
    stay: bool = False,
    out: TextIO | None = None,
    locale: str = "en",
) -> int:
    """Replay the recorded incident through the real pipeline; returns an exit code."""
    from watcher.alerts.deliver import Deliverer, Transports
    from watcher.alerts.engine import AlertEngine
    from watcher.catalog import resolve
    from watcher.fetch import make_client
    from watcher.i18n import lang, t
    from watcher.pipeline import Pipeline
    from watcher.status import all_statuses
    from watcher.store.sqlite import SQLiteStore
    from watcher.web.context import WebContext

    con = Console(out or sys.stdout)
    loc = lang(locale)
    speed = max(speed, 0.001)
    plan = scenes(loc)
    pause = DEMO_SECONDS / (len(plan) + 1) / speed
    clock = DemoClock(plan[0].at)
    vendor = SimulatedVendor().start()
    tmp = tempfile.TemporaryDirectory(prefix="watcher-demo-")
    sock = _bind(port) if web else None
    base_url = f"http://127.0.0.1:{sock.getsockname()[1]}" if sock else None
    settings = _settings(vendor, Path(tmp.name) / "demo.db", base_url, secrets.token_urlsafe(24), loc)
    vendors = resolve(settings)
    store = SQLiteStore(settings.storage.path)
    mailer = ConsoleMailer(con, loc)
    engine = AlertEngine(settings, store, vendors, clock=clock)
    deliverer = Deliverer(settings, store, Transports(mailer=mailer), clock=clock)
    runtime: dict[str, Any] = {"scheduler_running": True, "polls": 0, "deliverer": deliverer, "probes": None}
    server = web_task = None
    try:
        from babel.dates import format_date

        con.line(t(loc, "demo.intro"))
        day = format_date(plan[1].at, "long", locale=loc)
        con.line("  " + t(loc, "demo.recording", day=day, path=f"watcher/demo_data/{RECORDING}"))
        con.line("  " + t(loc, "demo.database", path=settings.storage.path))
        if sock is not None:
            from watcher.web.app import create_app, make_server

            ctx = WebContext(settings, store, vendors, engine, started_at=clock(), clock=clock, runtime=runtime)
            routes, middleware, has_board = _web_parts(ctx)
            app = create_app(
                engine,
                signing_secret=None,
                ack_secret=engine.ack_secret,
                extra_routes=routes,
                middleware=middleware,
            )
            server = make_server(app, "127.0.0.1", sock.getsockname()[1])
            web_task = asyncio.create_task(server.serve(sockets=[sock]), name="demo-web")
            where = f"{base_url}/" if has_board else f"{base_url}/healthz"
            con.line("  " + t(loc, "demo.web", where=where, metrics=f"{base_url}/metrics"))
        con.line()

        vendor.set("openai", alternative_document())
        async with make_client(user_agent="watcher-demo") as client:
            pipeline = Pipeline(store, client, settings, vendors, clock=clock)
            specs = {v.id: next(s for s in v.sources if s.id == "summary") for v in vendors}
            previous = {s.vendor.id: s.state.value for s in all_statuses(store, vendors, clock())}
            incident_id = None
            for scene in plan:
                clock.now = scene.at
                vendor.set("anthropic", scene.document)
                con.line(f"[{scene.at:%H:%M} UTC] {scene.title}")  # the recording's clock
                if scene.update:
                    con.block(textwrap.fill(scene.update, 96), prefix="  > ")
                for vid in ("openai", "anthropic"):  # OpenAI stays operational: the alternative
                    result = await pipeline.poll(specs[vid])
                    runtime["polls"] += 1
                    if result.observation.error:
                        con.line("  ! " + t(loc, "demo.poll_failed", vendor=vid, error=result.observation.error))
                    for ch in result.changes:
                        incident_id = ch.incident.id if vid == "anthropic" else incident_id
                        for ev in ch.events:
                            text = engine.event_words(ev)[:140] if ev.text else ""
                            kind = ch.incident.kind.value
                            if loc != "en":
                                kind = t(loc, f"kind_lc.{kind}")
                            what = ev.type.value if loc == "en" else t(loc, f"demo.event.{ev.type.value}")
                            con.line(
                                f"  ● incident #{ch.incident.id} [{kind}] {what}"
                                + ((" : " if loc == "fr" else ": ") + text if text else "")
                            )
                    if result.changes:
                        engine.on_changes(result.changes)
                now_states = all_statuses(store, vendors, clock())
                for s in now_states:
                    was = previous.get(s.vendor.id)
                    if was != s.state.value:
                        line = f"  ◆ {s.vendor.name}: {was} → {s.state.value} ({s.reason})"
                        if loc != "en":
                            line = (
                                f"  ◆ {s.vendor.name} : {_state_word(loc, was)} → {_state_word(loc, s.state.value)}"
                            )
                        con.line(line)
                    previous[s.vendor.id] = s.state.value
                await deliverer.deliver_due()
                if scene.acknowledge and incident_id is not None:
                    clock.now = scene.at + timedelta(minutes=3)
                    con.line(f"[{clock.now:%H:%M} UTC] " + t(loc, "demo.ack_click", who=ACKER))
                    with contextlib.suppress(LookupError, ValueError):
                        engine.acknowledge(incident_id, ACKER, t(loc, "demo.ack_reason"), via="demo")
                    await deliverer.deliver_due()
                con.line()
                await asyncio.sleep(pause)

        _summary(con, store, incident_id, loc, engine)
        if web_task is not None and stay:
            con.line(t(loc, "demo.stays_up", url=f"{base_url}/"))
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.Event().wait()
        elif web_task is not None:
            con.line(t(loc, "demo.run_with_stay"))
        return 0
    finally:
        if server is not None:
            server.should_exit = True
            if web_task is not None:
                await asyncio.wait({web_task}, timeout=5)
        vendor.stop()
        store.close()
        tmp.cleanup()


def _state_word(loc: str, state: str | None) -> str:
    from watcher.i18n import has, t

    return t(loc, f"state.{state}") if state and has(loc, f"state.{state}") else str(state)


def _summary(con: Console, store, incident_id: int | None, loc: str = "en", engine=None) -> None:
    from watcher.i18n import format_duration, t
    from watcher.incidents.wording import say_reason

    con.line(t(loc, "demo.stored"))
    if incident_id is None:
        con.line("  " + t(loc, "demo.no_incident"))
        return
    inc = store.incident(incident_id)
    span = ""
    if inc.resolved_at and (inc.started_at or inc.opened_at):
        seconds = (inc.resolved_at - (inc.started_at or inc.opened_at)).total_seconds()
        span = t(loc, "demo.lasted", duration=format_duration(seconds, loc))
    en = loc == "en"
    kind = inc.kind.value if en else t(loc, f"kind_lc.{inc.kind.value}")
    state = inc.state.value if en else t(loc, f"demo.incident_state.{inc.state.value}")
    con.line(f"  incident #{inc.id} {inc.vendor} [{kind}] {state}{span}{': ' if en else ' : '}{inc.title}")
    # the classifier's own reason, said in the demo's language (it is stored in English)
    con.line("  " + t(loc, "demo.classified", kind=kind, reason=say_reason(inc.reason, loc)))
    con.line("  " + t(loc, "demo.timeline"))
    for se in store.events(incident_id):
        ev = se.event
        if en or engine is None:
            text = ev.text.split("\n", 1)[0][:100] if ev.text else ""
            what = ev.type.value
        else:
            text = engine.event_words(ev)[:100] if ev.text else ""
            what = t(loc, f"demo.event.{ev.type.value}")
        con.line(f"    {ev.at:%H:%M} {what}" + ((" : " if loc == "fr" else ": ") + text if text else ""))
    sent = store.notifications(incident_id=incident_id, limit=100)
    listed = ", ".join(
        reversed([f"{t(loc, 'demo.action.' + n.action.value)} {t(loc, 'demo.delivery.' + n.state)}" for n in sent])
    )
    con.line("  " + t(loc, "demo.alerts", n=len(sent), listed=listed))
    con.line()
    con.line(t(loc, "demo.next"))


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="watcher demo", description=__doc__.split("\n\n")[0])
    add_arguments(p)
    return p


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--speed", type=float, default=1.0, help="replay this many times faster (default 1: about a minute)")
    p.add_argument("--no-web", action="store_true", help="do not start the local web app")
    p.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"web port on 127.0.0.1 (default {DEFAULT_PORT}; a free one if taken)")
    p.add_argument("--stay", action="store_true", help="keep the web app up after the replay, until Ctrl-C")
    p.add_argument(
        "--locale",
        default="en",
        help="language of the demo and its alerts, as alerts.locale: en (default) or fr",
    )


def main(argv: list[str] | None = None, out: TextIO | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run_from_args(args, out)


def run_from_args(args: argparse.Namespace, out: TextIO | None = None) -> int:
    try:
        return asyncio.run(
            run_demo(
                speed=args.speed,
                web=not args.no_web,
                port=args.port,
                stay=args.stay,
                out=out,
                locale=getattr(args, "locale", "en"),
            )
        )
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
