"""``watcher doctor``: is this installation able to do its job? One line per check, with the fix.

Checked for real, without posting anything: each route resolved to its channels; the Slack token
(``auth.test``) and each routed channel (``conversations.info``: it exists, the bot can post there);
the SMTP server (connect, TLS, login, then QUIT); the database; the web port; the network.
``watcher config check`` runs the same configuration and channel checks; ``watcher run`` prints the
offline part as its first screen (:func:`summary`), so an admin sees at once where alerts go.
"""

from __future__ import annotations

import socket
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, cast

from watcher.alerts.channels import registry
from watcher.config import ConfigError, Settings

OK, WARN, FAIL = "ok", "warn", "FAIL"


@dataclass(frozen=True, slots=True)
class Check:
    status: str
    """``ok``, ``warn`` (works, but the admin should know) or ``FAIL`` (something will not work)."""
    what: str
    detail: str
    fix: str = ""

    def line(self) -> str:
        text = f"{self.status:<4}  {self.what}: {self.detail}"
        return text + (f" -> {self.fix}" if self.fix and self.status != OK else "")

    def to_json(self) -> dict:
        return {"status": self.status, "check": self.what, "detail": self.detail, "fix": self.fix or None}


def failed(checks: Iterable[Check]) -> bool:
    return any(c.status == FAIL for c in checks)


# -- what goes where (no network) ------------------------------------------------------------


def route_checks(settings: Settings) -> list[Check]:
    """Each route and the channels it resolves to; loud when no alert can reach anyone."""
    out: list[Check] = []
    if not settings.alerts.enabled:
        out.append(
            Check(WARN, "alerts", "alerts.enabled is false: nothing is sent", "set alerts.enabled = true")
        )
    if not settings.routes:
        out.append(
            Check(
                WARN,
                "routes",
                "no [[routes]] in the config: NO ALERT REACHES ANYONE (watching, the board and the CLI work)",
                "run `watcher init`, or add a [[routes]] table with slack_channels or emails (README, 'Alerts')",
            )
        )
        return out
    for r in settings.routes:
        targets = [f"{ch.name}:{ch.shown(t)}" for ch in registry.channels() for t in ch.route_targets(r)]
        name = f"route {r.name}"
        if not targets:
            out.append(
                Check(
                    FAIL,
                    name,
                    "has no slack_channels, emails or apprise target: its alerts go nowhere",
                    f"add a channel ID or an address to route {r.name!r}, or remove the route",
                )
            )
            continue
        out.append(Check(OK, name, f"{_route_scope(r)} -> {', '.join(targets)}"))
        for ch in registry.channels():
            if ch.route_targets(r) and not ch.configured(settings):
                missing, fix = ch.setup_advice()
                out.append(Check(FAIL, name, missing, fix))
    return out


def _route_scope(r) -> str:
    vendors = "every vendor" if list(r.vendors) in (["*"], []) else ", ".join(r.vendors)
    return f"{vendors}, {len(r.kinds)} kind(s), impact >= {r.min_impact}"


def targets(settings: Settings) -> list[str]:
    """Every place an alert can go: empty means no alert reaches anyone."""
    if not settings.alerts.enabled:
        return []
    ready = [ch for ch in registry.channels() if ch.configured(settings)]
    out = [f"{ch.name}:{ch.shown(t)}" for r in settings.routes for ch in ready for t in ch.route_targets(r)]
    return list(dict.fromkeys(out))


# -- credentials, tried for real ----------------------------------------------------------------


class _Checkable(Protocol):
    """A sender that can test its credentials without sending: the Slack bot (auth.test), the mailer (login)."""

    def check(self) -> str: ...


