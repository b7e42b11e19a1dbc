"""The status board: one page a marketer understands at a glance, and a page per incident.

- ``GET /``: every watched vendor with its state in colour *and* words, the reason,
  the latency of our own probes over the last 24 h (an inline SVG, when the vendor
  is probed), open incidents with kind, age and acknowledgement (and an
  **Acknowledge** button), vendor maintenance in progress or planned, and the
  incidents resolved in the last 7 days with their duration. It refreshes itself
  every minute (``<meta http-equiv=refresh>``; the page has no JavaScript at all).
- ``GET /incidents/{id}``: the incident's timeline (every vendor update and signal,
  every alert sent and its delivery state, the acknowledgement) and its playbook.
- ``POST /incidents/{id}/ack``: the Acknowledge button. The form carries a CSRF
  token derived from the login (:mod:`watcher.web.auth` puts the identity in the
  request), so another site cannot make a logged-in browser acknowledge. The
  acknowledgement records the Basic-auth user name, else the name typed in the form.

Templates are Jinja2 with autoescape on: vendor text (titles, updates, component
names) is escaped everywhere. The only markup inserted as-is is ours: the SVG chart
(numbers and escaped text, see :mod:`watcher.web.charts`) and the playbook rendered
by markdown-it-py with raw HTML off. Responses forbid scripts and framing (CSP).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
from datetime import UTC, datetime
from urllib.parse import parse_qs
from zoneinfo import ZoneInfo

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from markdown_it import MarkdownIt
from markupsafe import Markup
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from watcher import i18n
from watcher.alerts.email import safe_url
from watcher.model import SELF_VENDOR
from watcher.web import charts, views
from watcher.web.auth import SCOPE_KEY, Identity

log = logging.getLogger("watcher.web")

REFRESH_SECONDS = 60
MAX_FORM = 16 * 1024

STATE_ICONS = {"operational": "✓", "degraded": "!", "outage": "✕", "maintenance": "⚙", "unknown": "?"}

SECURITY_HEADERS = {
    "Cache-Control": "no-store",
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}


# -- rendering helpers ------------------------------------------------------------------------


class _SafeMarkdown(MarkdownIt):
    """CommonMark with raw HTML escaped, no images, links only to http(s) (as in alert emails)."""

    def validateLink(self, url: str) -> bool:  # noqa: N802 (markdown-it's API name)
        return safe_url(url) is not None


_MD = _SafeMarkdown("commonmark", {"html": False, "linkify": False, "typographer": False, "breaks": True})
_MD.disable("image")


def markdown_html(text: str) -> Markup:
    """Our playbook Markdown as HTML; any HTML in it (vendor text included) comes out escaped."""
    tokens = _MD.parse(text or "")
    stack = list(tokens)
    while stack:
        tok = stack.pop()
        if tok.children:
            stack.extend(tok.children)
        if tok.type == "link_open":
            tok.attrSet("rel", "noopener noreferrer")
    return Markup(_MD.renderer.render(tokens, _MD.options, {}))  # markdown-it escaped every text in it


class Fmt:
    """Time formatting for templates, in the team's zone (``alerts.timezone``) and language, relative to ``now``."""

    def __init__(self, now: datetime, tz: str, locale: str = "en"):
        self.now = now
        self.locale = i18n.lang(locale)
        try:
            self.zone = ZoneInfo(tz)
            self.zone_name = tz
        except Exception:
            self.zone, self.zone_name = ZoneInfo("UTC"), "UTC"

    def when(self, dt: datetime | None) -> str:
        if dt is None:
            return ""
        local = (dt if dt.tzinfo else dt.replace(tzinfo=UTC)).astimezone(self.zone)
        same_day = local.date() == self.now.astimezone(self.zone).date()
        from babel.dates import format_datetime

        pattern = "HH:mm" if same_day else "EEE d MMM HH:mm"
        return format_datetime(local, pattern, tzinfo=local.tzinfo, locale=self.locale)

    def iso(self, dt: datetime | None) -> str:
        return dt.astimezone(UTC).isoformat(timespec="seconds") if dt else ""

    def ago(self, dt: datetime | None) -> str:
        if dt is None:
            return ""
        secs = (self.now - dt).total_seconds()
        if secs < -300:  # the future (planned maintenance); a few minutes ahead is clock skew
            return i18n.t(self.locale, "board.in", duration=self.dur(-secs))
        if secs < 60:
            return i18n.t(self.locale, "board.just_now")
        return i18n.t(self.locale, "board.ago", duration=self.dur(secs))

    def age(self, seconds: float | None) -> str:
        """How long an open incident has lasted: "for 1 hr 5 min", "just started"."""
        if seconds is None:
            return ""
        if seconds < 60:
            return i18n.t(self.locale, "board.just_started")
        return i18n.t(self.locale, "board.for", duration=self.dur(seconds))

    def dur(self, seconds: float | None) -> str:
        return "" if seconds is None else i18n.format_duration(seconds, self.locale)


