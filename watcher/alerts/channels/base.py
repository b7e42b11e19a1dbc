"""What every notification channel is: one small class per channel, and what it is given to send with.

A channel (Slack, email, Apprise, ...) knows four things and nothing else does:

- its name (the ``channel`` column of the outbox, the ``channel`` label of the
  metrics) and how it is called in each language;
- where it sends for a route (a route's ``targets`` table under its name, or a
  built-in's usual field), for the weekly report and as a fallback (its
  *targets*, read from the settings), and whether it is configured at all;
- how to open its sender from the settings (a bot token, an SMTP server);
- how to send one outbox row (:meth:`Channel.send`): render the alert, or the
  weekly report, for its format and hand it to its transport, raising
  :class:`~watcher.alerts.model.TransportError` on failure.

Every send goes through :meth:`Channel.send`, whoever sends: the outbox
(:class:`watcher.alerts.deliver.Deliverer`, with retries and fallback),
``watcher test-alert`` (:class:`DirectOutlet`, now, to show the transport's own
error) and the weekly report (queued in the outbox like an alert). That is why
a test Apprise message looks like a real one: there is no second formatter.
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from watcher.alerts.model import Alert, AlertAction

if TYPE_CHECKING:
    from watcher.config import RouteSettings, Settings
    from watcher.store.outbox import Notification

STANDALONE_ACTIONS = frozenset({AlertAction.TEST, AlertAction.REPORT})
"""Messages that belong to no incident thread: a test alert, the weekly report. They are posted as new
messages, never edit or reply to an incident's message, and leave no thread behind."""


OK, WARN, FAIL = "ok", "warn", "FAIL"


@dataclass(frozen=True, slots=True)
class Check:
    """One line of ``watcher doctor`` (and ``watcher config check``): what was checked, how it went, the fix.

    Here rather than in :mod:`watcher.doctor` because each channel makes its own lines
    (:meth:`Channel.checks`); the doctor assembles them with its checks of the machine.
    """

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


@dataclass
class Transports:
    """The senders opened from the settings (:meth:`from_settings`); None where a channel is not set up.

    The three built-in senders keep their own attributes (tests and the Slack
    commands hand a ready :class:`~watcher.alerts.slack.SlackBot` in); a channel
    added later keeps its sender in :attr:`extra` under its name.
    """

    slack_bot: Any = None
    slack_webhook: Any = None
    mailer: Any = None
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_settings(cls, settings: Settings) -> Transports:
        from watcher.alerts.channels import registry

        t = cls()
        for channel in registry.channels():
            channel.open(settings, t)
        return t


class Outlet(Protocol):
    """What a channel is given to send one row: the sender's settings, store, clock and helpers.

    The outbox's :class:`~watcher.alerts.deliver.Deliverer` is one (threads per
    channel, records retried until the database takes them); :class:`DirectOutlet`
    is the other, for sends that report their result at once.
    """

    settings: Settings
    transports: Transports
    store: Any
    """The store, for incident threads (Slack ts, email Message-ID); None when sending directly."""

    def clock(self) -> datetime: ...

    async def in_thread(self, channel: str, fn: Callable[..., Any], /, *args: Any) -> Any:
        """Run a transport's blocking call off the event loop, in ``channel``'s own worker threads."""
        ...

    async def record(self, n: Notification, what: str, write: Callable[[], object]) -> None:
        """Run a store write about ``n`` that must not be lost (a Slack thread once posted)."""
        ...


class DirectOutlet:
    """Send now, without the outbox: ``watcher test-alert`` and an immediate report.

    Blocking calls run in a worker thread; there is no store, so a channel must
    not need an incident thread (only :data:`STANDALONE_ACTIONS` are sent this way).
    """

    def __init__(self, settings: Settings, transports: Transports):
        self.settings = settings
        self.transports = transports
        self.store: Any = None

    def clock(self) -> datetime:
        return datetime.now(UTC)

    async def in_thread(self, channel: str, fn: Callable[..., Any], /, *args: Any) -> Any:
        return await asyncio.to_thread(fn, *args)

    async def record(self, n: Notification, what: str, write: Callable[[], object]) -> None:
        write()