def channel_checks(settings: Settings) -> list[Check]:
    """Slack: auth.test, then conversations.info per routed channel. SMTP: connect, TLS, login, QUIT."""
    from watcher.alerts.deliver import Transports
    from watcher.alerts.model import TransportError

    out: list[Check] = []
    channels = list(dict.fromkeys(c for r in settings.routes for c in r.slack_channels))
    emails = [a for r in settings.routes for a in r.emails]
    try:
        transports = Transports.from_settings(settings)
    except ConfigError as e:  # an unreadable token or password file
        return [Check(FAIL, "secrets", str(e), "fix the *_file path or its permissions")]
    # Transports types its senders as plain objects; the bot and the mailer both have check()
    bot = cast("_Checkable | None", transports.slack_bot)
    if bot is not None:
        try:
            who = bot.check()
            out.append(Check(OK, "slack token", f"auth.test: {who} ({settings.slack.base_url})"))
        except TransportError as e:
            # only a refusal says the token is wrong: a network failure or a Slack outage says nothing
            # about it, and advising to copy it again sent admins after the wrong problem
            if e.permanent:
                out.append(
                    Check(
                        FAIL,
                        "slack token",
                        f"auth.test refused: {e.message}",
                        "copy the Bot User OAuth Token (xoxb-...) from OAuth & Permissions into "
                        "WATCHER_SLACK__TOKEN",
                    )
                )
            else:
                out.append(
                    Check(
                        FAIL,
                        "slack token",
                        f"not checked: {e.message.removesuffix(': will retry')} from this machine",
                        f"let this machine (or container) reach {slack_host(settings)}: check DNS, the firewall or "
                        "HTTPS_PROXY, or slack.base_url; status.slack.com says whether Slack itself is down",
                    )
                )
            bot = None
        for ch in channels if bot is not None else ():
            out.append(_slack_channel(bot, ch))
    elif transports.slack_webhook is not None:
        out.append(
            Check(
                WARN,
                "slack webhook",
                "set; a webhook cannot be checked without posting",
                "`watcher test-alert` posts a sample through it",
            )
        )
    mailer = cast("_Checkable | None", transports.mailer)
    if mailer is not None and (emails or settings.email.fallback_to):
        try:
            out.append(Check(OK, "smtp", mailer.check()))
        except TransportError as e:
            out.append(
                Check(
                    FAIL,
                    "smtp",
                    e.message,
                    "check email.host, email.port, email.starttls/ssl, email.username and WATCHER_EMAIL__PASSWORD",
                )
            )
    if any(r.apprise for r in settings.routes):
        out.append(
            Check(WARN, "apprise", "Apprise URLs cannot be checked without sending", "`watcher test-alert` sends one")
        )
    return out


def slack_host(settings: Settings) -> str:
    """The host the Slack checks talk to (slack.com, or the one of ``slack.base_url``), for advice."""
    from urllib.parse import urlsplit

    return urlsplit(settings.slack.base_url).netloc or "slack.com"


def _slack_channel(bot, channel: str) -> Check:
    from watcher.alerts.model import TransportError

    what = f"slack channel {channel}"
    try:
        resp = bot.client.conversations_info(channel=channel)
    except Exception as e:  # slack-sdk raises on ok=false: read the code
        data = getattr(getattr(e, "response", None), "data", None)
        code = data.get("error") if isinstance(data, dict) else None
        if code == "missing_scope":
            return Check(
                WARN,
                what,
                "cannot be checked: the app lacks the channels:read and groups:read scopes",
                "add them (slack/manifest.yaml lists them) and reinstall the app, or run `watcher test-alert`",
            )
        if code == "channel_not_found":
            return Check(
                FAIL,
                what,
                "not found, or a private channel the bot is not in",
                f"check the ID (channel menu > Copy link: the C... part) or type /invite @watcher in {channel}",
            )
        if code:
            return Check(FAIL, what, f"conversations.info answered {code}", "see README, 'Slack and email setup'")
        from watcher.alerts.slack import error_from_exception

        err: TransportError = error_from_exception(e, channel=channel)
        return Check(FAIL, what, err.message, "check the network and slack.base_url")
    info = resp.get("channel") or {}
    name = f"#{info.get('name')}" if info.get("name") else channel
    if info.get("is_archived"):
        return Check(FAIL, what, f"{name} is archived", "unarchive it or route to another channel")
    if info.get("is_member"):
        return Check(OK, what, f"{name} exists and the bot is a member")
    if info.get("is_private"):
        return Check(FAIL, what, f"{name} is private and the bot is not in it", f"type /invite @watcher in {name}")
    return Check(
        OK, what, f"{name} exists; the bot posts there without joining (chat:write.public)"
    )


# -- this machine --------------------------------------------------------------------------------


def database_label(settings) -> str:
    """The database the settings name, for messages: the PostgreSQL URL without its password, or the file."""
    if settings.storage.url:
        from watcher.store.postgres import redact_url

        return redact_url(settings.storage.url)
    return str(settings.storage.path)


