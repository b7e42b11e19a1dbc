"""A real HTTP server on 127.0.0.1 that speaks enough of Slack for slack-sdk to talk to it.

Point the clients at it::

    SlackBot(server.token, base_url=server.api_url)      # WebClient, base_url=<url>/api/
    SlackWebhook(server.webhook_url)                     # WebhookClient

and assert on what Slack would show: one message per incident, edited in place,
replies in its thread. The server keeps each channel's messages and records every
request, so retry tests can count attempts.

API (all methods are thread-safe; the server runs in background threads)
-----------------------------------------------------------------------------

``SlackServer(token="xoxb-test-token", channels=("C0ALERTS",), webhook_channel=None)``
    ``start()`` / ``stop()`` (also a context manager). The ``slack_server`` fixture in
    ``conftest.py`` yields a started one and stops it afterwards.

Addresses
    ``url`` (``http://127.0.0.1:<port>``), ``api_url`` (``url + "/api/"``, the
    ``base_url`` for WebClient), ``webhook_url`` (``url + "/services/T0TEST/B0TEST/XXXX"``),
    ``port``, ``token`` (the one valid bot token).

Web API methods (``POST /api/<method>``, JSON or form-encoded body, token from
``Authorization: Bearer`` or a ``token`` field; a missing token answers
``not_authed``, a wrong one ``invalid_auth``, both with HTTP 200 as Slack does)
    ``auth.test``         → ``ok, url, team, user, team_id, user_id, bot_id``.
    ``chat.postMessage``  → ``ok, channel, ts, message``. ``channel`` must be in the
                            allow-list (else ``channel_not_found``); ``text`` or
                            ``blocks`` is needed (``no_text``); with ``thread_ts`` it is a
                            reply to that message (``thread_not_found`` if it is unknown:
                            stricter than Slack, whose behaviour there is not verified).
    ``chat.update``       → ``ok, channel, ts, text, message``; ``message_not_found`` for
                            an unknown ts. The old version goes to ``Message.edits``.
    ``conversations.history`` → ``ok, messages, has_more, response_metadata.next_cursor``: the
                            channel's top-level messages, newest first, between ``oldest`` and
                            ``latest`` (exclusive), ``limit`` a page (default 100), ``cursor`` to
                            page on. A message posted with ``metadata`` carries it only with
                            ``include_all_metadata``, as Slack does. ``missing_scope`` (needed
                            ``channels:history``) after ``revoke_scope("channels:history")``.
    ``chat.postEphemeral`` → ``ok, message_ts``; ``channel`` must be in the allow-list and
                            ``user`` given (``user_not_in_channel`` otherwise). Kept apart
                            from the channel's messages: ``ephemerals()``.
    ``usergroups.users.list`` → ``ok, users`` for a group set with ``set_usergroup(id,
                            users)``; ``no_such_subteam`` for another id, ``missing_scope``
                            (with ``needed: usergroups:read``) after ``revoke_scope(
                            "usergroups:read")``.
    ``conversations.info`` → ``ok, channel`` (``id, name, is_private, is_member, is_archived``)
                            for a channel in the allow-list that is public or that the bot
                            is in (``set_channel(id, private=, member=)``; default: public,
                            bot a member); ``channel_not_found`` otherwise, as Slack answers
                            for a private channel the bot is not in; ``missing_scope``
                            (``needed: channels:read``) after ``revoke_scope("channels:read")``.
    anything else         → ``unknown_method``.
    Blocks are checked against Slack's limits (≤ 50 blocks, section text ≤ 3000,
    field ≤ 2000, header ≤ 150, button text ≤ 75, value ≤ 2000, ≤ 25 elements per
    actions block, ids ≤ 255) and answered ``invalid_blocks`` otherwise; ``text``
    over 40 000 characters is ``msg_too_long``. ``ts`` values are unique and
    increasing: ``"1700000000.000100"``, ``"1700000000.000200"``, …

Incoming webhook (``POST /services/T0TEST/B0TEST/XXXX``, JSON body)
    HTTP 200 ``ok`` (plain text); the message lands in ``webhook_channel`` (default:
    the first channel) with ``via="webhook"``. Another ``/services/…`` path is 404
    ``no_service``; no text and no blocks is 400 ``no_text``.

Interaction ``response_url`` (``POST /commands/…`` or ``/actions/…``, JSON body)
    HTTP 200 ``ok``, recorded with method ``response_url``; ``response_url_for(name)``
    gives one (``url + "/commands/T0TEST/<name>/resp"``), ``responses()`` lists the JSON
    bodies posted, oldest first (``responses(path)`` only those to one URL path).

State
    ``channels`` – the allow-list (a set); ``add_channel(id)`` / ``remove_channel(id)``.
    ``messages(channel)`` – top-level messages, oldest first (a snapshot list of
    :class:`Message`: ``channel, ts, text, blocks, thread_ts, replies, edits, via, args``).
    ``message(channel, ts)`` – one message, reply or not, or None.
    ``replies(channel, ts)`` – the thread under a message.
    ``all_messages()`` – every top-level message of every channel.
    ``requests`` – every request received (snapshot list of :class:`Request`:
    ``method`` ("chat.postMessage", "webhook", …), ``path``, ``headers`` (lower-case
    keys), ``args`` (parsed body), ``raw``, ``status`` and ``response`` as answered,
    ``at`` (received) and ``answered_at`` (answer sent, None if never; both ``time.time()``));
    ``calls(method)`` filters by method; ``clear_requests()``.
    ``wait_for(predicate, timeout=5)`` – poll ``predicate(server)`` until true (for
    tests where a background outbox sends); returns the last value or raises
    ``TimeoutError``.

Failure knobs
    ``fail_next(n=1, *, status=None, error=None, headers=None, body=None, method=None,
    delay=0.0, disconnect=False)`` – the next ``n`` requests (only those for ``method``
    if given: "chat.postMessage", "chat.update", "auth.test", "webhook") fail instead
    of being served, and change no state:

    - ``fail_next(2, status=429, headers={"Retry-After": "3"})`` → HTTP 429,
      ``{"ok": false, "error": "ratelimited"}`` (webhook: text ``rate_limited``);
    - ``fail_next(status=500)`` → HTTP 500 with an HTML page, as Slack's front end sends
      (any 5xx: HTML unless ``body`` is given);
    - ``fail_next(error="channel_not_found")`` → HTTP 200 ``{"ok": false, "error": ...}``
      (for the webhook: HTTP 400 and the code as text, or ``status`` if given);
    - ``body`` (dict → JSON, str/bytes → as is) overrides the body; ``delay`` sleeps
      first (a slow Slack: pair it with a client timeout); ``disconnect=True`` drops
      the connection without an answer (slack-sdk sees ``RemoteDisconnected``).

    ``clear_failures()`` forgets pending ones; ``pending_failures`` counts them.
    ``lose_answer_next(n=1, method=None)`` – the next ``n`` requests (for ``method`` if given)
    are served (a post is posted) and then the connection is closed without an answer: the
    client sees a failure although Slack did the work (a lost answer, or a crash in flight).

    ``slow(method, seconds)`` – every request for ``method`` (None: all) waits ``seconds``
    and is then served normally (a slow but working Slack); ``slow(method, 0)`` ends it.

    ``down(mode="refuse")`` / ``up()`` – Slack unreachable, then back:

    - ``"refuse"`` (default): the listening socket is closed, so connecting fails at
      once with ``ConnectionRefusedError``, the way an unreachable host behaves
      behind a rejecting firewall or a local proxy; ``up()`` listens again on the
      same port (``url`` does not change). Nothing is recorded while down.
    - ``"reset"``: connections are accepted, then reset (TCP RST) before any answer:
      ``ConnectionResetError`` for the client. Recorded with ``status=None``.
    - ``"hang"``: connections are accepted and never answered until ``up()``; the
      client's own timeout fires (``TimeoutError``). Recorded with ``status=None``.

    ``is_up`` says which. ``up()`` also releases hung requests (their connections are
    closed unanswered).
"""

