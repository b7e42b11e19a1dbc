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


def _at(dt: datetime | None) -> str:
    """A time in a command's answer: UTC, to the minute."""
    return f"{dt.astimezone(UTC):%Y-%m-%d %H:%M} UTC" if dt else "?"


def _code(text: str) -> str:
    """What the user typed, echoed back as inert inline code (no mention, no formatting, 100 chars)."""
    return "`" + escape_mrkdwn(text.replace("`", "'"))[:100] + "`"

HELP = """*watcher* tells this workspace when an AI vendor fails. Commands:
• `/watcher status`: every vendor's state, open incidents and who acknowledged them (only you see it)
• `/watcher subscriptions`: what this channel is subscribed to, and recent changes
• `/watcher subscribe openai anthropic [--kinds outage,degradation]`: this channel gets their alerts too (`all` for every vendor)
• `/watcher unsubscribe openai` (or `all`): stop that _(admins)_
• `/watcher ack 12 [reason]`: acknowledge incident #12; reminders and escalation stop
• `/watcher mute openai 2h [reason]`: no alerts for a vendor for a while (30m, 2h, 1d, 1h30m) _(admins)_
• `/watcher unmute openai`: end a mute now _(admins)_
• `/watcher oncall`: who is on call now, and who is next
• `/watcher help`: this list"""


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