def database_check(settings: Settings) -> Check:
    if settings.storage.url:
        from watcher.store import StoreError, open_store

        try:
            open_store(settings).close()
        except StoreError as e:
            return Check(FAIL, "database", str(e), "check storage.url / WATCHER_STORAGE__URL and the server")
        return Check(OK, "database", f"{database_label(settings)} answers")
    path = Path(settings.storage.path)
    if path.exists():
        import sqlite3

        try:
            con = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
            try:
                n = con.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
            finally:
                con.close()
        except sqlite3.Error as e:
            return Check(FAIL, "database", f"{path}: {e}", "restore it from a backup, or move it aside to start afresh")
        if not _writable(path) or not _writable(path.parent):
            return Check(FAIL, "database", f"{path} is read-only for this user", f"chown or chmod {path.parent}")
        return Check(OK, "database", f"{path} ({n} tables; every command reads this file)")
    parent = path.parent
    if not parent.exists():
        return Check(FAIL, "database", f"folder {parent} does not exist", f"mkdir -p {parent}, or set storage.path")
    if not _writable(parent):
        return Check(FAIL, "database", f"cannot create {path}: folder not writable", f"chown or chmod {parent}")
    return Check(OK, "database", f"{path} (created by `watcher run`; every command reads this file)")


def _writable(p: Path) -> bool:
    import os

    return os.access(p, os.W_OK)


def web_port_check(settings: Settings) -> Check:
    w = settings.web
    if not w.enabled:
        return Check(OK, "web.port", "web app disabled (web.enabled = false): no buttons, board or /healthz")
    where = f"{w.host}:{w.port}"
    problem = port_problem(w.host, w.port)
    if problem is None:
        return Check(OK, "web.port", f"{where} is free")
    if _is_watcher(w.host, w.port):
        return Check(OK, "web.port", f"{where} is served by a running watcher")
    return Check(FAIL, "web.port", f"{where}: {problem}", busy_port_fix(w.port))


def busy_port_fix(port: int) -> str:
    return (
        f"stop what uses port {port}, or set web.port to a free port in watcher.toml "
        f"(or WATCHER_WEB__PORT={port + 1}); web.enabled = false turns the web app off"
    )


def port_problem(host: str, port: int) -> str | None:
    """None when ``host:port`` can be bound now, else why not, in words."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as e:
        return f"web.host {host!r} does not resolve ({e.strerror})"
    family, kind, proto, _, addr = infos[0]
    s = socket.socket(family, kind, proto)
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(addr)
    except PermissionError:
        return f"port {port} needs privileges"
    except OSError as e:
        import errno

        if e.errno == errno.EADDRINUSE:
            return f"port {port} is already in use"
        return e.strerror or str(e)
    finally:
        s.close()
    return None


def _is_watcher(host: str, port: int) -> bool:
    import urllib.request

    h = "127.0.0.1" if host in ("0.0.0.0", "", "::") else host
    try:
        with urllib.request.urlopen(f"http://{h}:{port}/healthz", timeout=2) as r:  # noqa: S310 (local)
            body = r.read(4096)
    except Exception as e:
        body = getattr(e, "read", lambda: b"")() if hasattr(e, "read") else b""
    return b'"healthy"' in body or b"watcher" in body


def network_check(settings: Settings) -> Check:
    import asyncio
    from datetime import UTC, datetime

    from watcher.connectivity import check_network
    from watcher.fetch import make_client

    urls = list(settings.probes.control_urls)

    async def go():
        async with make_client(user_agent=settings.poll.user_agent) as client:
            return await check_network(client, urls, now=datetime.now(UTC), timeout=min(5.0, settings.poll.timeout))

    net = asyncio.run(go())
    if net.ok:
        return Check(OK, "network", net.detail)
    return Check(
        FAIL,
        "network",
        f"watcher cannot reach the internet: {net.detail}",
        "check DNS, the firewall or HTTPS_PROXY for this machine (or container); every vendor reads unknown until then",
    )


def run_checks(settings: Settings, *, machine: bool = True) -> list[Check]:
    """Every check, in the order an admin fixes things. ``machine=False``: configuration and channels only."""
    checks = route_checks(settings) + channel_checks(settings)
    if machine:
        checks += [database_check(settings), web_port_check(settings), network_check(settings)]
    return checks


def summary(settings: Settings, vendors) -> list[str]:
    """What ``watcher run`` prints first: what it watches, where alerts go, where the database is."""
    n = sum(len(v.sources) for v in vendors)
    lines = [f"watching {len(vendors)} vendors through {n} sources: {', '.join(v.id for v in vendors)}"]
    where = targets(settings)
    if where:
        lines.append(f"alerts go to: {', '.join(where)}")
    else:
        lines.append(
            "WARNING: NO ALERT CAN REACH ANYONE: "
            + ("alerts.enabled is false" if not settings.alerts.enabled else "no route with a working channel")
            + ". Run `watcher init` or `watcher doctor` to set Slack or email up."
        )
    w = settings.web
    lines.append(f"database: {database_label(settings)}" + (f"; web app: http://{w.host}:{w.port}/" if w.enabled else ""))
    return lines
