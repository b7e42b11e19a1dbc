"""``/watcher``: the Slack slash command, wherever it arrives from (HTTP or Socket Mode).

The web app (``POST /slack/commands``, signature checked) and the Socket Mode
bridge (``slash_commands`` envelopes) both turn what Slack sent into a
:class:`CommandRequest` and ask :meth:`SlashCommands.answer` for the reply, so
the two paths cannot drift apart.

Commands (``/watcher help`` shows them to users)::

    status                                   every vendor's state, open incidents, who acknowledged
    subscriptions                            this channel's subscriptions and their recent changes
    subscribe VENDOR... [--kinds K1,K2]      this channel also gets these vendors' alerts
    unsubscribe VENDOR...|all                (admins) stop that
    ack INCIDENT [reason]                    acknowledge: reminders and escalation stop
    mute VENDOR DURATION [reason]            (admins) no alerts for the vendor for a while
    unmute VENDOR                            (admins) end a mute now
    oncall                                   who is on call now, and who is next
    help

Who may do what: reading, ``subscribe`` and ``ack`` are open to anyone who can
run the command (adding alerts to a channel fails safe: more noise, which anyone
can see and an admin can undo; the Acknowledge button is open too). ``mute``,
``unmute`` and ``unsubscribe`` silence alerts, so they need the user in
``slack.admins`` or in the user group ``slack.admin_usergroup`` (looked up with
``usergroups.users.list`` and the bot token, cached for :data:`ADMIN_CACHE_TTL`
seconds). With neither configured those commands are refused, and the answer
says what to configure: nobody can silence alerts from Slack by default.

The 3-second rule: Slack shows the user an error when the answer takes longer.
:meth:`SlashCommands.answer` waits at most :data:`INLINE_BUDGET` seconds for the
work; if it is not done by then (the user-group lookup is a network call) it
answers "working on it" at once and the result follows through the command's
``response_url``. A ``response_url`` is only ever posted to when it points at
``https://hooks.slack.com/`` or at the origin of ``slack.base_url`` (the same
Slack the bot talks to, a local stand-in in tests): a request cannot make
watcher POST to an address of its choosing.

Every change (subscribe, unsubscribe, ack, mute, unmute) goes to the audit table
with who and when; answers are Slack mrkdwn, with every vendor string and every
word the user typed escaped.
"""

from __future__ import annotations

import asyncio
import logging
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from watcher import i18n
from watcher.alerts.slack_render import escape_mrkdwn, truncate
from watcher.alerts.slack_render import who as _who  # a person: a mention for a user id, else escaped text
from watcher.alerts.slash_io import (
    USER_ID,
    CommandError,
    CommandRequest,
    Permissions,
    Reply,
    post_response,
    response_url_allowed,
)

log = logging.getLogger("watcher.alerts.commands")

INLINE_BUDGET = 2.0
"""Seconds the work may take before Slack gets "working on it" and the answer goes to response_url."""
MAX_MUTE = timedelta(days=30)
ADMIN_COMMANDS = frozenset({"mute", "unmute", "unsubscribe"})
ALL = ("*", "all")

_KINDS = ("outage", "degradation", "api_change", "hallucination_spike", "maintenance")
_CHANNEL_ID = re.compile(r"[CGD][A-Z0-9]{2,30}")
_STATE_EMOJI = {
    "operational": "🟢",
    "degraded": "🟠",
    "outage": "🔴",
    "maintenance": "🛠️",
    "unknown": "⚪",
}



def _code(text: str) -> str:
    """What the user typed, echoed back as inert inline code (no mention, no formatting, 100 chars)."""
    return "`" + escape_mrkdwn(text.replace("`", "'"))[:100] + "`"


# the help text and every reply: [slash] in watcher/locales/<lang>/messages.toml


def parse_duration(text: str) -> float:
    """'90s', '30m', '2h', '1d', '1h30m' → seconds."""
    parts = re.findall(r"(\d+(?:\.\d+)?)\s*([smhd])", text.strip().lower())
    if not parts or "".join(n + u for n, u in parts) != re.sub(r"\s+", "", text.strip().lower()):
        raise ValueError(f"cannot read duration {text!r}: use e.g. 30m, 2h, 1d or 1h30m")
    return sum(float(n) * {"s": 1, "m": 60, "h": 3600, "d": 86400}[u] for n, u in parts)


# -- the commands ----------------------------------------------------------------------------------