def parse(text: str) -> Parsed:
    """``subscribe openai --kinds outage,degradation`` → Parsed("subscribe", ["openai"], ["outage", …])."""
    words = text.split()
    name = words[0].lower() if words else ""
    name = ALIASES.get(name, name)
    if name not in COMMANDS:
        raise CommandError(f"I don't know {_code(words[0])}.\n\n{HELP}")
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
                    raise CommandError("`--kinds` needs a list, e.g. `--kinds outage,degradation`.")
                value = rest[i]
            kinds = (kinds or []) + [k for k in value.lower().split(",") if k]
            if not kinds:
                raise CommandError("`--kinds` needs a list, e.g. `--kinds outage,degradation`.")
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
        return Reply(
            f"⏳ Working on {_code(req.command + ' ' + req.text)}: the answer follows here.", interim=True
        )

    async def _finish_later(self, task: asyncio.Future, req: CommandRequest) -> None:
        reply = await task
        await asyncio.to_thread(self.post_response, req.response_url, reply)

    def post_response(self, url: str | None, reply: Reply) -> bool:
        return post_response(url, reply, base_url=self.base_url, timeout=self.timeout)

    async def run(self, req: CommandRequest) -> Reply:
        """Parse, check permission, apply: the full answer, however long it takes. Never raises."""
        try:
            cmd = parse(req.text)
            if cmd.name in ADMIN_COMMANDS:
                decided = self.permissions.decide_now(req.user_id)
                if decided is None:
                    decided = await asyncio.to_thread(self.permissions.check, req.user_id)
                ok, why = decided
                if not ok:
                    log.warning("Slack command refused: %s may not %s", req.who, cmd.name)
                    return Reply(why.replace("{what}", _VERBS[cmd.name]))
            return self.apply(cmd, req)
        except CommandError as e:
            return Reply(str(e))
        except Exception:
            log.exception("Slack command %r failed", req.text[:100])
            return Reply("Something went wrong running that command; the details are in watcher's log.")

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
        return ", ".join(_code(v.id) for v in self.engine.vendor_list) or "none"

    def _vendor(self, word: str) -> str:
        found = self._vendor_ids().get(word.lower())
        if found is None:
            raise CommandError(f"Unknown vendor {_code(word)}. Watched vendors: {self._watched()}.")
        return found

    def _name(self, vendor_id: str) -> str:
        if vendor_id == "*":
            return "every vendor"
        v = self.engine.vendors.get(vendor_id)
        return escape_mrkdwn(v.name if v else vendor_id)

    # -- read ----------------------------------------------------------------------------------

    def cmd_help(self, cmd: Parsed, req: CommandRequest) -> Reply:
        return Reply(HELP)

    def cmd_status(self, cmd: Parsed, req: CommandRequest) -> Reply:
        from watcher.status import all_statuses

        now = self.now()
        lines = ["*Vendors*"]
        for s in all_statuses(self.store, self.engine.vendor_list, now):
            emoji = _STATE_EMOJI.get(s.state.value, "⚪")
            lines.append(
                f"{emoji} *{escape_mrkdwn(s.vendor.name)}*: {escape_mrkdwn(s.state.value)}, "
                f"{escape_mrkdwn(truncate(s.reason, 300))}"
            )
        incidents = self.store.open_incidents()
        lines.append("")
        lines.append("*Open incidents*" if incidents else "*Open incidents*: none")
        for inc in incidents[:25]:
            ack = self.store.ack(inc.id)
            acked = (
                f"acknowledged by {_who(ack.by)} at {_at(ack.at)}"
                + (f" ({escape_mrkdwn(truncate(ack.reason, 200))})" if ack.reason else "")
                if ack
                else "_not acknowledged_"
            )
            lines.append(
                f"• #{inc.id} *{self._name(inc.vendor)}* {escape_mrkdwn(inc.kind.value)}: "
                f"{escape_mrkdwn(truncate(inc.title, 200))} (since {_at(inc.started_at or inc.opened_at)}); "
                + acked
            )
        if len(incidents) > 25:
            lines.append(f"…and {len(incidents) - 25} more")
        mutes = self.store.active_mutes(now)
        if mutes:
            lines.append("")
            lines.append("*Muted*")
            for m in mutes:
                lines.append(
                    f"• {self._name(m.vendor)} until {_at(m.until)}, by {_who(m.by)}"
                    + (f" ({escape_mrkdwn(truncate(m.reason, 200))})" if m.reason else "")
                )
        return Reply("\n".join(lines))

    def cmd_subscriptions(self, cmd: Parsed, req: CommandRequest) -> Reply:
        channel = req.channel_id
        subs = self.store.subscriptions(channel)
        lines = [f"*This channel's subscriptions* ({len(subs)})"]
        for s in subs:
            kinds = "all kinds" if set(s.kinds) >= set(_KINDS) else ", ".join(s.kinds)
            lines.append(
                f"• {self._name(s.vendor)} ({_code(s.vendor)}): {escape_mrkdwn(kinds)}, "
                f"by {_who(s.created_by)} on {_at(s.created_at)}"
            )
        if not subs:
            lines.append("None. `/watcher subscribe openai` adds one.")
        routes = [r for r in self.engine.settings.routes if channel in r.channel_targets("slack")]
        if routes:
            lines.append("")
            lines.append("*From watcher's config* (change it there)")
            for r in routes:
                lines.append(
                    f"• route {_code(r.name)}: vendors {escape_mrkdwn(', '.join(r.vendors))}, "
                    f"kinds {escape_mrkdwn(', '.join(r.kinds))}"
                )
        changes = self.store.subscription_changes(channel, limit=10)
        if changes:
            lines.append("")
            lines.append("*Recent changes*")
            for c in changes:
                detail = str(c["detail"] or "").split(": ", 1)[-1]
                verb = "subscribed to" if c["what"] == "subscribe" else "unsubscribed from"
                at = datetime.fromisoformat(c["at"]) if c["at"] else None
                lines.append(f"• {_at(at)}: {_who(c['who'])} {verb} {escape_mrkdwn(detail)}")
        return Reply("\n".join(lines))

    def cmd_oncall(self, cmd: Parsed, req: CommandRequest) -> Reply:
        from watcher.alerts.oncall import rotation

        oc = self.engine.settings.oncall
        now = self.now()
        people = rotation(oc, now)
        if not people:
            return Reply("No on-call rotation is configured (`oncall.people` in watcher's config).")
        start = datetime.combine(oc.rotation_start, datetime.min.time(), tzinfo=UTC)
        shift = timedelta(days=oc.rotation_days)
        ends = start + shift * (int((now - start) / shift) + 1)

        def person(p) -> str:
            name = escape_mrkdwn(p.name)
            return f"<@{p.slack}> ({name})" if p.slack and USER_ID.fullmatch(p.slack) else f"*{name}*"

        lines = [f"*On call now:* {person(people[0])}, until {_at(ends)}"]
        if len(people) > 1:
            lines.append(f"*Next:* {person(people[1])}, from {_at(ends)} to {_at(ends + shift)}")
            if len(people) > 2:
                lines.append("*Then:* " + ", ".join(person(p) for p in people[2:]))
        lines.append(
            f"_Unacknowledged alerts are repeated after {_minutes(oc.remind_after)} and go to the next "
            f"person after {_minutes(oc.escalate_after)}._"
        )
        return Reply("\n".join(lines))

    # -- change ---------------------------------------------------------------------------------

    def _channel(self, req: CommandRequest) -> str:
        channel = req.channel_id
        if not _CHANNEL_ID.fullmatch(channel):
            raise CommandError("Slack did not say which channel this is; run the command in a channel.")
        if channel.startswith("D"):
            raise CommandError(
                "Subscriptions are per channel: run the command in the channel that should get the alerts."
            )
        return channel

    def cmd_subscribe(self, cmd: Parsed, req: CommandRequest) -> Reply:
        channel = self._channel(req)
        if not cmd.args:
            raise CommandError(
                f"Which vendors? e.g. `/watcher subscribe openai anthropic --kinds outage,degradation`. "
                f"Watched vendors: {self._watched()} (or `all`)."
            )
        vendors = list(dict.fromkeys("*" if w.lower() in ALL else self._vendor(w) for w in cmd.args))
        kinds = list(_KINDS)
        if cmd.kinds is not None:
            if any(k in ALL for k in cmd.kinds):
                kinds = list(_KINDS)
            else:
                bad = [k for k in cmd.kinds if k not in _KINDS]
                if bad:
                    raise CommandError(
                        f"Unknown kind {_code(bad[0])}. Kinds: " + ", ".join(_code(k) for k in _KINDS) + "."
                    )
                kinds = list(dict.fromkeys(cmd.kinds))
        now = self.now()
        changed = [v for v in vendors if self.store.subscribe(channel, v, kinds, req.who, now)]
        what = ", ".join(self._name(v) for v in vendors)
        kinds_text = "all kinds" if set(kinds) >= set(_KINDS) else ", ".join(kinds)
        if not changed:
            return Reply(f"This channel was already subscribed to {what} ({escape_mrkdwn(kinds_text)}).")
        return Reply(
            f"{_who(req.who)} subscribed this channel to {what} ({escape_mrkdwn(kinds_text)}): their "
            "incidents are posted here with the same message, playbook and buttons as every alert. "
            "In a private channel, `/invite @watcher` first.",
            in_channel=True,
        )

    def cmd_unsubscribe(self, cmd: Parsed, req: CommandRequest) -> Reply:
        channel = self._channel(req)
        if not cmd.args:
            raise CommandError("Which vendors? e.g. `/watcher unsubscribe openai`, or `all`.")
        now = self.now()
        if any(w.lower() in ALL for w in cmd.args):
            removed = self.store.unsubscribe(channel, None, req.who, now)
        else:
            mine = {s.vendor for s in self.store.subscriptions(channel)}
            removed = []
            for w in cmd.args:
                vendor = w.lower() if w.lower() in mine else self._vendor_ids().get(w.lower())
                if vendor is None or vendor not in mine:
                    subscribed = ", ".join(_code(v) for v in sorted(mine)) or "nothing"
                    raise CommandError(
                        f"This channel is not subscribed to {_code(w)}; it is subscribed to {subscribed}."
                        + (" Alerts from watcher's config routes are changed in the config." if mine else "")
                    )
                removed += self.store.unsubscribe(channel, vendor, req.who, now)
        if not removed:
            return Reply("This channel has no subscriptions to remove.")
        return Reply(
            f"{_who(req.who)} unsubscribed this channel from {', '.join(self._name(v) for v in removed)}. "
            "Incidents already posted here still get their updates and their resolve.",
            in_channel=True,
        )

    def cmd_ack(self, cmd: Parsed, req: CommandRequest) -> Reply:
        if not cmd.args:
            raise CommandError(
                "Which incident? e.g. `/watcher ack 12 switching to Claude` (`/watcher status` lists them)."
            )
        word = cmd.args[0].lstrip("#")
        if not word.isdigit() or len(word) > 12:
            raise CommandError(f"{_code(cmd.args[0])} is not an incident number: e.g. `/watcher ack 12`.")
        reason = " ".join(cmd.args[1:])[:500] or None
        try:
            inc = self.engine.acknowledge(int(word), req.who, reason, via="slack command")
        except (LookupError, ValueError) as e:
            raise CommandError(f"Not acknowledged: {escape_mrkdwn(str(e))}.") from None
        return Reply(
            f"Incident #{inc.id} ({self._name(inc.vendor)}: {escape_mrkdwn(truncate(inc.title, 200))}) "
            f"acknowledged by {_who(req.who)}"
            + (f" ({escape_mrkdwn(reason)})" if reason else "")
            + "; reminders and escalation stop."
        )

    def cmd_mute(self, cmd: Parsed, req: CommandRequest) -> Reply:
        if len(cmd.args) < 2:
            raise CommandError(
                "Usage: `/watcher mute VENDOR DURATION [reason]`, e.g. `/watcher mute openai 2h`."
            )
        vendor = self._vendor(cmd.args[0])
        try:
            seconds = parse_duration(cmd.args[1])
        except ValueError:
            raise CommandError(
                f"Cannot read the duration {_code(cmd.args[1])}: use e.g. 30m, 2h, 1d or 1h30m."
            ) from None
        if seconds <= 0 or seconds > MAX_MUTE.total_seconds():
            raise CommandError(f"A mute from Slack lasts between 1 second and {MAX_MUTE.days} days.")
        reason = " ".join(cmd.args[2:])[:500] or None
        until = self.engine.mute(vendor, seconds, reason, req.who)
        return Reply(
            f"{_who(req.who)} muted {self._name(vendor)} until {_at(until)}"
            + (f" ({escape_mrkdwn(reason)})" if reason else "")
            + ". It is still watched; no new alerts until then (resolves still go out). "
            f"`/watcher unmute {vendor}` ends it early.",
            in_channel=True,
        )

    def cmd_unmute(self, cmd: Parsed, req: CommandRequest) -> Reply:
        if not cmd.args:
            raise CommandError("Which vendor? e.g. `/watcher unmute openai`.")
        vendor = self._vendor(cmd.args[0])
        if not self.store.end_mutes(vendor, self.now(), req.who):
            return Reply(f"{self._name(vendor)} was not muted.")
        return Reply(
            f"{_who(req.who)} ended the mute of {self._name(vendor)}: alerts resume.", in_channel=True
        )


_VERBS = {"mute": "mute vendors", "unmute": "unmute vendors", "unsubscribe": "unsubscribe channels"}


def _minutes(seconds: float) -> str:
    h, m = divmod(int(seconds // 60), 60)
    if h and m:
        return f"{h}h {m}m"
    return f"{h}h" if h else f"{m} min"


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