from __future__ import annotations

import contextlib
import copy
import json
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

WEBHOOK_PATH = "/services/T0TEST/B0TEST/XXXX"

SECTION_LIMIT = 3000
FIELD_LIMIT = 2000
HEADER_LIMIT = 150
MAX_BLOCKS = 50
TEXT_LIMIT = 40_000

_HTML_500 = (
    b"<!DOCTYPE html><html><head><title>Server Error | Slack</title></head>"
    b"<body><h1>Slack is having some trouble</h1></body></html>"
)


@dataclass
class Message:
    channel: str
    ts: str
    text: str
    blocks: list[dict[str, Any]]
    thread_ts: str | None = None
    """Set on a thread reply: the ts of its parent."""
    replies: list[Message] = field(default_factory=list)
    edits: list[dict[str, Any]] = field(default_factory=list)
    """Earlier versions, oldest first: ``{"text", "blocks", "replaced_at"}``."""
    via: str = "api"
    """``api`` (chat.postMessage) or ``webhook``."""
    args: dict[str, Any] = field(default_factory=dict)
    """Everything the post sent (unfurl_links, …), as last posted or updated."""
    metadata: dict[str, Any] | None = None
    """The message metadata it was posted with (``event_type``, ``event_payload``), if any."""

    @property
    def edited(self) -> bool:
        return bool(self.edits)

    def all_text(self) -> str:
        """The fallback text and every ``text`` string in the blocks: what a reader could see."""
        out = [self.text]

        def walk(x: Any) -> None:
            if isinstance(x, dict):
                for k, v in x.items():
                    if k == "text" and isinstance(v, str):
                        out.append(v)
                    else:
                        walk(v)
            elif isinstance(x, list):
                for v in x:
                    walk(v)

        walk(self.blocks)
        return "\n".join(out)

    def as_slack(self, metadata: bool = False) -> dict[str, Any]:
        d: dict[str, Any] = {"type": "message", "ts": self.ts, "text": self.text, "bot_id": "B0BOT"}
        if metadata and self.metadata:
            d["metadata"] = self.metadata
        if self.blocks:
            d["blocks"] = self.blocks
        if self.thread_ts:
            d["thread_ts"] = self.thread_ts
        return d


