"""Login for the status board and the JSON API: a bearer token or HTTP Basic, from the config.

The rule (``web.*`` settings):

- **Bound to a loopback address** (``127.0.0.0/8``, ``::1``, ``localhost``) with no
  login configured: no login is needed, only people on this machine can connect.
  Requests must then be addressed to a local name (``Host: localhost``,
  ``127.0.0.1``...) or to ``alerts.public_url``'s host, so a web page elsewhere
  cannot reach the board through DNS rebinding.
- **Bound beyond localhost**: every page and API call needs
  ``Authorization: Bearer <web.auth_token>`` or HTTP Basic with ``web.username`` /
  ``web.password``. With neither configured the board is not served at all: a 503
  that names the settings to set.
- **A login configured** is always enforced, on loopback too: watcher bound to
  127.0.0.1 behind a reverse proxy is reachable from afar.

A browser cannot send a bearer token, so Basic with the token as password (any user
name) is accepted too: a token-only setup still works from a browser.

``/healthz``, ``/metrics``, ``/slack/*`` (Slack's signature) and ``/ack/*`` (signed
links) stay outside the login: each has its own check. ``web.metrics_login = true`` puts
``/metrics`` behind the login too. Without a login (loopback), ``/healthz`` and ``/metrics``
get the same Host check as the board: they tell what watcher watches and how it fares. Secrets are compared with
:func:`hmac.compare_digest`.

Failed logins are logged (the client address, the method and path, never what was sent) and
throttled per client address: after :data:`LOGIN_FAILURES` failures within
:data:`LOGIN_WINDOW` seconds, that address gets 429 with ``Retry-After`` (right
credentials included) until the oldest failure leaves the window. Behind a reverse
proxy every client shares the proxy's address: the throttle then protects the
login, at the cost of locking everyone out during an attack.

Who logged in is put in the request scope (:data:`SCOPE_KEY`, an :class:`Identity`)
for the board and the API: an acknowledgement records the Basic user name. A
request that went through no login check has no identity, and the board and API
then refuse to change anything.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import ipaddress
import json
import logging
import time
from collections import deque
from dataclasses import dataclass
from urllib.parse import urlsplit

from starlette.middleware import Middleware

from watcher.config import read_secret

log = logging.getLogger("watcher.web")

SCOPE_KEY = "watcher.identity"
EXEMPT_EXACT = ("/healthz", "/metrics")
EXEMPT_PREFIXES = ("/slack/", "/ack/")
REALM = "watcher"
LOGIN_FAILURES = 10
"""Failed logins allowed per client address within :data:`LOGIN_WINDOW` seconds."""
LOGIN_WINDOW = 60.0
MAX_TRACKED = 10_000
"""Client addresses remembered at most (the oldest are forgotten first)."""


def _monotonic() -> float:
    return time.monotonic()


def _printable(text: str, limit: int = 200) -> str:
    """``text`` safe for one log line: no control characters (a decoded %0A would forge a line)."""
    return "".join(c if c.isprintable() else "?" for c in text[:limit])


class LoginThrottle:
    """Failed logins per client address in a sliding window; an address over the limit waits."""

    def __init__(self, limit: int = LOGIN_FAILURES, window: float = LOGIN_WINDOW):
        self.limit = limit
        self.window = window
        self._failures: dict[str, deque[float]] = {}

    def _recent(self, addr: str, now: float) -> deque[float] | None:
        times = self._failures.get(addr)
        if times is None:
            return None
        while times and times[0] <= now - self.window:
            times.popleft()
        if not times:
            del self._failures[addr]
            return None
        return times

    def wait(self, addr: str) -> float:
        """Seconds ``addr`` must wait before it may try to log in again (0: it may now)."""
        now = _monotonic()
        times = self._recent(addr, now)
        if times is None or len(times) < self.limit:
            return 0.0
        return max(0.0, times[0] + self.window - now)

    def failed(self, addr: str) -> int:
        """Count a failure; returns the failures of ``addr`` within the window."""
        now = _monotonic()
        times = self._recent(addr, now)
        if times is None:
            if len(self._failures) >= MAX_TRACKED:  # bounded memory: forget the longest-known address
                self._failures.pop(next(iter(self._failures)))
            times = self._failures.setdefault(addr, deque())
        times.append(now)
        return len(times)


@dataclass(frozen=True, slots=True)
class Identity:
    kind: str
    """``basic`` (the configured user), ``token`` (bearer token, or Basic with the token) or ``local``."""
    name: str | None = None
    """The Basic user name, when there is one: who acknowledges."""

    @property
    def key(self) -> str:
        """Stable per login, for CSRF tokens: changes when the user changes."""
        return f"{self.kind}:{self.name or ''}"


def is_loopback(host: str) -> bool:
    h = (host or "").strip().strip("[]").lower()
    if h == "localhost" or h.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(h).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True, slots=True)
class Policy:
    """What the middleware enforces, decided once from the settings."""

    bind: str
    loopback: bool
    token: str | None = None
    username: str | None = None
    password: str | None = None
    public_host: str | None = None
    metrics_login: bool = False
    problem: str | None = None
    """Why a login that seems intended cannot work (a user without a password...)."""

    @property
    def login_configured(self) -> bool:
        return bool(self.token) or bool(self.username and self.password)

    @classmethod
    def from_settings(cls, settings) -> Policy:
        w = settings.web
        token = read_secret(w.auth_token, w.auth_token_file, "web.auth_token")
        password = read_secret(w.password, w.password_file, "web.password")
        username = (w.username or "").strip() or None
        problem = None
        if username and not password:
            problem = "web.username is set but no password (WATCHER_WEB__PASSWORD or web.password_file)"
        elif password and not username:
            problem = "a web password is set but no web.username"
        public_host = None
        public_url = getattr(getattr(settings, "alerts", None), "public_url", None)
        if public_url:
            try:
                public_host = (urlsplit(public_url).hostname or "").lower() or None
            except ValueError:
                public_host = None
        return cls(
            bind=w.host,
            loopback=is_loopback(w.host),
            token=token,
            username=username if password else None,
            password=password if username else None,
            public_host=public_host,
            metrics_login=bool(getattr(w, "metrics_login", False)),
            problem=problem,
        )

    def refusal(self) -> str | None:
        """The 503 message when the board must not be served at all, else None."""
        if self.login_configured or self.loopback:
            return None
        why = f" ({self.problem})" if self.problem else ""
        return (
            f"watcher's board and API are bound to web.host = {self.bind}, beyond localhost, and no login "
            f"is configured{why}, so they are not served. Set a token (WATCHER_WEB__AUTH_TOKEN or "
            "web.auth_token_file) or a user (web.username with WATCHER_WEB__PASSWORD or web.password_file), "
            "or bind web.host to 127.0.0.1."
        )

    def authenticate(self, authorization: str) -> Identity | None:
        """The identity this ``Authorization`` header proves, or None."""
        scheme, _, cred = (authorization or "").strip().partition(" ")
        scheme, cred = scheme.lower(), cred.strip()
        if scheme == "bearer" and self.token:
            return Identity("token") if _same(cred, self.token) else None
        if scheme != "basic" or not cred:
            return None
        try:
            user, sep, pw = base64.b64decode(cred, validate=True).decode("utf-8").partition(":")
        except (binascii.Error, UnicodeDecodeError, ValueError):
            return None
        if not sep:
            return None
        if self.username and self.password:
            # both compared every time: no early exit that would tell which one was wrong
            ok_user = _same(user, self.username)
            ok_pw = _same(pw, self.password)
            if ok_user and ok_pw:
                return Identity("basic", self.username)
        if self.token and _same(pw, self.token):
            return Identity("token", user.strip()[:80] or None)
        return None

    def host_allowed(self, host_header: str) -> bool:
        """For the open loopback mode: the request was addressed to this machine (or the public URL)."""
        host = (host_header or "").strip().lower()
        if host.startswith("["):
            host = host[1 : host.find("]")] if "]" in host else host
        else:
            host = host.rsplit(":", 1)[0] if host.count(":") == 1 else host
        if not host:
            return False
        return is_loopback(host) or (self.public_host is not None and host == self.public_host)


def _same(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode("utf-8"), expected.encode("utf-8"))


def is_exempt(path: str) -> bool:
    return path in EXEMPT_EXACT or path.startswith(EXEMPT_PREFIXES)


class LoginMiddleware:
    """Pure ASGI middleware (no body buffering): checks the login, then passes the request on."""

    def __init__(self, app, *, policy: Policy, throttle: LoginThrottle | None = None):
        self.app = app
        self.policy = policy
        self.throttle = throttle or LoginThrottle()

    async def __call__(self, scope, receive, send):
        path = scope.get("path", "")
        p = self.policy
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        if path in EXEMPT_EXACT and not (path == "/metrics" and p.metrics_login and p.login_configured):
            # Outside the login, but on loopback without one they answer local names only (DNS rebinding).
            if p.loopback and not p.login_configured and not p.host_allowed(_headers(scope).get("host", "")):
                await _respond(scope, send, 403, _HOST_REFUSAL)
                return
            await self.app(scope, receive, send)
            return
        if path.startswith(EXEMPT_PREFIXES):
            await self.app(scope, receive, send)
            return
        headers = _headers(scope)
        refusal = p.refusal()
        if refusal:
            await _respond(scope, send, 503, refusal)
            return
        if p.login_configured:
            addr = (scope.get("client") or ("?",))[0] or "?"
            wait = self.throttle.wait(addr)
            if wait > 0:
                await _respond(
                    scope,
                    send,
                    429,
                    f"Too many failed logins from your address: try again in {int(wait) + 1} seconds.",
                    retry_after=int(wait) + 1,
                )
                return
            ident = p.authenticate(headers.get("authorization", ""))
            if ident is None:
                if "authorization" in headers:  # a browser's first visit, without credentials, is no failure
                    n = self.throttle.failed(addr)
                    what = _printable(f"{scope.get('method', '?')} {scope.get('path', '')}")
                    if n < self.throttle.limit:
                        log.warning(
                            "web login failed from %s (%s); %d in the last %gs",
                            addr,
                            what,
                            n,
                            self.throttle.window,
                        )
                    elif n == self.throttle.limit:
                        log.warning(
                            "web login failed from %s (%s); %d failures in %gs: refusing logins from that address "
                            "for up to %gs",
                            addr,
                            what,
                            n,
                            self.throttle.window,
                            self.throttle.window,
                        )
                await _respond(scope, send, 401, "Log in to see watcher's board.", challenge=True, policy=p)
                return
        else:
            if not p.host_allowed(headers.get("host", "")):
                await _respond(scope, send, 403, _HOST_REFUSAL)
                return
            ident = Identity("local")
        scope[SCOPE_KEY] = ident
        await self.app(scope, receive, send)


_HOST_REFUSAL = (
    "This board has no login and answers only requests addressed to this machine "
    "(localhost). To serve it under another name, configure a login (web.auth_token or "
    "web.username and password) or set alerts.public_url."
)


def _headers(scope) -> dict[str, str]:
    out: dict[str, str] = {}
    for k, v in scope.get("headers") or ():
        out.setdefault(k.decode("latin-1").lower(), v.decode("latin-1"))
    return out


async def _respond(
    scope, send, status: int, message: str, *, challenge=False, policy=None, retry_after: int | None = None
) -> None:
    if scope["type"] == "websocket":
        await send({"type": "websocket.close", "code": 1008})
        return
    path = scope.get("path", "")
    if path.startswith("/api/"):
        body = json.dumps({"error": message}).encode()
        ctype = b"application/json"
    else:
        from html import escape

        body = (
            "<!doctype html><html lang=en><head><meta charset=utf-8>"
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            '<title>watcher</title></head><body style="font:16px/1.5 system-ui,sans-serif;'
            f'max-width:36em;margin:2em auto;padding:0 1em"><h1>watcher</h1><p>{escape(message)}</p>'
            "</body></html>"
        ).encode()
        ctype = b"text/html; charset=utf-8"
    headers = [
        (b"content-type", ctype),
        (b"content-length", str(len(body)).encode()),
        (b"cache-control", b"no-store"),
    ]
    if retry_after is not None:
        headers.append((b"retry-after", str(retry_after).encode()))
    if challenge:
        headers.append((b"www-authenticate", f'Basic realm="{REALM}", charset="UTF-8"'.encode()))
        if policy is not None and policy.token:
            headers.append((b"www-authenticate", f'Bearer realm="{REALM}"'.encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body if scope.get("method") != "HEAD" else b""})


def middleware(ctx) -> list[Middleware]:
    """The login middleware for ``create_app(..., middleware=...)``, configured from ``ctx.settings.web``."""
    policy = Policy.from_settings(ctx.settings)
    if policy.problem:
        log.warning("web login: %s", policy.problem)
    if policy.refusal():
        log.error("%s", policy.refusal())
    elif not policy.login_configured:
        log.info("web board on %s without login (loopback only)", policy.bind)
    return [Middleware(LoginMiddleware, policy=policy)]
