"""The settings sections about what is watched and how watcher runs: storage, polls, sources and
vendors, logs, retention, heartbeat, the weekly report, probes, the cluster and the web app.

Each section is a strict pydantic model (unknown keys refused, so that a typo fails at start);
:class:`watcher.config.Settings` assembles them with the alert sections of :mod:`.alerting`.
"""

from __future__ import annotations

import re
from datetime import time as dt_time
from pathlib import Path
from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

SourceType = Literal[
    "statuspage",
    "statuspage_incidents",
    "statuspage_maintenances",
    "instatus",
    "betterstack",
    "gcp",
    "feed",
    "html",
    "checkly",
    "http",
]
SOURCE_TYPES: tuple[str, ...] = get_args(SourceType)
"""The source types, in order (for messages and the catalog's checks): written once, in the Literal above."""
VALID_ID = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")


class ConfigError(Exception):
    """Invalid configuration; the message names the key and the fix."""


class Strict(BaseModel):
    """A settings section that refuses unknown keys, so that a typo fails at start instead of being ignored."""

    model_config = ConfigDict(extra="forbid")


class StorageSettings(Strict):
    path: Path = Field(
        default=Path("watcher.db"),
        description="SQLite database file, created on first run (a relative path is from $STATE_DIRECTORY "
        "when set, else from the config file's folder, else from the working folder).",
    )
    url: str | None = Field(
        default=None,
        description="postgresql://user@host:5432/db: use PostgreSQL instead of the SQLite file (several watchers "
        "on one database); a password goes in the environment, WATCHER_STORAGE__URL, not in the config file.",
    )


class PollSettings(Strict):
    interval: float = Field(default=60.0, ge=1, le=86400, description="Seconds between polls of one source.")
    jitter: float = Field(
        default=0.1, ge=0, le=0.5, description="Random spread of each poll, as a fraction of its interval."
    )
    timeout: float = Field(
        default=10.0, gt=0, le=300, description="Seconds for one whole fetch, body included."
    )
    max_bytes: int = Field(default=5_000_000, ge=1024, description="Largest decoded body accepted.")
    concurrency: int = Field(default=16, ge=1, le=1000, description="Fetches in flight at once.")
    private_redirects: bool = Field(
        default=False,
        description="Follow a vendor's redirect to a loopback, private or link-local address even when "
        "the configured URL is public (off: such a redirect is refused, so a page cannot steer watcher "
        "to the cloud metadata service or to another service on this machine).",
    )
    user_agent: str = "watcher/0.1 (+https://github.com/watcher-dev/watcher)"


class SourceSettings(Strict):
    """A source of a vendor: every field optional so it can patch a catalog source."""

    type: SourceType | None = None
    url: str | None = None
    interval: float | None = Field(default=None, ge=1, le=86400)
    enabled: bool = True
    product_ids: list[str] | None = None
    ignore_components: list[str] | None = None
    html: dict[str, Any] | None = None
    confidence: Literal["verified", "third-party", "unverified"] | None = None
    # type = "http" only (checked in full by watcher.catalog.checks; see README "HTTP checks")
    method: str | None = None
    expect_status: list[int | str] | None = None
    must_contain: str | None = None
    must_not_contain: str | None = None
    must_match: str | None = Field(default=None, description="RE2 regular expression the body must match.")
    must_not_match: str | None = None
    json_condition: str | list[str] | None = Field(
        default=None, description='e.g. status.indicator == "none"'
    )
    max_latency: float | None = Field(default=None, gt=0, description="Seconds; slower answers degrade.")
    cert_expiry_days: int | None = None
    headers: dict[str, str] | None = None
    body: str | None = None
    api_key_env: str | None = Field(default=None, description="Environment variable holding an API key.")
    api_key_header: str | None = None
    api_key_prefix: str | None = None
    fail_after: int | None = None
    recover_after: int | None = None
    slow_after: int | None = None

    @field_validator("url")
    @classmethod
    def _url(cls, v: str | None) -> str | None:
        if v is not None and not re.match(r"^https?://[^\s/]+", v):
            raise ValueError("must be an http:// or https:// URL")
        return v


class VendorSettings(Strict):
    """Patches a catalog vendor, or defines a new one (then ``name`` and a source are required)."""

    name: str | None = None
    status_page: str | None = None
    components: list[str] | None = Field(
        default=None, description="Only these components count (names, case-insensitive, * wildcards)."
    )
    ignore_components: list[str] = Field(default_factory=list)
    sources: dict[str, SourceSettings] = Field(default_factory=dict)
    categories: list[str] | None = Field(
        default=None,
        description="What this vendor does (text, image, voice, ...); alternatives share one. Catalog default.",
    )
    used_for: list[str] = Field(
        default_factory=list,
        description="Campaigns and tasks that depend on this vendor: shown as the impact in alerts.",
    )
    uses: list[str] = Field(
        default_factory=list,
        description=(
            'What the team uses: "api", "chat app", "image generation", "voice", ... or component names '
            "(* wildcards). Incidents touching only other components are quiet notices. Empty: everything."
        ),
    )


class LogSettings(Strict):
    level: Literal["debug", "info", "warning", "error"] = "info"
    format: Literal["human", "json"] = Field(default="human", description="json: one JSON object a line.")


class RetentionSettings(Strict):
    """How long raw data is kept; incidents and their events are kept for good."""

    observations_days: float = Field(default=30, gt=0)
    probe_results_days: float = Field(default=90, gt=0)
    notifications_days: float = Field(default=180, gt=0, description="Delivered or dead outbox rows.")
    every: float = Field(default=3600, ge=60, description="Seconds between pruning runs.")