@dataclass
class Request:
    method: str
    """The API method ("chat.postMessage", "auth.test", …), ``webhook`` or ``unknown``."""
    path: str
    headers: dict[str, str]
    raw: bytes
    args: dict[str, Any]
    at: float
    status: int | None = None
    """HTTP status answered; None when the connection was reset or left hanging."""
    response: Any = None
    """The JSON dict or text answered."""
    failed: bool = False
    """True when a ``fail_next`` failure answered it."""
    answered_at: float | None = None
    """``time.time()`` when the answer went out (after any ``slow`` delay); None if it never did."""


@dataclass
class _Failure:
    status: int | None
    error: str | None
    headers: dict[str, str]
    body: Any
    method: str | None
    delay: float
    disconnect: bool


class SlackServer:
    def __init__(
        self,
        token: str = "xoxb-test-token",
        channels: Iterable[str] = ("C0ALERTS",),
        webhook_channel: str | None = None,
        host: str = "127.0.0.1",
    ) -> None:
        self.token = token
        self.host = host
        self.port = 0
        self.channels: set[str] = set(channels)
        self.webhook_channel = webhook_channel or next(iter(channels), "C0WEBHOOK")
        self._lock = threading.RLock()
        self._messages: dict[str, list[Message]] = {}
        self._requests: list[Request] = []
        self._failures: list[_Failure] = []
        self._lose: list[str | None] = []
        self._seq = 0
        self._mode = "up"
        self._delays: dict[str | None, float] = {}
        self._usergroups: dict[str, list[str]] = {}
        self._revoked: set[str] = set()
        self._channel_info: dict[str, dict[str, bool]] = {}
        self._ephemerals: list[dict[str, Any]] = []
        self._unhang = threading.Event()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ----------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def api_url(self) -> str:
        return self.url + "/api/"

    @property
    def webhook_url(self) -> str:
        return self.url + WEBHOOK_PATH

    def start(self) -> SlackServer:
        self._listen()
        return self

    def stop(self) -> None:
        self._unhang.set()
        self._close_listener()

    def __enter__(self) -> SlackServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def _listen(self) -> None:
        httpd = _HTTPServer((self.host, self.port), _handler(self))
        self.port = httpd.server_address[1]
        self._httpd = httpd
        self._thread = threading.Thread(
            target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True, name="slack-server"
        )
        self._thread.start()

    def _close_listener(self) -> None:
        httpd, thread = self._httpd, self._thread
        self._httpd = self._thread = None
        if httpd is not None:
            httpd.shutdown()
            httpd.server_close()
        if thread is not None:
            thread.join(timeout=5)

    # -- outages ----------------------------------------------------------------------------

    @property
    def is_up(self) -> bool:
        return self._mode == "up"

    def down(self, mode: str = "refuse") -> None:
        """Make Slack unreachable: ``refuse`` (closed port), ``reset`` (TCP RST) or ``hang``."""
        if mode not in ("refuse", "reset", "hang"):
            raise ValueError(f"unknown mode {mode!r}: refuse, reset or hang")
        if self._mode != "up":
            self.up()
        with self._lock:
            self._mode = mode
            self._unhang.clear()
        if mode == "refuse":
            self._close_listener()

    def up(self) -> None:
        """Slack is back, at the same URL."""
        with self._lock:
            was, self._mode = self._mode, "up"
        self._unhang.set()
        if was == "refuse":
            self._listen()

    # -- failures ---------------------------------------------------------------------------

    def fail_next(
        self,
        n: int = 1,
        *,
        status: int | None = None,
        error: str | None = None,
        headers: dict[str, str] | None = None,
        body: Any = None,
        method: str | None = None,
        delay: float = 0.0,
        disconnect: bool = False,
    ) -> None:
        if status is None and error is None and body is None and not disconnect and not delay:
            raise ValueError("fail_next needs a status, an error, a body, a delay or disconnect=True")
        f = _Failure(status, error, dict(headers or {}), body, method, delay, disconnect)
        with self._lock:
            self._failures.extend(copy.deepcopy(f) for _ in range(n))

    def clear_failures(self) -> None:
        with self._lock:
            self._failures.clear()

    @property
    def pending_failures(self) -> int:
        with self._lock:
            return len(self._failures)

    def lose_answer_next(self, n: int = 1, method: str | None = None) -> None:
        """Serve the next ``n`` requests (for ``method``), then drop the connection unanswered."""
        with self._lock:
            self._lose.extend([method] * n)

    def _take_lose(self, method: str) -> bool:
        with self._lock:
            for i, m in enumerate(self._lose):
                if m is None or m == method:
                    del self._lose[i]
                    return True
        return False

    def _take_failure(self, method: str) -> _Failure | None:
        with self._lock:
            for i, f in enumerate(self._failures):
                if f.method is None or f.method == method:
                    return self._failures.pop(i)
        return None

    def slow(self, method: str | None, seconds: float) -> None:
        """Requests for ``method`` (None: every request) wait ``seconds``, then are served normally."""
        with self._lock:
            if seconds > 0:
                self._delays[method] = seconds
            else:
                self._delays.pop(method, None)

    def _delay(self, method: str) -> float:
        with self._lock:
            return self._delays.get(method, self._delays.get(None, 0.0))

    # -- user groups, scopes, ephemeral messages, response_url ------------------------------------

    def set_usergroup(self, usergroup: str, users: Iterable[str]) -> None:
        with self._lock:
            self._usergroups[usergroup] = list(users)

    def revoke_scope(self, scope: str) -> None:
        """Methods needing ``scope`` answer ``missing_scope`` (only ``usergroups:read`` is modelled)."""
        with self._lock:
            self._revoked.add(scope)

    def ephemerals(self) -> list[dict[str, Any]]:
        with self._lock:
            return copy.deepcopy(self._ephemerals)

    def response_url_for(self, name: str = "1") -> str:
        return f"{self.url}/commands/T0TEST/{name}/resp"

    def responses(self, path: str | None = None) -> list[dict[str, Any]]:
        """The JSON bodies posted to response URLs (only to ``path`` if given), oldest first."""
        return [
            copy.deepcopy(r.args)
            for r in self.calls("response_url")
            if r.status == 200 and (path is None or r.path == path)
        ]

    # -- channels and messages ----------------------------------------------------------------

    def add_channel(self, channel: str) -> None:
        with self._lock:
            self.channels.add(channel)

    def set_channel(self, channel: str, *, private: bool = False, member: bool = True) -> None:
        """Add ``channel`` with what ``conversations.info`` says of it."""
        with self._lock:
            self.channels.add(channel)
            self._channel_info[channel] = {"is_private": private, "is_member": member}

    def remove_channel(self, channel: str) -> None:
        with self._lock:
            self.channels.discard(channel)

    def messages(self, channel: str) -> list[Message]:
        with self._lock:
            return copy.deepcopy(self._messages.get(channel, []))

    def all_messages(self) -> list[Message]:
        with self._lock:
            return [copy.deepcopy(m) for msgs in self._messages.values() for m in msgs]

    def message(self, channel: str, ts: str) -> Message | None:
        with self._lock:
            m = self._find(channel, ts)
            return copy.deepcopy(m) if m else None

    def replies(self, channel: str, ts: str) -> list[Message]:
        m = self.message(channel, ts)
        return m.replies if m else []

    def _find(self, channel: str, ts: str) -> Message | None:
        for m in self._messages.get(channel, []):
            if m.ts == ts:
                return m
            for r in m.replies:
                if r.ts == ts:
                    return r
        return None

    def _next_ts(self) -> str:
        self._seq += 1
        micros = self._seq * 100
        return f"{1_700_000_000 + micros // 1_000_000}.{micros % 1_000_000:06d}"

    # -- requests ------------------------------------------------------------------------------

    @property
    def requests(self) -> list[Request]:
        with self._lock:
            return list(self._requests)

    def calls(self, method: str) -> list[Request]:
        return [r for r in self.requests if r.method == method]

    def clear_requests(self) -> None:
        with self._lock:
            self._requests.clear()

    def wait_for(self, predicate: Callable[[SlackServer], Any], timeout: float = 5.0) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            value = predicate(self)
            if value:
                return value
            if time.monotonic() > deadline:
                raise TimeoutError(f"condition not met within {timeout}s")
            time.sleep(0.02)

    # -- the Slack behaviour ---------------------------------------------------------------------

    def _api(self, method: str, args: dict[str, Any], token: str | None) -> dict[str, Any]:
        if not token:
            return {"ok": False, "error": "not_authed"}
        if token != self.token:
            return {"ok": False, "error": "invalid_auth"}
        with self._lock:
            if method == "auth.test":
                return {
                    "ok": True,
                    "url": "https://watcher-test.slack.com/",
                    "team": "Watcher Test",
                    "user": "watcher",
                    "team_id": "T0TEST",
                    "user_id": "U0BOT",
                    "bot_id": "B0BOT",
                }
            if method == "chat.postMessage":
                return self._post(args)
            if method == "chat.update":
                return self._update(args)
            if method == "chat.postEphemeral":
                return self._post_ephemeral(args)
            if method == "conversations.history":
                return self._history(args)
            if method == "conversations.info":
                if "channels:read" in self._revoked:
                    return {
                        "ok": False,
                        "error": "missing_scope",
                        "needed": "channels:read",
                        "provided": "chat:write,chat:write.public,commands",
                    }
                channel = str(args.get("channel") or "")
                info = self._channel_info.get(channel, {"is_private": False, "is_member": True})
                if channel not in self.channels or (info["is_private"] and not info["is_member"]):
                    return {"ok": False, "error": "channel_not_found"}
                return {
                    "ok": True,
                    "channel": {"id": channel, "name": channel.lower(), "is_archived": False, **info},
                }
            if method == "usergroups.users.list":
                if "usergroups:read" in self._revoked:
                    return {
                        "ok": False,
                        "error": "missing_scope",
                        "needed": "usergroups:read",
                        "provided": "chat:write,chat:write.public,commands",
                    }
                group = str(args.get("usergroup") or "")
                if group not in self._usergroups:
                    return {"ok": False, "error": "no_such_subteam"}
                return {"ok": True, "users": list(self._usergroups[group])}
        return {"ok": False, "error": "unknown_method"}

    def _history(self, args: dict[str, Any]) -> dict[str, Any]:
        if "channels:history" in self._revoked:
            return {"ok": False, "error": "missing_scope", "needed": "channels:history"}
        channel = str(args.get("channel") or "")
        if channel not in self.channels:
            return {"ok": False, "error": "channel_not_found"}
        try:
            oldest = float(args.get("oldest") or 0)
            latest = float(args.get("latest") or 0) or float("inf")
            limit = max(1, min(int(args.get("limit") or 100), 999))
            start = int(args.get("cursor") or 0)
        except (TypeError, ValueError):
            return {"ok": False, "error": "invalid_arguments"}
        meta = str(args.get("include_all_metadata") or "").lower() in ("1", "true")
        found = [m for m in reversed(self._messages.get(channel, [])) if oldest < float(m.ts) < latest]
        page = found[start : start + limit]
        more = start + limit < len(found)
        return {
            "ok": True,
            "messages": [m.as_slack(metadata=meta) for m in page],
            "has_more": more,
            "response_metadata": {"next_cursor": str(start + limit) if more else ""},
        }

    def _post_ephemeral(self, args: dict[str, Any]) -> dict[str, Any]:
        channel = str(args.get("channel") or "")
        if channel not in self.channels:
            return {"ok": False, "error": "channel_not_found"}
        if not args.get("user"):
            return {"ok": False, "error": "user_not_in_channel"}
        problem = _check_content(args)
        if problem:
            return {"ok": False, "error": problem}
        ts = self._next_ts()
        self._ephemerals.append({**args, "message_ts": ts})
        return {"ok": True, "message_ts": ts}

    def _post(self, args: dict[str, Any]) -> dict[str, Any]:
        channel = str(args.get("channel") or "")
        if channel not in self.channels:
            return {"ok": False, "error": "channel_not_found"}
        problem = _check_content(args)
        if problem:
            return {"ok": False, "error": problem}
        thread_ts = args.get("thread_ts")
        parent = None
        if thread_ts:
            parent = self._find(channel, str(thread_ts))
            if parent is None:
                return {"ok": False, "error": "thread_not_found"}
            if parent.thread_ts:  # a reply to a reply goes into the same thread
                parent = self._find(channel, parent.thread_ts)
        msg = Message(
            channel=channel,
            ts=self._next_ts(),
            text=str(args.get("text") or ""),
            blocks=list(args.get("blocks") or []),
            thread_ts=parent.ts if parent else None,
            args=dict(args),
            metadata=args.get("metadata") if isinstance(args.get("metadata"), dict) else None,
        )
        if parent is not None:
            parent.replies.append(msg)
        else:
            self._messages.setdefault(channel, []).append(msg)
        return {"ok": True, "channel": channel, "ts": msg.ts, "message": msg.as_slack()}

    def _update(self, args: dict[str, Any]) -> dict[str, Any]:
        channel = str(args.get("channel") or "")
        if channel not in self.channels:
            return {"ok": False, "error": "channel_not_found"}
        msg = self._find(channel, str(args.get("ts") or ""))
        if msg is None:
            return {"ok": False, "error": "message_not_found"}
        problem = _check_content(args)
        if problem:
            return {"ok": False, "error": problem}
        msg.edits.append({"text": msg.text, "blocks": msg.blocks, "replaced_at": time.time()})
        if "text" in args:
            msg.text = str(args.get("text") or "")
        if "blocks" in args:
            msg.blocks = list(args.get("blocks") or [])
        msg.args = {**msg.args, **args}
        return {"ok": True, "channel": channel, "ts": msg.ts, "text": msg.text, "message": msg.as_slack()}

    def _webhook(self, path: str, args: dict[str, Any]) -> tuple[int, str]:
        if path != WEBHOOK_PATH:
            return 404, "no_service"
        if not args.get("text") and not args.get("blocks"):
            return 400, "no_text"
        problem = _check_content(args)
        if problem:
            return 400, "invalid_blocks" if "blocks" in problem else problem
        with self._lock:
            msg = Message(
                channel=self.webhook_channel,
                ts=self._next_ts(),
                text=str(args.get("text") or ""),
                blocks=list(args.get("blocks") or []),
                via="webhook",
                args=dict(args),
            )
            self._messages.setdefault(self.webhook_channel, []).append(msg)
        return 200, "ok"

    def _record(self, req: Request) -> None:
        with self._lock:
            self._requests.append(req)