def _env() -> Environment:
    env = Environment(
        loader=PackageLoader("watcher.web", "templates"),
        autoescape=select_autoescape(default=True, default_for_string=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.globals.update(
        STATE_LABELS=views.STATE_LABELS,
        STATE_ICONS=STATE_ICONS,
        KIND_LABELS=views.KIND_LABELS,
        DELIVERY_LABELS=views.DELIVERY_LABELS,
        REFRESH_SECONDS=REFRESH_SECONDS,
    )
    return env


ENV = _env()


def render(template: str, status: int = 200, locale: str = "en", **context) -> HTMLResponse:
    """The page in ``locale``: ``tr(key, **values)`` gives the words of ``board.<key>`` in that language."""
    loc = i18n.lang(locale)

    def tr(key: str, **values) -> str:
        if not i18n.has(loc, f"board.{key}"):  # a word we have no translation for (a new status): as is
            return key.rsplit(".", 1)[-1].replace("_", " ")
        return i18n.t(loc, f"board.{key}", **values)

    def reason(text: str) -> str:
        return i18n.reason_words(text, loc)

    labels = {
        "LANG": loc,
        "tr": tr,
        "reason": reason,
        "STATE_LABELS": {k: i18n.t(loc, f"board.state.{k}") for k in views.STATE_LABELS},
        "KIND_LABELS": {k: i18n.t(loc, f"board.kind.{k}") for k in views.KIND_LABELS},
        "DELIVERY_LABELS": {k: i18n.t(loc, f"board.delivery.{k}") for k in views.DELIVERY_LABELS},
    }
    html = ENV.get_template(template).render(**{**labels, **context})
    return HTMLResponse(html, status_code=status, headers=SECURITY_HEADERS)


def message_page(
    key: str, status: int = 200, back: str = "/", locale: str = "en", **values: object
) -> HTMLResponse:
    """An error page in the board's language: ``board.page.<key>_title`` and ``<key>_text``.

    A French team's board said "Unknown incident" and "Not allowed" in the middle of French pages.
    """
    loc = i18n.lang(locale)
    title = i18n.t(loc, f"board.page.{key}_title")
    message = i18n.t(loc, f"board.page.{key}_text", **values)
    return render("message.html", status, locale=loc, title=title, message=message, back=back, root=None)


def headline(vendor_views: list[views.VendorView], locale: str = "en") -> tuple[str, str]:
    """The one sentence at the top of the board, and the worst state (for its colour)."""
    loc = i18n.lang(locale)
    if not vendor_views:
        return "unknown", i18n.t(loc, "board.no_vendor")
    groups: dict[str, list[str]] = {}
    for v in vendor_views:
        groups.setdefault(v.state, []).append(v.name)
    ok = groups.get("operational", [])
    if len(ok) == len(vendor_views):
        return "operational", i18n.t(loc, "board.all_working", n=len(ok))
    parts = []
    colon = " : " if loc == "fr" else ": "
    for state in ("outage", "degraded", "maintenance", "unknown"):
        if groups.get(state):
            parts.append(f"{i18n.t(loc, 'board.headline.' + state)}{colon}{', '.join(groups[state])}.")
    if ok:
        parts.append(i18n.t(loc, "board.n_working", n=len(ok)))
    worst = min(groups, key=lambda s: views.STATE_ORDER.get(s, 9))
    return worst, " ".join(parts)


def csrf_key(engine) -> bytes:
    """Stable across restarts when an ack secret is configured (open forms keep working), else per process."""
    secret = getattr(engine, "ack_secret", None)
    if secret:
        return hashlib.sha256(b"watcher board csrf\0" + secret.encode()).digest()
    return secrets.token_bytes(32)


def csrf_token(key: bytes, ident: Identity) -> str:
    return hmac.new(key, ident.key.encode(), hashlib.sha256).hexdigest()[:40]


# -- routes -------------------------------------------------------------------------------------


def routes(ctx) -> list[BaseRoute]:
    """``/``, ``/incidents/{id}`` and ``POST /incidents/{id}/ack`` for ``create_app(extra_routes=...)``."""
    key = csrf_key(ctx.engine)

    locale = i18n.lang(ctx.settings.alerts.locale)

    def fmt(now: datetime) -> Fmt:
        return Fmt(now, ctx.settings.alerts.timezone, locale)

    def identity(request: Request) -> Identity | None:
        return request.scope.get(SCOPE_KEY)

    def known_name(ident: Identity | None) -> str | None:
        return ident.name if ident is not None and ident.kind in ("basic", "token") else None

    async def board(request: Request) -> Response:
        now = ctx.clock()
        vendor_views = views.vendors(ctx, now)
        rows = []
        for v in views.by_severity(vendor_views):
            chart = charts.sparkline(v.latency, end=now) if v.latency else None
            rows.append(
                {
                    "view": v,
                    # ours: numbers and escaped text only (see watcher.web.charts)
                    "chart": Markup(chart) if chart else None,
                    "latency": v.latency_summary.text() if v.latency_summary else None,
                }
            )
        state, text = headline(vendor_views, locale)
        open_now = views.open_incidents(ctx, now)
        ident = identity(request)
        flash = None
        acked = request.query_params.get("acked", "")
        if acked.isdigit():
            ack = ctx.store.ack(int(acked))
            flash = i18n.t(
                locale, "board.flash_acked_by" if ack else "board.flash_acked", id=acked, who=ack.by if ack else ""
            )
        return render(
            "board.html",
            locale=locale,
            root="",
            vendors=rows,
            headline_state=state,
            headline=text,
            self_incidents=[i for i in open_now if i.incident.vendor == SELF_VENDOR],
            incidents=[i for i in open_now if i.incident.vendor != SELF_VENDOR],
            maintenances=views.maintenances(ctx, now),
            history=views.history(ctx, now),
            history_days=views.HISTORY_DAYS,
            changes=views.recent_changes(ctx.store),
            last_poll=views.last_poll(ctx.store),
            fmt=fmt(now),
            csrf=csrf_token(key, ident) if ident else None,
            user_name=known_name(ident),
            flash=flash,
        )

    async def incident_page(request: Request) -> Response:
        now = ctx.clock()
        iid = request.path_params["incident_id"]
        detail = views.incident_detail(ctx, iid, now)
        if detail is None:
            return message_page("unknown", 404, back="../", locale=locale, id=iid)
        inc = detail.view.incident
        vendor = next((v for v in ctx.vendors if v.id == inc.vendor), None)
        ident = identity(request)
        acked = request.query_params.get("acked", "")
        return render(
            "incident.html",
            locale=locale,
            root="../",
            d=detail,
            iv=detail.view,
            inc=inc,
            vendor_url=safe_url(inc.url),
            status_page=safe_url(vendor.status_page) if vendor else None,
            playbook=markdown_html(detail.playbook) if detail.playbook else None,
            fmt=fmt(now),
            csrf=csrf_token(key, ident) if ident else None,
            user_name=known_name(ident),
            flash=i18n.t(locale, "board.flash_acked", id=iid) if acked == str(iid) else None,
        )

    async def acknowledge(request: Request) -> Response:
        iid = request.path_params["incident_id"]
        back_board = "../../"
        if not views.valid_id(iid):
            return message_page("unknown", 404, back=back_board, locale=locale, id=iid)
        ident = identity(request)
        if ident is None:
            return message_page("not_allowed", 403, back=back_board, locale=locale)
        raw = await _read(request, MAX_FORM)
        if raw is None:
            return message_page("too_large", 413, back=back_board, locale=locale)
        form = {k: v[0] for k, v in parse_qs(raw.decode("utf-8", "replace"), keep_blank_values=True).items()}
        back = f"../{iid}" if form.get("back") == "incident" else back_board
        if not hmac.compare_digest(form.get("csrf", "").encode(), csrf_token(key, ident).encode()):
            return message_page("expired", 403, back=back, locale=locale)
        by = known_name(ident) or " ".join(form.get("by", "").split())[:80]
        if not by:
            return message_page("name", 400, back=back, locale=locale)
        reason = form.get("reason", "").strip()[:500] or None
        if ctx.engine is None:
            return message_page("unavailable", 503, back=back, locale=locale)
        try:
            ctx.engine.acknowledge(iid, by, reason, via="board")
        except LookupError:
            return message_page("unknown", 404, back=back_board, locale=locale, id=iid)
        except ValueError as e:
            inc = ctx.store.incident(iid)
            if inc is not None and inc.resolved_at is not None:  # the one refusal a user meets, in their words
                return message_page("resolved", 409, back=back, locale=locale, id=iid)
            return message_page("not_acked", 409, back=back, locale=locale, error=e)
        log.info("incident #%s acknowledged by %s from the board", iid, by)
        return RedirectResponse(f"{back}?acked={iid}", status_code=303, headers={"Cache-Control": "no-store"})

    return [
        Route("/", board, methods=["GET", "HEAD"], name="board"),
        Route("/incidents/{incident_id:int}", incident_page, methods=["GET", "HEAD"], name="incident"),
        Route("/incidents/{incident_id:int}/ack", acknowledge, methods=["POST"], name="incident_ack"),
    ]


async def _read(request: Request, limit: int) -> bytes | None:
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