class HeartbeatSettings(Strict):
    """A ping to an external dead-man's switch (healthchecks-style), so someone learns if watcher dies."""

    url: str | None = None
    interval: float = Field(default=60, ge=5)


class ReportSettings(Strict):
    """The weekly report: availability, incidents, time to acknowledge and resolve, probes, spend."""

    enabled: bool = True
    weekday: Literal["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"] = "monday"
    time: dt_time = dt_time(9, 0)
    timezone: str = "UTC"
    slack_channels: list[str] = Field(default_factory=list)
    emails: list[str] = Field(default_factory=list)


class ProbeVendorSettings(Strict):
    """Probing one vendor's API with our own key: latency, canaries, model list."""

    enabled: bool = True
    key: SecretStr | None = Field(
        default=None, description="API key: env (WATCHER_PROBES__VENDORS__<ID>__KEY) or key_file only."
    )
    key_file: Path | None = None
    base_url: str | None = Field(default=None, description="API base URL; default from the catalog.")
    format: Literal["openai", "anthropic", "gemini"] | None = Field(
        default=None, description="Wire format; default from the catalog."
    )
    model: str | None = Field(
        default=None, description="Model for the streamed latency probe and canaries; none: model list only."
    )
    models_in_use: list[str] = Field(
        default_factory=list, description="Models the team depends on: their disappearance is an api_change."
    )
    changelog_feeds: list[str] = Field(
        default_factory=list,
        description="RSS/Atom changelog or deprecation feeds: a retirement of a model in use is an api_change.",
    )
    daily_tokens: int = Field(default=20_000, ge=0, description="Tokens a day, never exceeded.")
    daily_cost: float = Field(default=0.10, ge=0, description="Cost a day (in the price's currency).")
    price_in: float = Field(default=5.0, ge=0, description="Price per million input tokens.")
    price_out: float = Field(default=15.0, ge=0, description="Price per million output tokens.")


class ProbeSettings(Strict):
    """watcher's own measurements: latency probes, canary prompts, the local network check."""

    enabled: bool = True
    interval: float = Field(default=300, ge=1, le=86400, description="Seconds between probe runs.")
    fast_interval: float = Field(
        default=60, ge=1, le=86400, description="Seconds between runs while a detector is in warning."
    )
    timeout: float = Field(default=30, gt=0, le=300)
    canaries_per_run: int = Field(default=5, ge=0, le=50)
    canaries_file: Path | None = Field(default=None, description="Your canary set (TOML).")
    replace_default_canaries: bool = False
    control_urls: list[str] = Field(
        default_factory=lambda: [
            "https://www.google.com/generate_204",
            "https://www.cloudflare.com/cdn-cgi/trace",
            "https://www.wikipedia.org/",
        ],
        description="Independent hosts that show our own network works; any answer counts.",
    )
    fail_consecutive: int = Field(
        default=3, ge=1, le=100, description="Failed probes in a row for an outage."
    )
    recover_consecutive: int = Field(default=2, ge=1, le=100, description="Good probes in a row to recover.")
    arl0_days: float = Field(default=90, gt=0, description="At most one false alarm per stream this often.")
    calibration_days: float = Field(default=14, ge=0)
    prior_p0: float = Field(
        default=0.02, gt=0, lt=0.5, description="Canary failure rate assumed until learned."
    )
    design_p1: float = Field(default=0.15, gt=0, lt=1)
    vendors: dict[str, ProbeVendorSettings] = Field(default_factory=dict)


class ClusterSettings(Strict):
    """Several watchers on one PostgreSQL database: one leader alerts, every instance watches."""

    name: str | None = Field(
        default=None, description="This instance's name, unique in the cluster; default the host name."
    )
    location: str | None = Field(
        default=None,
        description="Where this instance sees the internet from (e.g. 'paris', 'aws-us-east-1'); "
        "default the instance name.",
    )
    failover_timeout: float = Field(
        default=30,
        ge=3,
        le=3600,
        description="Seconds within which a follower replaces a leader that died or lost the database.",
    )
    min_locations: int | None = Field(
        default=None,
        ge=1,
        le=50,
        description="Locations that must see a probe-detected outage before it is declared; default 2 "
        "when more than one location is running, else 1.",
    )
    confirm_window: float | None = Field(
        default=None,
        gt=0,
        le=86400,
        description="Seconds within which the locations' sightings must fall; default twice the probe "
        "interval plus the failover timeout.",
    )

    @field_validator("name", "location")
    @classmethod
    def _label(cls, v: str | None) -> str | None:
        if v is None:
            return v
        v = v.strip()
        if not v or len(v) > 63 or any(ord(c) < 32 for c in v):
            raise ValueError("must be 1 to 63 printable characters")
        return v


class WebSettings(Strict):
    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    auth_token: SecretStr | None = Field(
        default=None, description="Bearer token for the board and API: env or auth_token_file only."
    )
    auth_token_file: Path | None = None
    username: str | None = Field(default=None, description="Basic-auth user for the board.")
    password: SecretStr | None = None
    password_file: Path | None = None
    max_connections: int = Field(
        default=200,
        ge=8,
        le=10000,
        description="Open connections to the web app; past it the oldest one still sending its request is closed.",
    )
    header_timeout: float = Field(
        default=10.0, gt=0, le=300, description="Seconds a connection has to send a request's headers."
    )
    metrics_login: bool = Field(
        default=False,
        description="Put /metrics behind the board's login (a Prometheus scraper then sends the token).",
    )
