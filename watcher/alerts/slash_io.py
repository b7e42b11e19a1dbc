"""``/watcher`` on the wire: what Slack sends, what we answer, where answers may go, who may do what.

Apart from the commands themselves (:mod:`watcher.alerts.commands`): the web app
and Socket Mode both build a :class:`CommandRequest` and send back a
:class:`Reply`; a ``response_url`` is only posted to when
:func:`response_url_allowed` says so (``https://hooks.slack.com/`` or the origin
of ``slack.base_url``); :class:`Permissions` decides who may silence alerts
(``slack.admins`` or the members of ``slack.admin_usergroup``, looked up with the
bot token and cached for :data:`ADMIN_CACHE_TTL` seconds).
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from watcher.alerts.slack import sdk_timeout
from watcher.alerts.slack_render import escape_mrkdwn, split_sections, truncate
from watcher.i18n import Said

log = logging.getLogger("watcher.alerts.commands")

ADMIN_CACHE_TTL = 300.0
"""Seconds a lookup of the admin user group's members is reused."""
RESPONSE_URL_ORIGINS: tuple[str, ...] = ("https://hooks.slack.com",)
"""Where a ``response_url`` may point, besides the origin of ``slack.base_url``."""
TEXT_LIMIT = 3000
USER_ID = re.compile(r"[UW][A-Z0-9]{6,20}")  # as slack_render.who: a mention


# -- what Slack sends, what we answer ---------------------------------------------------------


def _field(data: Mapping[str, Any], key: str, limit: int = 200) -> str:
    value = data.get(key)
    return value.strip()[:limit] if isinstance(value, str) else ""


def _unescape(text: str) -> str:
    """Slack sends ``&``, ``<`` and ``>`` in command text as entities; we store what the user typed."""
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


@dataclass(frozen=True, slots=True)
class CommandRequest:
    """One ``/watcher`` invocation: the fields of Slack's form body (HTTP) or envelope payload."""

    text: str = ""
    user_id: str = ""
    user_name: str = ""
    channel_id: str = ""
    channel_name: str = ""
    team_id: str = ""
    command: str = "/watcher"
    response_url: str | None = None

    @classmethod
    def from_payload(cls, data: Mapping[str, Any]) -> CommandRequest:
        return cls(
            text=_unescape(_field(data, "text", 2000)),
            user_id=_field(data, "user_id", 40),
            user_name=_field(data, "user_name", 80),
            channel_id=_field(data, "channel_id", 40),
            channel_name=_field(data, "channel_name", 120),
            team_id=_field(data, "team_id", 40),
            command=_field(data, "command", 40) or "/watcher",
            response_url=_field(data, "response_url", 2000) or None,
        )

    @property
    def who(self) -> str:
        """What the audit log and acknowledgements record: the Slack user id (shown as a mention)."""
        if USER_ID.fullmatch(self.user_id):
            return self.user_id
        return self.user_name or "someone in Slack"


@dataclass(frozen=True, slots=True)
class Reply:
    text: str
    in_channel: bool = False
    """Shown to the whole channel (a change others should know of); otherwise only to the caller."""
    interim: bool = False
    """"Working on it": the real answer follows through response_url."""

    def payload(self) -> dict[str, Any]:
        """The JSON Slack expects as the HTTP answer, the Socket Mode ack payload or a response_url post."""
        body: dict[str, Any] = {
            "response_type": "in_channel" if self.in_channel else "ephemeral",
            "text": truncate(self.text, TEXT_LIMIT),
        }
        if len(self.text) > TEXT_LIMIT:  # long answers (many vendors) as sections of ≤ 3000 each
            body["blocks"] = [
                {"type": "section", "text": {"type": "mrkdwn", "text": chunk}}
                for chunk in split_sections(self.text)[:50]
            ]
        return body


class CommandError(Exception):
    """A command the user got wrong: the message tells them how to get it right."""


# -- response_url ------------------------------------------------------------------------------


def _origin(url: str) -> tuple[str, str, int] | None:
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https") or not parts.hostname or parts.username or parts.password:
        return None
    return scheme, parts.hostname.lower(), port or (443 if scheme == "https" else 80)


def response_url_allowed(url: str | None, base_url: str | None = None) -> bool:
    """True for ``https://hooks.slack.com/…`` and for URLs on the origin of ``base_url`` (slack.base_url)."""
    if not url or not isinstance(url, str) or len(url) > 2000:
        return False
    got = _origin(url)
    if got is None:
        return False
    allowed = {_origin(o + "/") for o in RESPONSE_URL_ORIGINS}
    if base_url:
        allowed.add(_origin(base_url))
    return got in allowed


