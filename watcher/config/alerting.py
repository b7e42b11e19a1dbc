"""The settings sections about who gets which alert: routes, quiet hours, the Slack and email
channels, the on-call rotation, and the alerts section (language, time zone, retries, playbooks).

Apart from :mod:`.sections` because these are the keys a team edits most and reads together.
"""

from __future__ import annotations

from datetime import date
from datetime import time as dt_time
from pathlib import Path
from typing import Literal, get_args
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, SecretStr, field_validator

from watcher.config.sections import VALID_ID, Strict

KIND_NAMES = ("outage", "degradation", "api_change", "hallucination_spike", "maintenance")
KindName = Literal["outage", "degradation", "api_change", "hallucination_spike", "maintenance"]


def _zone(v: str) -> str:
    try:
        ZoneInfo(v)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {v!r}; use an IANA name such as 'Europe/Paris'") from None
    return v


class QuietHours(Strict):
    """A daily window (may cross midnight) in which this route's alerts are held, then sent grouped."""

    start: dt_time
    end: dt_time
    timezone: str = "UTC"
    kinds_allowed: list[KindName] = Field(
        default_factory=list, description="Kinds that still go out during quiet hours (e.g. outage)."
    )

    _tz = field_validator("timezone")(classmethod(lambda cls, v: _zone(v)))


USUAL_TARGET_FIELDS = {"slack": "slack_channels", "email": "emails", "apprise": "apprise"}
"""The built-in channels' own list in a route, the usual spelling: ``slack_channels = [...]`` means
``targets.slack = [...]``. A channel added later has no field here: a route names it in ``targets``."""


class RouteSettings(Strict):
    """Who hears about what: matching incidents go to these Slack channels, addresses, Apprise URLs and
    the targets of any other registered channel (``targets``)."""

    name: str = "default"
    vendors: list[str] = Field(default_factory=lambda: ["*"])
    components: list[str] = Field(default_factory=lambda: ["*"])
    kinds: list[KindName] = Field(default_factory=lambda: list(get_args(KindName)))
    min_impact: Literal["none", "minor", "major", "critical"] = Field(
        default="none",
        description="Only incidents the vendor rates at least this severe (unrated ones always match).",
    )
    slack_channels: list[str] = Field(default_factory=list)
    emails: list[str] = Field(default_factory=list)
    apprise: list[str] = Field(
        default_factory=list, description="Apprise URLs (Teams, Discord, PagerDuty, ...)."
    )
    targets: dict[str, list[str]] = Field(
        default_factory=dict,
        description=(
            "Targets per channel name ({ pager = [\"https://...\"] }): any registered channel, the "
            "built-in ones too (added after their usual field's)."
        ),
    )
    quiet_hours: QuietHours | None = None
    quiet_notices: Literal["send", "report"] = Field(
        default="send",
        description=(
            "Incidents touching only components the team does not use (vendors.<id>.uses): 'send' a quiet "
            "notice (no mention, reminder or escalation); 'report': only in the weekly report."
        ),
    )

    @field_validator("targets")
    @classmethod
    def _channel_names(cls, v: dict[str, list[str]]) -> dict[str, list[str]]:
        # Only the shape here: which channels exist is the registry's to say, and the registry lives
        # in a later stage (watcher.alerts.channels.registry.check_routes checks the names on load).
        for name in v:
            if not VALID_ID.match(name):
                raise ValueError(f"channel name {name!r} must be lowercase letters, digits, '-' or '_'")
        return v

    def channel_targets(self, channel: str) -> list[str]:
        """Where this route sends on ``channel``: its usual field (``slack_channels``...), then
        ``targets.<channel>``, each once, in order.

        Read live (not merged at validation) so that both spellings stay as written and a list
        changed after loading is seen.
        """
        usual = {"slack": self.slack_channels, "email": self.emails, "apprise": self.apprise}.get(channel, [])
        return list(dict.fromkeys([*usual, *self.targets.get(channel, [])]))


class SlackSettings(Strict):
    """Slack: bot token (full), Socket Mode (no public URL) or incoming webhook (lesser)."""

    token: SecretStr | None = Field(default=None, description="Bot token (xoxb-...): env or token_file only.")
    token_file: Path | None = None
    signing_secret: SecretStr | None = None
    signing_secret_file: Path | None = None
    webhook_url: SecretStr | None = Field(default=None, description="Incoming webhook: the lesser mode.")
    app_token: SecretStr | None = Field(
        default=None,
        description="App-level token (xapp-...) for Socket Mode: buttons work with no public URL.",
    )
    app_token_file: Path | None = None
    base_url: str = "https://slack.com/api/"
    timeout: float = Field(default=10.0, gt=0, le=120)
    fallback_channel: str | None = Field(
        default=None, description="Channel ID that gets alerts when email keeps failing for a route."
    )
    admins: list[str] = Field(
        default_factory=list, description="Slack user ids (U...) allowed to mute and unsubscribe."
    )
    admin_usergroup: str | None = Field(
        default=None, description="Slack user group id (S...) whose members may mute and unsubscribe."
    )


class EmailSettings(Strict):
    host: str | None = None
    port: int = Field(default=587, ge=1, le=65535)
    starttls: bool = True
    ssl: bool = False
    username: str | None = None
    password: SecretStr | None = None
    password_file: Path | None = None
    sender: str | None = None
    timeout: float = Field(default=15.0, gt=0, le=120)
    fallback_to: list[str] = Field(
        default_factory=list,
        description="Where alerts go when Slack keeps failing and the route has no email.",
    )


class OnCallPerson(Strict):
    name: str
    slack: str | None = Field(default=None, description="Slack user id (U...), to mention.")
    email: str | None = None


class OnCallSettings(Strict):
    people: list[OnCallPerson] = Field(default_factory=list)
    rotation_days: int = Field(default=7, ge=1, le=365)
    rotation_start: date = date(2026, 1, 5)
    remind_after: float = Field(
        default=900, ge=30, description="Seconds before an unacknowledged alert is repeated."
    )
    escalate_after: float = Field(
        default=1800, ge=60, description="Seconds before it goes to the next person."
    )


def _locale(value: str) -> str:
    """A language shipped in ``watcher/locales`` (one folder per language)."""
    from watcher.i18n import locales

    code = str(value).strip()
    if code not in locales():
        raise ValueError(f"language {code!r} is not available: one of {', '.join(locales())}")
    return code


class AlertSettings(Strict):
    enabled: bool = True
    locale: str = "en"
    """A folder of ``watcher/locales``: ``en``, ``fr``..."""
    _locale = field_validator("locale")(classmethod(lambda cls, v: _locale(v)))
    timezone: str = "UTC"
    playbooks_dir: Path | None = None
    prompt_library: Path | None = None
    public_url: str | None = Field(default=None, description="Base URL of watcher's web app, for links.")
    ack_secret: SecretStr | None = None
    ack_secret_file: Path | None = None
    ack_link_ttl: float = Field(default=7 * 86400, ge=60)
    retry_for: float = Field(
        default=86400, ge=60, description="Seconds a notification is retried before it dies."
    )
    fallback_after: float = Field(
        default=600, ge=0, description="Seconds a channel may keep failing before the other channel is used."
    )
    stuck_after: float = Field(
        default=600,
        ge=60,
        description="Seconds an alert may wait undelivered (quiet hours aside) before health turns unhealthy.",
    )

    _tz = field_validator("timezone")(classmethod(lambda cls, v: _zone(v)))