@dataclass(slots=True)
class Parsed:
    name: str
    args: list[str] = field(default_factory=list)
    kinds: list[str] | None = None


ALIASES = {
    "": "help",
    "?": "help",
    "subs": "subscriptions",
    "list": "subscriptions",
    "sub": "subscribe",
    "unsub": "unsubscribe",
    "acknowledge": "ack",
    "on-call": "oncall",
    "who": "oncall",
}
COMMANDS = (
    "help",
    "status",
    "subscriptions",
    "subscribe",
    "unsubscribe",
    "ack",
    "mute",
    "unmute",
    "oncall",
)


def parse(text: str, locale: str | None = None) -> Parsed:
    """``subscribe openai --kinds outage,degradation`` → Parsed("subscribe", ["openai"], ["outage", …]).

    ``locale``: the language of the error (the team's ``alerts.locale``)."""
    words = text.split()
    name = words[0].lower() if words else ""
    name = ALIASES.get(name, name)
    if name not in COMMANDS:
        unknown = i18n.t(locale, "slash.unknown_command", word=_code(words[0]))
        raise CommandError(f"{unknown}\n\n{i18n.t(locale, 'slash.help')}")
    args: list[str] = []
    kinds: list[str] | None = None
    rest = words[1:]
    i = 0
    while i < len(rest):
        w = rest[i]
        low = w.lower()
        if name == "subscribe" and (low in ("--kinds", "--kind") or low.startswith(("--kinds=", "--kind="))):
            if "=" in w:
                value = w.split("=", 1)[1]
            else:
                i += 1
                if i >= len(rest):
                    raise CommandError(i18n.t(locale, "slash.kinds_needs_list"))
                value = rest[i]
            kinds = (kinds or []) + [k for k in value.lower().split(",") if k]
            if not kinds:
                raise CommandError(i18n.t(locale, "slash.kinds_needs_list"))
        else:
            args.append(w)
        i += 1
    return Parsed(name, args, kinds)