def post_response(url: str | None, reply: Reply, *, base_url: str | None = None, timeout: float = 10) -> bool:
    """POST the reply to a command's response_url; False (and logged) when refused or failed. Blocking."""
    if url is None or not response_url_allowed(url, base_url):
        log.warning("Slack command: refusing to post to a response_url outside Slack (%.60s)", url or "")
        return False
    import httpx

    try:
        with httpx.Client(timeout=timeout, follow_redirects=False) as client:
            r = client.post(url, json=reply.payload())
    except httpx.HTTPError as e:
        log.warning("Slack command: the answer could not be sent to response_url (%s)", type(e).__name__)
        return False
    if r.status_code != 200:
        log.warning("Slack command: response_url answered HTTP %s (%.80s)", r.status_code, r.text)
        return False
    return True


# -- permissions ----------------------------------------------------------------------------------


class Permissions:
    """Who may mute, unmute and unsubscribe: ``slack.admins`` or members of ``slack.admin_usergroup``."""

    def __init__(
        self,
        admins: list[str] | tuple[str, ...] = (),
        usergroup: str | None = None,
        *,
        token: str | None = None,
        base_url: str = "https://slack.com/api/",
        timeout: float = 10,
        ttl: float = ADMIN_CACHE_TTL,
        monotonic: Callable[[], float] = time.monotonic,
    ):
        self.admins = frozenset(a.strip() for a in admins if a.strip())
        self.usergroup = (usergroup or "").strip() or None
        self.token = token
        self.base_url = base_url
        self.timeout = timeout
        self.ttl = ttl
        self.monotonic = monotonic
        self._lock = threading.Lock()
        self._members: frozenset[str] | None = None
        self._fetched_at = 0.0
        self.lookups = 0

    def __repr__(self) -> str:  # never the token
        return f"Permissions(admins={len(self.admins)}, usergroup={self.usergroup!r})"

    @classmethod
    def from_settings(cls, slack, *, token: str | None = None, base_url: str | None = None) -> Permissions:
        """From :class:`~watcher.config.SlackSettings`; ``token``/``base_url`` override theirs."""
        from watcher.config import read_secret

        return cls(
            slack.admins,
            slack.admin_usergroup,
            token=token or read_secret(slack.token, slack.token_file, "slack.token"),
            base_url=base_url or slack.base_url,
            timeout=slack.timeout,
        )

    @property
    def configured(self) -> bool:
        return bool(self.admins or self.usergroup)

    def decide_now(self, user_id: str) -> tuple[bool, str] | None:
        """The decision when it needs no network call, else None (ask :meth:`check` in a thread)."""
        if not self.configured:
            return False, Said("slash.no_admins")
        if user_id in self.admins:
            return True, ""
        if not self.usergroup:
            return False, self._refusal()
        with self._lock:
            fresh = self._members is not None and self.monotonic() - self._fetched_at < self.ttl
            members = self._members
        if fresh and members is not None:
            return (True, "") if user_id in members else (False, self._refusal())
        return None

    def check(self, user_id: str) -> tuple[bool, str]:
        """May this user change what others hear? Blocking: may call ``usergroups.users.list``."""
        decided = self.decide_now(user_id)
        if decided is not None:
            return decided
        try:
            members = self._fetch()
        except _LookupFailed as e:
            log.warning("Slack command: admin check failed: %s", e)
            return False, Said("slash.admin_check_failed", error=escape_mrkdwn(str(e)))
        return (True, "") if user_id in members else (False, self._refusal())

    def _refusal(self) -> str:
        """A :class:`~watcher.i18n.Said`: English as it reads, said in the team's language by the commands."""
        return Said("slash.refusal_group" if self.usergroup else "slash.refusal")

    def _fetch(self) -> frozenset[str]:
        if not self.token:
            raise _LookupFailed("no bot token: set WATCHER_SLACK__TOKEN")
        if not self.usergroup:
            raise _LookupFailed("no admin user group: set slack.admin_usergroup")
        from slack_sdk import WebClient
        from slack_sdk.errors import SlackApiError

        client = WebClient(
            token=self.token, base_url=self.base_url, timeout=sdk_timeout(self.timeout), retry_handlers=[]
        )
        self.lookups += 1
        try:
            resp = client.usergroups_users_list(usergroup=self.usergroup)
        except SlackApiError as e:
            data = e.response.data if isinstance(getattr(e.response, "data", None), dict) else {}
            code = str(data.get("error") or f"HTTP {e.response.status_code}")[:60]
            hint = ": add the usergroups:read scope and reinstall the app" if code == "missing_scope" else ""
            raise _LookupFailed(f"{code}{hint}") from None
        except Exception as e:  # network trouble: refuse rather than guess
            raise _LookupFailed(f"Slack did not answer: {type(e).__name__}") from None
        users = resp.get("users")
        members = (
            frozenset(u for u in users if isinstance(u, str)) if isinstance(users, list) else frozenset()
        )
        with self._lock:
            self._members, self._fetched_at = members, self.monotonic()
        return members


class _LookupFailed(Exception):
    pass
