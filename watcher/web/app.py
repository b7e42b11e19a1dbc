"""watcher's own small web app (Starlette): Slack interactivity and signed acknowledge links.

Served by ``watcher run`` in the daemon's event loop, so handlers share the
store and the alert engine with the pollers without any locking.

- ``POST /slack/interactivity``: Slack button clicks (Acknowledge, Mute 1h).
  Every request must carry a valid v0 signature made within 5 minutes, checked
  on the raw body before anything is parsed; Slack wants an answer within 3 s,
  and acknowledging is a few local writes, so it is answered inline. *Mute 1h*
  needs the admin rule of ``/watcher mute`` (:mod:`watcher.alerts.actions`).
- ``POST /slack/commands``: the ``/watcher`` slash command (form-encoded, the
  same signature check). Answered with JSON within Slack's 3 s; work that takes
  longer finishes in the background and its answer goes to the command's
  ``response_url`` (:mod:`watcher.alerts.commands`).
- ``GET /ack/<id>?e=…&s=…``: the link from an alert email shows a confirmation
  page; only the ``POST`` from that page acknowledges, so link scanners and
  previewers that fetch URLs cannot acknowledge by accident. A link acts once:
  its first use is recorded (``ack_link_uses``), and later uses, or other links
  once the incident is acknowledged, show who acknowledged and when and change
  and send nothing. The name must be a plain display name
  (:func:`watcher.alerts.engine.plain_name`).
- ``GET /healthz``: the process answers (the status-board issue extends it).

All vendor text on these pages is HTML-escaped.
"""

from __future__ import annotations

import asyncio
import json
import logging
from html import escape
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from watcher import i18n
from watcher.alerts.actions import (
    NO_PERMISSIONS,
    clicker,
    clicker_id,
    handle_action,
    refusal_text,
    wants_permission,
)
from watcher.alerts.commands import CommandRequest, Reply, SlashCommands
from watcher.alerts.engine import plain_name
from watcher.alerts.signing import verify_ack
from watcher.alerts.slack_signature import verify
from watcher.incidents.wording import say_title

log = logging.getLogger("watcher.web")

MAX_BODY = 64 * 1024


