"""What the alert stage passes around: plain data, so renderers and transports stay pure.

The flow: an incident event → :class:`Alert` (facts, frozen at the time of the
event, including the playbook text and the healthy alternatives) → one
notification per routed target in the outbox → a transport sends it.

Renderers turn an :class:`Alert` into a channel's format (Slack blocks, email
MIME); transports send that and raise :class:`TransportError` on failure. Neither
knows about feeds, status pages or the database.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any


class AlertAction(StrEnum):
    """Why a message is sent, which decides how a channel shows it."""

    OPENED = "opened"
    """First message about an incident: a new Slack message, a new email thread."""
    UPDATED = "updated"
    """A later change: Slack edits the message in place and adds a thread reply; email replies in thread."""
    RESOLVED = "resolved"
    ACKNOWLEDGED = "acknowledged"
    REMINDER = "reminder"
    ESCALATION = "escalation"
    TEST = "test"
    REPORT = "report"
    """The weekly report: no incident (``incident_id`` 0); the content is :attr:`Alert.message`."""


@dataclass(frozen=True, slots=True)
class Alternative:
    """Another watched vendor, with its state now: a place to move work to."""

    vendor: str
    name: str
    state: str
    """``operational``, ``degraded``, ... (see :class:`watcher.model.VendorState`)."""
    reason: str = ""
    latency_ms: float | None = None
    note: str = ""
    """From the catalog, in the alert's language: what it is good at and what to watch out for."""
    match: int = 0
    """How many categories it shares with the affected vendor: more is closer to the same job."""


@dataclass(frozen=True, slots=True)
class Alert:
    """Everything any channel needs to show one incident at one moment.

    Vendor text (``title``, ``latest_update``, component names) is untrusted and
    must be escaped by every renderer for its own format.
    """

    incident_id: int
    vendor: str
    vendor_name: str
    title: str
    kind: str
    """``outage``, ``degradation``, ``api_change``, ``hallucination_spike``, ``maintenance``."""
    reason: str
    state: str
    """``open`` or ``resolved``."""
    status: str
    """The vendor's status word (investigating, identified, monitoring, resolved, ...)."""
    action: AlertAction
    impact: str | None = None
    components: tuple[str, ...] = ()
    latest_update: str = ""
    event_text: str = ""
    """What changed, in one line (e.g. "investigating → identified")."""
    url: str | None = None
    status_page: str | None = None
    started_at: str | None = None
    """ISO 8601 UTC."""
    resolved_at: str | None = None
    duration: str | None = None
    """Human duration once resolved ("1h 12m")."""
    acknowledged_by: str | None = None
    acknowledged_at: str | None = None
    ack_reason: str | None = None
    playbook: str = ""
    """The rendered playbook, Markdown (trusted: ours, with vendor facts already escaped into it)."""
    alternatives: tuple[Alternative, ...] = ()
    ack_url: str | None = None
    """Signed, expiring acknowledge link (email, web)."""
    incident_url: str | None = None
    """The incident's page on watcher's own board."""
    notify_user: str | None = None
    """Slack user id (U…/W…) to mention in a reminder or escalation: the person who must act."""
    is_maintenance: bool = False
    scheduled_for: str | None = None
    scheduled_until: str | None = None
    quiet: bool = False
    """A quiet notice: the incident touches nothing the team uses (no mention, reminder, escalation)."""
    scope: str = ""
    """What is and is not affected, in the alert's language ("Your API use is not affected: ...")."""
    locale: str = "en"
    """``alerts.locale``: the language every renderer writes in (``watcher/locales/<locale>``)."""
    timezone: str = "UTC"
    """``alerts.timezone``: the zone every time is shown in."""
    message: dict[str, Any] | None = None
    """A message about no incident (the weekly report), rendered by its author for each format, so
    that it can wait in the outbox like an alert: ``{"slack": {"text", "blocks"}, "email": {"subject",
    "text", "html"}, "text": {"title", "body"}}`` (``text`` is plain text, for any other channel)."""

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["action"] = self.action.value
        return d

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Alert:
        d = dict(d)
        d["action"] = AlertAction(d["action"])
        d["components"] = tuple(d.get("components") or ())
        d["alternatives"] = tuple(Alternative(**a) for a in d.get("alternatives") or ())
        return cls(**d)


class TransportError(Exception):
    """A send that failed.

    ``permanent`` errors (bad token, unknown channel) will not succeed on retry:
    the outbox stops retrying and reports them. ``retry_after`` is the server's
    own wish (Slack's 429 ``Retry-After``) in seconds.
    """

    def __init__(self, message: str, *, permanent: bool = False, retry_after: float | None = None):
        super().__init__(message)
        self.message = message
        self.permanent = permanent
        self.retry_after = retry_after


@dataclass(frozen=True, slots=True)
class SlackRef:
    """Where a Slack message lives, to edit it and reply in its thread."""

    channel: str
    ts: str


@dataclass(slots=True)
class Delivery:
    """What a transport reports back after a successful send."""

    ref: dict[str, Any] = field(default_factory=dict)
    """Channel-specific handle (Slack: channel + ts; email: Message-ID)."""