class SlashCommands:
    """Runs ``/watcher`` commands against the alert engine and its store (on the event loop)."""

    def __init__(
        self,
        engine,
        *,
        permissions: Permissions | None = None,
        budget: float = INLINE_BUDGET,
        base_url: str | None = None,
        bot_token: str | None = None,
    ):
        """``base_url`` and ``bot_token`` default to the engine's ``slack`` settings."""
        self.engine = engine
        slack = engine.settings.slack
        self.permissions = permissions or Permissions.from_settings(slack, token=bot_token, base_url=base_url)
        self.budget = budget
        self.base_url = base_url or slack.base_url
        self.timeout = slack.timeout
        self._background: set[asyncio.Task] = set()

    def __repr__(self) -> str:
        return f"SlashCommands({self.permissions!r})"

    @property
    def store(self):
        return self.engine.store

    # -- words: the team's language and time zone, as its alerts ---------------------------------

    @property
    def locale(self) -> str:
        return self.engine.settings.alerts.locale

    def _t(self, key: str, **values: object) -> str:
        """A reply in ``alerts.locale``: the people typing ``/watcher`` read their alerts in it too."""
        return i18n.t(self.locale, f"slash.{key}", **values)

    def _kinds(self, kinds: list[str] | tuple[str, ...]) -> str:
        """``all kinds``, or the kinds in the team's words (``panne, dégradation``)."""
        if set(kinds) >= set(_KINDS):
            return self._t("all_kinds")
        if i18n.lang(self.locale) == i18n.DEFAULT:
            return ", ".join(kinds)
        return ", ".join(i18n.t(self.locale, f"kind_lc.{k}") for k in kinds)

    def _at(self, dt: datetime | None) -> str:
        """A moment as the alerts write it: the team's zone and language (``Oct 7, 2026, 15:00 CEST``)."""
        return i18n.format_time(dt, self.locale, self.engine.settings.alerts.timezone) if dt else "?"

    def now(self) -> datetime:
        return self.engine.clock()

    # -- answering within Slack's limit -----------------------------------------------------

    async def answer(self, req: CommandRequest) -> Reply:
        """The reply for Slack right now: the result if ready within the budget, else "working on it".

        In the second case the command goes on and its result is posted to the
        request's response_url when it is done.
        """
        task = asyncio.ensure_future(self.run(req))
        done, _ = await asyncio.wait({task}, timeout=self.budget)
        if task in done:
            return task.result()
        later = asyncio.ensure_future(self._finish_later(task, req))
        self._background.add(later)
        later.add_done_callback(self._background.discard)
        return Reply(self._t("working", command=_code(req.command + " " + req.text)), interim=True)

    async def _finish_later(self, task: asyncio.Future, req: CommandRequest) -> None:
        reply = await task
        await asyncio.to_thread(self.post_response, req.response_url, reply)

    def post_response(self, url: str | None, reply: Reply) -> bool:
        return post_response(url, reply, base_url=self.base_url, timeout=self.timeout)

    async def run(self, req: CommandRequest) -> Reply:
        """Parse, check permission, apply: the full answer, however long it takes. Never raises."""
        try:
            cmd = parse(req.text, self.locale)
            if cmd.name in ADMIN_COMMANDS:
                decided = self.permissions.decide_now(req.user_id)
                if decided is None:
                    decided = await asyncio.to_thread(self.permissions.check, req.user_id)
                ok, why = decided
                if not ok:
                    log.warning("Slack command refused: %s may not %s", req.who, cmd.name)
                    return Reply(i18n.say(why, self.locale).replace("{what}", self._t(f"verb.{cmd.name}")))
            return self.apply(cmd, req)
        except CommandError as e:
            return Reply(str(e))
        except Exception:
            log.exception("Slack command %r failed", req.text[:100])
            return Reply(self._t("failed"))

    def apply(self, cmd: Parsed, req: CommandRequest) -> Reply:
        handler = getattr(self, "cmd_" + cmd.name)
        reply = handler(cmd, req)
        if reply.in_channel:
            log.info("Slack: %s by %s in %s", cmd.name, req.who, req.channel_id)
        return reply

    # -- vendors and kinds ---------------------------------------------------------------------

    def _vendor_ids(self) -> dict[str, str]:
        names: dict[str, str] = {}
        for v in self.engine.vendor_list:
            for key in (v.id, v.name, v.name.replace(" ", "")):
                names.setdefault(key.lower(), v.id)
        return names

    def _watched(self) -> str:
        return ", ".join(_code(v.id) for v in self.engine.vendor_list) or self._t("none")

    def _vendor(self, word: str) -> str:
        found = self._vendor_ids().get(word.lower())
        if found is None:
            raise CommandError(self._t("unknown_vendor", word=_code(word), watched=self._watched()))
        return found

    def _name(self, vendor_id: str) -> str:
        if vendor_id == "*":
            return self._t("every_vendor")
        v = self.engine.vendors.get(vendor_id)
        return escape_mrkdwn(v.name if v else vendor_id)

    # -- read ----------------------------------------------------------------------------------

    def cmd_help(self, cmd: Parsed, req: CommandRequest) -> Reply:
        return Reply(self._t("help"))

    def cmd_status(self, cmd: Parsed, req: CommandRequest) -> Reply:
        from watcher.incidents.wording import say_title
        from watcher.status import all_statuses

        now = self.now()
        loc = self.locale
        lines = [self._t("vendors")]
        for s in all_statuses(self.store, self.engine.vendor_list, now):
            emoji = _STATE_EMOJI.get(s.state.value, "⚪")
            state = (
                i18n.t(loc, f"state.{s.state.value}")
                if i18n.has(loc, f"state.{s.state.value}")
                else s.state.value
            )
            lines.append(
                f"{emoji} *{escape_mrkdwn(s.vendor.name)}*{' :' if i18n.lang(loc) == 'fr' else ':'} "
                f"{escape_mrkdwn(state)}, {escape_mrkdwn(truncate(s.reason_in(loc), 300))}"
            )
        incidents = self.store.open_incidents()
        lines.append("")
        lines.append(self._t("open_incidents") if incidents else self._t("open_incidents_none"))
        for inc in incidents[:25]:
            ack = self.store.ack(inc.id)
            acked = (
                self._t("acked", who=_who(ack.by), at=self._at(ack.at))
                + (f" ({escape_mrkdwn(truncate(ack.reason, 200))})" if ack.reason else "")
                if ack
                else self._t("not_acked")
            )
            kind = i18n.t(loc, f"kind_lc.{inc.kind.value}")
            lines.append(
                self._t(
                    "incident_line",
                    id=inc.id,
                    vendor=self._name(inc.vendor),
                    kind=escape_mrkdwn(kind),
                    title=escape_mrkdwn(truncate(say_title(inc.title, loc), 200)),
                    since=self._at(inc.started_at or inc.opened_at),
                    acked=acked,
                )
            )
        if len(incidents) > 25:
            lines.append(self._t("more", n=len(incidents) - 25))
        mutes = self.store.active_mutes(now)
        if mutes:
            lines.append("")
            lines.append(self._t("muted"))
            for m in mutes:
                lines.append(
                    self._t("mute_line", vendor=self._name(m.vendor), until=self._at(m.until), who=_who(m.by))
                    + (f" ({escape_mrkdwn(truncate(m.reason, 200))})" if m.reason else "")
                )
        return Reply("\n".join(lines))

    def cmd_subscriptions(self, cmd: Parsed, req: CommandRequest) -> Reply:
        channel = req.channel_id
        subs = self.store.subscriptions(channel)
        lines = [self._t("subs_title", n=len(subs))]
        for s in subs:
            lines.append(
                self._t(
                    "sub_line",
                    vendor=self._name(s.vendor),
                    id=_code(s.vendor),
                    kinds=escape_mrkdwn(self._kinds(s.kinds)),
                    who=_who(s.created_by),
                    at=self._at(s.created_at),
                )
            )
        if not subs:
            lines.append(self._t("subs_none"))
        routes = [r for r in self.engine.settings.routes if channel in r.channel_targets("slack")]
        if routes:
            lines.append("")
            lines.append(self._t("subs_config"))
            for r in routes:
                lines.append(
                    self._t(
                        "subs_route",
                        name=_code(r.name),
                        vendors=escape_mrkdwn(", ".join(r.vendors)),
                        kinds=escape_mrkdwn(", ".join(r.kinds)),
                    )
                )
        changes = self.store.subscription_changes(channel, limit=10)
        if changes:
            lines.append("")
            lines.append(self._t("subs_changes"))
            for c in changes:
                detail = str(c["detail"] or "").split(": ", 1)[-1]
                key = "subs_change_subscribe" if c["what"] == "subscribe" else "subs_change_unsubscribe"
                at = datetime.fromisoformat(c["at"]) if c["at"] else None
                lines.append(self._t(key, at=self._at(at), who=_who(c["who"]), detail=escape_mrkdwn(detail)))
        return Reply("\n".join(lines))

    def cmd_oncall(self, cmd: Parsed, req: CommandRequest) -> Reply:
        from watcher.alerts.oncall import rotation

        oc = self.engine.settings.oncall
        now = self.now()
        people = rotation(oc, now)
        if not people:
            return Reply(self._t("no_rotation"))
        start = datetime.combine(oc.rotation_start, datetime.min.time(), tzinfo=UTC)
        shift = timedelta(days=oc.rotation_days)
        ends = start + shift * (int((now - start) / shift) + 1)

        def person(p) -> str:
            name = escape_mrkdwn(p.name)
            return f"<@{p.slack}> ({name})" if p.slack and USER_ID.fullmatch(p.slack) else f"*{name}*"

        lines = [self._t("oncall_now", person=person(people[0]), until=self._at(ends))]
        if len(people) > 1:
            lines.append(
                self._t(
                    "oncall_next", person=person(people[1]), start=self._at(ends), end=self._at(ends + shift)
                )
            )
            if len(people) > 2:
                lines.append(self._t("oncall_then", people=", ".join(person(p) for p in people[2:])))
        lines.append(
            self._t(
                "oncall_rules",
                remind=i18n.format_duration(oc.remind_after, self.locale),
                escalate=i18n.format_duration(oc.escalate_after, self.locale),
            )
        )
        return Reply("\n".join(lines))

    # -- change ---------------------------------------------------------------------------------

    def _channel(self, req: CommandRequest) -> str:
        channel = req.channel_id
        if not _CHANNEL_ID.fullmatch(channel):
            raise CommandError(self._t("no_channel"))
        if channel.startswith("D"):
            raise CommandError(self._t("per_channel"))
        return channel

    def cmd_subscribe(self, cmd: Parsed, req: CommandRequest) -> Reply:
        channel = self._channel(req)
        if not cmd.args:
            raise CommandError(self._t("subscribe_which", watched=self._watched()))
        vendors = list(dict.fromkeys("*" if w.lower() in ALL else self._vendor(w) for w in cmd.args))
        kinds = list(_KINDS)
        if cmd.kinds is not None:
            if any(k in ALL for k in cmd.kinds):
                kinds = list(_KINDS)
            else:
                bad = [k for k in cmd.kinds if k not in _KINDS]
                if bad:
                    raise CommandError(
                        self._t("unknown_kind", word=_code(bad[0]), kinds=", ".join(_code(k) for k in _KINDS))
                    )
                kinds = list(dict.fromkeys(cmd.kinds))
        now = self.now()
        changed = [v for v in vendors if self.store.subscribe(channel, v, kinds, req.who, now)]
        what = ", ".join(self._name(v) for v in vendors)
        kinds_text = escape_mrkdwn(self._kinds(kinds))
        if not changed:
            return Reply(self._t("already_subscribed", what=what, kinds=kinds_text))
        return Reply(self._t("subscribed", who=_who(req.who), what=what, kinds=kinds_text), in_channel=True)

    def cmd_unsubscribe(self, cmd: Parsed, req: CommandRequest) -> Reply:
        channel = self._channel(req)
        if not cmd.args:
            raise CommandError(self._t("unsubscribe_which"))
        now = self.now()
        if any(w.lower() in ALL for w in cmd.args):
            removed = self.store.unsubscribe(channel, None, req.who, now)
        else:
            mine = {s.vendor for s in self.store.subscriptions(channel)}
            removed = []
            for w in cmd.args:
                vendor = w.lower() if w.lower() in mine else self._vendor_ids().get(w.lower())
                if vendor is None or vendor not in mine:
                    subscribed = ", ".join(_code(v) for v in sorted(mine)) or self._t("nothing")
                    key = "not_subscribed_config" if mine else "not_subscribed"
                    raise CommandError(self._t(key, word=_code(w), subscribed=subscribed))
                removed += self.store.unsubscribe(channel, vendor, req.who, now)
        if not removed:
            return Reply(self._t("nothing_to_remove"))
        what = ", ".join(self._name(v) for v in removed)
        return Reply(self._t("unsubscribed", who=_who(req.who), what=what), in_channel=True)

    def cmd_ack(self, cmd: Parsed, req: CommandRequest) -> Reply:
        if not cmd.args:
            raise CommandError(self._t("ack_which"))
        word = cmd.args[0].lstrip("#")
        if not word.isdigit() or len(word) > 12:
            raise CommandError(self._t("ack_not_number", word=_code(cmd.args[0])))
        reason = " ".join(cmd.args[1:])[:500] or None
        try:
            inc = self.engine.acknowledge(int(word), req.who, reason, via="slack command")
        except (LookupError, ValueError) as e:
            raise CommandError(self._t("ack_failed", error=escape_mrkdwn(str(e)))) from None
        from watcher.incidents.wording import say_title

        return Reply(
            self._t(
                "ack_done",
                id=inc.id,
                vendor=self._name(inc.vendor),
                title=escape_mrkdwn(truncate(say_title(inc.title, self.locale), 200)),
                who=_who(req.who),
                reason=f" ({escape_mrkdwn(reason)})" if reason else "",
            )
        )

    def cmd_mute(self, cmd: Parsed, req: CommandRequest) -> Reply:
        if len(cmd.args) < 2:
            raise CommandError(self._t("mute_usage"))
        vendor = self._vendor(cmd.args[0])
        try:
            seconds = parse_duration(cmd.args[1])
        except ValueError:
            raise CommandError(self._t("mute_duration", word=_code(cmd.args[1]))) from None
        if seconds <= 0 or seconds > MAX_MUTE.total_seconds():
            raise CommandError(self._t("mute_range", days=MAX_MUTE.days))
        reason = " ".join(cmd.args[2:])[:500] or None
        until = self.engine.mute(vendor, seconds, reason, req.who)
        return Reply(
            self._t(
                "mute_done",
                who=_who(req.who),
                vendor=self._name(vendor),
                until=self._at(until),
                reason=f" ({escape_mrkdwn(reason)})" if reason else "",
                id=vendor,
            ),
            in_channel=True,
        )

    def cmd_unmute(self, cmd: Parsed, req: CommandRequest) -> Reply:
        if not cmd.args:
            raise CommandError(self._t("unmute_which"))
        vendor = self._vendor(cmd.args[0])
        if not self.store.end_mutes(vendor, self.now(), req.who):
            return Reply(self._t("unmute_not", vendor=self._name(vendor)))
        return Reply(self._t("unmute_done", who=_who(req.who), vendor=self._name(vendor)), in_channel=True)


__all__ = [
    "CommandError",
    "CommandRequest",
    "Permissions",
    "Reply",
    "SlashCommands",
    "parse",
    "parse_duration",
    "post_response",
    "response_url_allowed",
]
"""The wire types live in :mod:`watcher.alerts.slash_io`; re-exported for the web app and Socket Mode."""