def create_app(
    engine,
    *,
    signing_secret: str | None,
    ack_secret: str | None,
    extra_routes: list | tuple = (),
    middleware: list | tuple = (),
    commands: SlashCommands | None = None,
) -> Starlette:
    """``engine`` is the :class:`~watcher.alerts.engine.AlertEngine` (acknowledge, mute, store).

    ``commands`` runs ``/watcher``; by default one is built from the engine's settings.

    ``extra_routes`` come from the other web modules (the board, metrics, health); they are
    matched before these, so a module may replace ``/healthz`` with a fuller one.
    """

    async def healthz(request: Request) -> Response:
        return JSONResponse({"ok": True})

    if commands is None and engine is not None:
        commands = SlashCommands(engine)
    background: set[asyncio.Future] = set()

    async def _from_slack(request: Request) -> bytes | Response:
        """The raw body of a request Slack signed within 5 minutes, or the refusal to send back."""
        if not signing_secret:
            return PlainTextResponse("Slack interactivity is not configured (slack.signing_secret)", 503)
        body = await _body(request)
        if body is None:
            return PlainTextResponse("request too large", 413)
        ts = request.headers.get("x-slack-request-timestamp", "")
        sig = request.headers.get("x-slack-signature", "")
        if not verify(signing_secret, ts, body, sig):
            log.warning("refused a Slack request with a bad or stale signature from %s", _peer(request))
            return PlainTextResponse("invalid signature", 401)
        return body

    async def slack_commands(request: Request) -> Response:
        body = await _from_slack(request)
        if isinstance(body, Response):
            return body
        if commands is None:
            return PlainTextResponse("slash commands are not set up", 503)
        form = await _form(body)
        if not form.get("command") and "text" not in form:
            return PlainTextResponse("not a slash command", 400)
        reply = await commands.answer(CommandRequest.from_payload(form))
        return JSONResponse(reply.payload())

    async def slack_interactivity(request: Request) -> Response:
        body = await _from_slack(request)
        if isinstance(body, Response):
            return body
        form = await _form(body)
        try:
            payload = json.loads(form.get("payload", ""))
        except (ValueError, RecursionError):
            return PlainTextResponse("no payload", 400)
        if not isinstance(payload, dict):
            return PlainTextResponse("payload is not a JSON object", 400)
        if payload.get("type") != "block_actions":
            return Response(status_code=200)
        actions = payload.get("actions")
        if not isinstance(actions, list) or not all(isinstance(a, dict) for a in actions):
            return PlainTextResponse("malformed actions", 400)
        who = clicker(payload)
        may_mute = None
        if wants_permission(payload):  # Mute 1h: the same admin rule as /watcher mute
            permissions = commands.permissions if commands is not None else None
            may_mute = NO_PERMISSIONS
            if permissions is not None:
                uid = clicker_id(payload)
                may_mute = permissions.decide_now(uid) or await asyncio.to_thread(permissions.check, uid)
        known = False
        for action in actions:
            answer = handle_action(engine, action, who, may_mute=may_mute)
            if answer:
                known = True
                log.info("Slack: %s", answer)
        if not known:
            return PlainTextResponse("no action of ours in this payload", 400)
        if may_mute is not None and not may_mute[0] and commands is not None:
            log.warning("Slack: %s (%s) may not mute vendors: Mute 1h refused", who, clicker_id(payload))
            reply = Reply(refusal_text(may_mute, loc))
            url = payload.get("response_url") if isinstance(payload.get("response_url"), str) else None
            task = asyncio.ensure_future(asyncio.to_thread(commands.post_response, url, reply))
            background.add(task)
            task.add_done_callback(background.discard)
        return Response(status_code=200)

    # the team's language and zone, as the email that holds the link (alerts.locale, alerts.timezone)
    loc = i18n.lang(engine.settings.alerts.locale) if engine is not None else i18n.DEFAULT
    tz = engine.settings.alerts.timezone if engine is not None else None

    def w(key: str, **values: object) -> str:
        """Words of the acknowledge-link pages in the team's language; values are escaped here."""
        return i18n.t(loc, f"ack_page.{key}", **{k: escape(str(v)) for k, v in values.items()})

    def when(at) -> str:
        return i18n.format_time(at, loc, tz) if at else "?"

    def page(title: str, body: str, status: int = 200) -> HTMLResponse:
        return _page(title, body, status, lang=loc)

    def invalid() -> HTMLResponse:
        return page(w("invalid_title"), f"<p>{w('invalid_text')}</p>", 403)

    def unknown(iid: int) -> HTMLResponse:
        return page(w("unknown_title"), f"<p>{w('unknown_text', id=iid)}</p>", 404)

    def resolved(inc, status: int = 200) -> HTMLResponse:
        title = say_title(inc.title, loc)
        return page(w("resolved_title"), f"<p>{w('resolved_text', title=title)}</p>", status)

    async def ack_page(request: Request) -> Response:
        iid, ok, inc = _check_link(request, request.query_params)
        if not ok:
            return invalid()
        if inc is None:
            return unknown(iid)
        if not inc.is_open:
            return resolved(inc)
        q = request.query_params
        used = _link_used(iid, q)
        if used is not None:
            return _used_page(iid, used)
        ack = engine.store.ack(iid)
        already = f"<p>{w('already', who=ack.by, at=when(ack.at))}</p>" if ack else ""
        form = (
            f'<form method="post" action="{iid}">'  # relative: works under a path prefix too
            f'<input type="hidden" name="e" value="{escape(q.get("e", ""))}">'
            f'<input type="hidden" name="s" value="{escape(q.get("s", ""))}">'
            f'<p><label>{w("name")} <input name="by" required maxlength="80"></label></p>'
            f'<p><label>{w("note")} <input name="reason" maxlength="500"></label></p>'
            f'<p><button type="submit">{w("button")}</button></p></form>'
        )
        kind = i18n.t(loc, f"kind_lc.{inc.kind.value}")
        status = (
            i18n.t(loc, f"status.{inc.status.value}")
            if i18n.has(loc, f"status.{inc.status.value}")
            else inc.status.value
        )
        body = (
            f"<p><strong>{escape(inc.vendor)}</strong> — {escape(say_title(inc.title, loc))}</p>"
            f"<p>{w('summary', kind=kind, status=status)}</p>{already}{form}"
        )
        return page(w("title", id=iid), body)

    async def ack_submit(request: Request) -> Response:
        raw = await _body(request)
        if raw is None:
            return PlainTextResponse("request too large", 413)
        form = await _form(raw)
        iid, ok, inc = _check_link(request, form)
        if not ok:
            return invalid()
        if inc is None:
            return unknown(iid)
        used = _link_used(iid, form)
        if used is not None:  # a link acts once: a replay changes nothing and sends nothing
            log.warning("acknowledge link for incident #%s used again from %s: refused", iid, _peer(request))
            return _used_page(iid, used)
        try:
            by = plain_name(form.get("by"))
        except ValueError as e:
            why = i18n.say(e.args[0] if e.args else str(e), loc)
            return page(w("not_acked_title"), f"<p>{escape(why)}</p><p>{w('try_again')}</p>", 400)
        reason = " ".join((form.get("reason") or "").split())[:500] or None
        if not inc.is_open:
            return resolved(inc, 409)
        ack = engine.store.ack(iid)
        if ack is not None:  # acknowledged meanwhile (button, another link): keep theirs, send nothing
            text = w("already_text", id=iid, who=ack.by, at=when(ack.at))
            return page(w("already_title"), f"<p>{text}</p>", 409)
        first = engine.store.use_ack_link(_link_key(iid, form), iid, by, engine.clock())
        if first is not None:  # the same link, submitted twice at once: the other one won
            return _used_page(iid, first)
        try:
            engine.acknowledge(iid, by, reason, via="email link")
        except LookupError:
            return unknown(iid)
        except ValueError as e:
            return page(w("not_acked_title"), f"<p>{escape(str(e))}</p>", 409)
        return page(w("done_title"), f"<p>{w('done_text', id=iid, who=by)}</p>")

    def _link_key(iid: int, params) -> str:
        return f"{iid}:{params.get('e', '')}:{params.get('s', '')}"

    def _link_used(iid: int, params) -> tuple[str, Any] | None:
        return engine.store.ack_link_use(_link_key(iid, params))

    def _used_page(iid: int, used: tuple[str, Any]) -> HTMLResponse:
        by, at = used
        text = w("used_text", id=iid, who=by, at=when(at))
        return page(w("used_title"), f"<p>{text}</p>", 409)

    def _check_link(request: Request, params) -> tuple[int, bool, Any]:
        try:
            iid = int(request.path_params["incident_id"])
        except (KeyError, ValueError):
            return 0, False, None
        if not 0 < iid <= 2**63 - 1:  # beyond the store's integers: no such incident, not a 500
            return 0, False, None
        if not ack_secret or not verify_ack(ack_secret, iid, params.get("e", ""), params.get("s", "")):
            return iid, False, None
        return iid, True, engine.store.incident(iid)

    return Starlette(
        middleware=[Middleware(RelativeRedirects), *middleware],
        routes=[
            *extra_routes,
            Route("/healthz", healthz),
            Route("/slack/interactivity", slack_interactivity, methods=["POST"]),
            Route("/slack/commands", slack_commands, methods=["POST"]),
            Route("/ack/{incident_id}", ack_page, methods=["GET"]),
            Route("/ack/{incident_id}", ack_submit, methods=["POST"]),
        ],
    )