def _check_content(args: dict[str, Any]) -> str | None:
    """The Slack error for a message that breaks its limits, or None."""
    text = args.get("text")
    blocks = args.get("blocks")
    if not text and not blocks:
        return "no_text"
    if text and len(str(text)) > TEXT_LIMIT:
        return "msg_too_long"
    if blocks is None:
        return None
    if not isinstance(blocks, list) or not all(isinstance(b, dict) for b in blocks):
        return "invalid_blocks_format"
    if len(blocks) > MAX_BLOCKS:
        return "invalid_blocks"
    for b in blocks:
        if not _block_ok(b):
            return "invalid_blocks"
    return None


def _text_ok(obj: Any, limit: int, kinds: tuple[str, ...] = ("plain_text", "mrkdwn")) -> bool:
    return (
        isinstance(obj, dict)
        and obj.get("type") in kinds
        and isinstance(obj.get("text"), str)
        and 0 < len(obj["text"]) <= limit
    )


def _block_ok(b: dict[str, Any]) -> bool:
    if len(str(b.get("block_id", ""))) > 255:
        return False
    t = b.get("type")
    if t == "header":
        return _text_ok(b.get("text"), HEADER_LIMIT, ("plain_text",))
    if t == "section":
        if "text" not in b and "fields" not in b:
            return False
        if "text" in b and not _text_ok(b["text"], SECTION_LIMIT):
            return False
        fields = b.get("fields", [])
        return len(fields) <= 10 and all(_text_ok(f, FIELD_LIMIT) for f in fields)
    if t == "context":
        els = b.get("elements") or []
        return 0 < len(els) <= 10 and all(_text_ok(e, FIELD_LIMIT) for e in els if "text" in e)
    if t == "actions":
        els = b.get("elements") or []
        if not 0 < len(els) <= 25:
            return False
        ids = [e.get("action_id") for e in els]
        if len(set(ids)) != len(ids):
            return False
        for e in els:
            if len(str(e.get("action_id", ""))) > 255 or len(str(e.get("value", ""))) > 2000:
                return False
            if e.get("type") == "button" and not _text_ok(e.get("text"), 75, ("plain_text",)):
                return False
        return True
    return t in ("divider", "image", "rich_text", "input", "file", "video")