class Channel(ABC):
    """One way of telling people: subclass, fill the class attributes, register an instance.

    See :mod:`watcher.alerts.channels` for the registry; ``tests/test_channels.py``
    adds a channel in a dozen lines.
    """

    name: ClassVar[str]
    """The outbox's ``channel`` value and the metrics' ``channel`` label: never change it once used."""
    labels: ClassVar[Mapping[str, str]]
    """How people call it, per language (``en`` at least): "Slack", "email"/"e-mail"."""
    fallback_to: ClassVar[str | None] = None
    """The channel that takes this one's alerts when it keeps failing (``alerts.fallback_after``)."""
    edits_in_place: ClassVar[bool] = False
    """Whether a later message about an incident edits the first (Slack) rather than follows it."""

    def label(self, locale: str = "en") -> str:
        from watcher.i18n import lang

        return self.labels.get(lang(locale)) or self.labels["en"]

    def route_targets(self, route: RouteSettings) -> list[str]:
        """Where a matching route sends on this channel (channel ids, addresses, URLs), in order.

        From the route's ``targets.<name>`` (and the built-ins' usual field, ``slack_channels``...):
        a new channel needs no settings field of its own to be routed to
        (:meth:`~watcher.config.RouteSettings.channel_targets`)."""
        return route.channel_targets(self.name)

    def report_targets(self, settings: Settings, transports: Transports) -> list[str]:
        """Where the weekly report goes on this channel (``report.*``); none unless the channel says."""
        return []

    def fallback_targets(self, settings: Settings, route: RouteSettings | None) -> list[str]:
        """Where this channel sends an alert another channel failed to deliver; none unless it says."""
        return []

    def open(self, settings: Settings, transports: Transports) -> None:
        """Make this channel's sender from the settings and put it in ``transports`` (when configured).

        Channels that need no sender of their own (Apprise: the URL is everything) keep this."""
        return None

    def configured(self, settings: Settings) -> bool:
        """Whether the settings set this channel up (read without opening anything: ``watcher doctor``)."""
        return True

    def setup_advice(self) -> tuple[str, str]:
        """(what is missing, how to fix it) when a route names this channel but it is not configured."""
        return (f"sends to {self.label()} but {self.label()} is not configured", "see README, 'Alerts'")

    def checks(self, settings: Settings, transports: Transports, targets: list[str]) -> list[Check]:
        """What ``watcher doctor`` can find out about this channel without sending anything: its
        credentials and each of ``targets`` (the routes' targets on this channel, each once).

        None unless the channel says: a channel added later shows in the doctor's route lines
        (and its "not configured" advice, :meth:`setup_advice`) without writing this."""
        return []

    def problem(self, transports: Transports) -> str | None:
        """None when this channel can send; else why not, in words that say what to set."""
        return None

    def timeout(self, settings: Settings) -> float:
        """Seconds one send may take before its client gives up (for ``watcher outbox``'s "hung?")."""
        return 60.0

    def shown(self, target: str) -> str:
        """The target as it may be printed (an Apprise URL carries tokens: its scheme only)."""
        return target

    @abstractmethod
    def render(self, alert: Alert) -> Any:
        """The alert as this channel shows it (Slack: text and blocks; email: subject, text, HTML; ...).

        Pure. Every vendor string escaped for the format. A message rendered by its
        author (:attr:`Alert.message`, the weekly report) comes back in this
        channel's format as it was rendered.
        """

    @abstractmethod
    async def send(self, out: Outlet, n: Notification) -> dict[str, Any]:
        """Send one row (``n.alert``, for ``n.target``); returns what to record as its ``ref``.

        Raises :class:`~watcher.alerts.model.TransportError`: permanent when a retry
        cannot help (the outbox stops and falls back), transient otherwise.
        """