class RelativeRedirects:
    """Redirects point at a path, never at the request's Host header.

    Starlette's trailing-slash redirect (``/ack/1/`` → ``/ack/1``) builds an absolute URL from the
    Host header, so ``/slack/`` and ``/ack/`` (outside the login and its Host check) sent anyone who
    forged that header to a host of their choosing, signed query string included. An absolute
    Location is rewritten to its path and query: this app never redirects off-site.
    """

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_relative(message):
            if message["type"] == "http.response.start" and 300 <= message["status"] < 400:
                headers = []
                for k, v in message.get("headers") or ():
                    if k.lower() == b"location":
                        v = _relative(v)
                    headers.append((k, v))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_relative)


def _relative(location: bytes) -> bytes:
    """``http://any.host/p?q`` → ``/p?q``; a relative location is kept."""
    from urllib.parse import urlsplit, urlunsplit

    text = location.decode("latin-1")
    parts = urlsplit(text)
    if not parts.scheme and not parts.netloc:
        return location
    path = parts.path if parts.path.startswith("/") else "/" + parts.path
    path = "/" + path.lstrip("/")  # never "//host": a scheme-relative URL is another host again
    return urlunsplit(("", "", path, parts.query, "")).encode("latin-1")


async def _body(request: Request, limit: int = MAX_BODY) -> bytes | None:
    """The request body, or None once it passes ``limit`` (read no further: a 1 GB POST costs nothing)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        return None
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


async def _form(body: bytes) -> dict[str, str]:
    from urllib.parse import parse_qs

    parsed = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
    return {k: v[0] for k, v in parsed.items()}


def _peer(request: Request) -> str:
    return request.client.host if request.client else "?"


def _page(title: str, body: str, status: int = 200, lang: str = "en") -> HTMLResponse:
    """A small page; ``title`` is text (escaped here), ``body`` is HTML built with escaped values."""
    html = (
        f"<!doctype html><html lang={escape(lang)}><head><meta charset=utf-8>"
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)} · watcher</title>"
        "<style>body{font:16px/1.5 system-ui,sans-serif;max-width:36em;margin:2em auto;padding:0 1em}"
        "button{font-size:1em;padding:.5em 1.2em}</style></head>"
        f"<body><h1>{escape(title)}</h1>{body}</body></html>"
    )
    return HTMLResponse(html, status_code=status, headers={"Cache-Control": "no-store"})


def make_server(
    app: Starlette,
    host: str,
    port: int,
    *,
    max_connections: int = 200,
    header_timeout: float = 10.0,
):
    """A uvicorn server that runs inside our event loop and leaves signal handling to the daemon.

    Bounded, since it shares the process (and its file descriptors) with every poll:

    - at most ``max_connections`` connections are open. Past that, a new connection first closes
      the oldest one that has not finished sending a request (a half-sent request, an idle
      keep-alive), and is itself closed when every open one is busy: a thousand slow clients
      cannot keep ``/healthz`` out, nor make a poll fail with "Too many open files";
    - a connection has ``header_timeout`` seconds to send a request's headers (slowloris);
    - uvicorn's ``limit_concurrency`` (503 past it) and the listen backlog follow that cap.
    """
    import contextlib

    import uvicorn
    from uvicorn.protocols.http.h11_impl import H11Protocol

    class _Server(uvicorn.Server):
        @contextlib.contextmanager
        def capture_signals(self):  # the daemon owns SIGTERM/SIGINT and stops us itself
            yield

    class _BoundedH11(H11Protocol):
        """h11 with a deadline on request headers and a cap on open connections."""

        _opened = 0.0
        _deadline = None

        def connection_made(self, transport) -> None:
            super().connection_made(transport)
            self._opened = self.loop.time()
            self._arm()
            if len(self.connections) > max_connections:
                idle = [c for c in self.connections if c is not self and _idle(c)]
                victim = min(idle, key=lambda c: getattr(c, "_opened", 0.0)) if idle else self
                # Out of the count now: its connection_lost comes at the next turn of the loop, and
                # a burst of accepts in this one must not all pick the same victim.
                self.connections.discard(victim)
                victim.transport.abort()

        def data_received(self, data: bytes) -> None:
            super().data_received(data)
            if not _idle(self):
                self._disarm()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            if not self.transport.is_closing():
                self._arm()  # the next request on this keep-alive connection has the same deadline

        def connection_lost(self, exc) -> None:
            self._disarm()
            super().connection_lost(exc)

        def _arm(self) -> None:
            self._disarm()
            self._deadline = self.loop.call_later(header_timeout, self._too_slow)

        def _disarm(self) -> None:
            if self._deadline is not None:
                self._deadline.cancel()
                self._deadline = None

        def _too_slow(self) -> None:
            self._deadline = None
            if _idle(self) and not self.transport.is_closing():
                self.transport.close()

    def _idle(conn) -> bool:
        cycle = getattr(conn, "cycle", None)
        return cycle is None or cycle.response_complete

    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level="warning",
        lifespan="off",
        access_log=False,
        http=_BoundedH11,
        limit_concurrency=max_connections + 1,  # the cap above comes first; this is a backstop
        backlog=max(64, max_connections),
        timeout_keep_alive=5,
    )
    return _Server(config)