def _parse_body(raw: bytes, content_type: str) -> dict[str, Any]:
    ctype = content_type.split(";", 1)[0].strip().lower()
    if not raw:
        return {}
    if ctype == "application/json":
        data = json.loads(raw.decode("utf-8"))
        if not isinstance(data, dict):
            raise ValueError("JSON body is not an object")
        return data
    args: dict[str, Any] = {
        k: v[-1] for k, v in parse_qs(raw.decode("utf-8"), keep_blank_values=True).items()
    }
    for key in ("blocks", "attachments", "metadata"):  # form posts carry these as JSON strings
        if isinstance(args.get(key), str):
            with contextlib.suppress(ValueError):
                args[key] = json.loads(args[key])
    return args


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True


def _handler(server: SlackServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):  # keep test output quiet
            pass

        def do_GET(self):
            self._handle()

        def do_POST(self):
            self._handle()

        def _handle(self):
            path, _, query = self.path.partition("?")
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            if path.startswith("/api/"):
                method = path[len("/api/") :].strip("/")
            elif path.startswith("/services/"):
                method = "webhook"
            elif path.startswith(("/commands/", "/actions/")):
                method = "response_url"
            else:
                method = "unknown"
            req = Request(
                method=method,
                path=path,
                headers={k.lower(): v for k, v in self.headers.items()},
                raw=raw,
                args={},
                at=time.time(),
            )
            try:
                req.args = _parse_body(raw, self.headers.get("Content-Type", ""))
            except (ValueError, UnicodeDecodeError):
                req.args = {}
                bad = True
            else:
                bad = False
            if query and method != "webhook":
                for k, v in parse_qs(query).items():
                    req.args.setdefault(k, v[-1])
            server._record(req)

            mode = server._mode
            if mode == "reset":
                return self._reset()
            if mode == "hang":
                server._unhang.wait(timeout=60)
                self.close_connection = True
                return None

            failure = server._take_failure(method)
            if failure is not None:
                req.failed = True
                return self._fail(req, failure)
            delay = server._delay(method)
            if delay:
                time.sleep(delay)
            if method == "response_url":
                ok = not bad and bool(req.args.get("text") or req.args.get("blocks"))
                return self._answer(req, 200, "ok") if ok else self._answer(req, 400, "invalid_payload")
            if method == "webhook":
                status, text = server._webhook(path, req.args) if not bad else (400, "invalid_payload")
                return self._answer(req, status, text)
            if method == "unknown":
                return self._answer(req, 404, "not found")
            if bad:
                return self._answer(req, 200, {"ok": False, "error": "invalid_form_data"})
            token = None
            auth = self.headers.get("Authorization", "")
            if auth.lower().startswith("bearer "):
                token = auth[7:].strip()
            token = token or req.args.pop("token", None)
            answer = server._api(method, req.args, token)
            if server._take_lose(method):
                req.response = answer  # done, but the client never hears it
                self.close_connection = True
                return None
            return self._answer(req, 200, answer)

        def _fail(self, req: Request, f: _Failure):
            if f.delay:
                time.sleep(f.delay)
            if f.disconnect:
                self.close_connection = True
                return None
            webhook = req.method == "webhook"
            status = f.status if f.status is not None else (400 if webhook else 200)
            body = f.body
            if body is None:
                if status == 429:
                    body = "rate_limited" if webhook else {"ok": False, "error": f.error or "ratelimited"}
                elif f.error:
                    body = f.error if webhook else {"ok": False, "error": f.error}
                elif status >= 500:
                    body = _HTML_500
                else:
                    body = "invalid_payload" if webhook else {"ok": False, "error": "invalid_request"}
            elif f.status is None and not f.error and not webhook:
                status = 200
            return self._answer(req, status, body, f.headers)

        def _reset(self):
            """Drop the connection with a TCP RST: the peer reads ECONNRESET."""
            self.close_connection = True
            try:
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                self.connection.close()
            except OSError:
                pass

        def _answer(self, req: Request, status: int, body: Any, headers: dict[str, str] | None = None):
            if isinstance(body, dict):
                data = json.dumps(body).encode()
                ctype = "application/json; charset=utf-8"
            elif isinstance(body, bytes):
                data = body
                ctype = "text/html; charset=utf-8" if body.lstrip().startswith(b"<") else "text/plain"
            else:
                data = str(body).encode()
                ctype = "text/plain; charset=utf-8"
            req.status, req.response, req.answered_at = status, body, time.time()
            try:
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.send_header("Connection", "close")
                self.end_headers()
                self.wfile.write(data)
            except OSError:
                pass
            self.close_connection = True

    return Handler
