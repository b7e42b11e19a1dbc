"""The one settings model, read from TOML and overridable by ``WATCHER_*`` variables.

Precedence, highest first: environment (``WATCHER_POLL__INTERVAL=30``, ``__`` nests),
the TOML file (``--config PATH`` or ``WATCHER_CONFIG``), then the defaults here.
Unknown keys are refused so that a typo fails at start instead of being ignored.

Vendors come from the built-in catalog (:mod:`watcher.catalog`); the ``vendors``
table patches them (override a URL, filter components, disable a source) or adds
vendors of the user's own.
"""

from __future__ import annotations

import difflib
import os
import re
import tomllib
from datetime import date
from datetime import time as dt_time
from pathlib import Path
from typing import Any, Literal, get_args, get_origin
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

SOURCE_TYPES = (
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
)
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
_ID = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")


class ConfigError(Exception):
    """Invalid configuration; the message names the key and the fix."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class StorageSettings(_Strict):
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


class PollSettings(_Strict):
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


class SourceSettings(_Strict):
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
    json_condition: str | list[str] | None = Field(default=None, description='e.g. status.indicator == "none"')
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


class VendorSettings(_Strict):
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


class LogSettings(_Strict):
    level: Literal["debug", "info", "warning", "error"] = "info"
    format: Literal["human", "json"] = Field(default="human", description="json: one JSON object a line.")


class RetentionSettings(_Strict):
    """How long raw data is kept; incidents and their events are kept for good."""

    observations_days: float = Field(default=30, gt=0)
    probe_results_days: float = Field(default=90, gt=0)
    notifications_days: float = Field(default=180, gt=0, description="Delivered or dead outbox rows.")
    every: float = Field(default=3600, ge=60, description="Seconds between pruning runs.")


class HeartbeatSettings(_Strict):
    """A ping to an external dead-man's switch (healthchecks-style), so someone learns if watcher dies."""

    url: str | None = None
    interval: float = Field(default=60, ge=5)


class ReportSettings(_Strict):
    """The weekly report: availability, incidents, time to acknowledge and resolve, probes, spend."""

    enabled: bool = True
    weekday: Literal["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"] = "monday"
    time: dt_time = dt_time(9, 0)
    timezone: str = "UTC"
    slack_channels: list[str] = Field(default_factory=list)
    emails: list[str] = Field(default_factory=list)


KIND_NAMES = ("outage", "degradation", "api_change", "hallucination_spike", "maintenance")
KindName = Literal["outage", "degradation", "api_change", "hallucination_spike", "maintenance"]


def _zone(v: str) -> str:
    try:
        ZoneInfo(v)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {v!r}; use an IANA name such as 'Europe/Paris'") from None
    return v


class QuietHours(_Strict):
    """A daily window (may cross midnight) in which this route's alerts are held, then sent grouped."""

    start: dt_time
    end: dt_time
    timezone: str = "UTC"
    kinds_allowed: list[KindName] = Field(
        default_factory=list, description="Kinds that still go out during quiet hours (e.g. outage)."
    )

    _tz = field_validator("timezone")(classmethod(lambda cls, v: _zone(v)))


class RouteSettings(_Strict):
    """Who hears about what: matching incidents go to these Slack channels, addresses and Apprise URLs."""

    name: str = "default"
    vendors: list[str] = Field(default_factory=lambda: ["*"])
    components: list[str] = Field(default_factory=lambda: ["*"])
    kinds: list[KindName] = Field(default_factory=lambda: list(KIND_NAMES))
    min_impact: Literal["none", "minor", "major", "critical"] = Field(
        default="none",
        description="Only incidents the vendor rates at least this severe (unrated ones always match).",
    )
    slack_channels: list[str] = Field(default_factory=list)
    emails: list[str] = Field(default_factory=list)
    apprise: list[str] = Field(
        default_factory=list, description="Apprise URLs (Teams, Discord, PagerDuty, ...)."
    )
    quiet_hours: QuietHours | None = None
    quiet_notices: Literal["send", "report"] = Field(
        default="send",
        description=(
            "Incidents touching only components the team does not use (vendors.<id>.uses): 'send' a quiet "
            "notice (no mention, reminder or escalation); 'report': only in the weekly report."
        ),
    )


class SlackSettings(_Strict):
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


class EmailSettings(_Strict):
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


class OnCallPerson(_Strict):
    name: str
    slack: str | None = Field(default=None, description="Slack user id (U...), to mention.")
    email: str | None = None


class OnCallSettings(_Strict):
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


class AlertSettings(_Strict):
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


class ProbeVendorSettings(_Strict):
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


class ProbeSettings(_Strict):
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
    fail_consecutive: int = Field(default=3, ge=1, le=100, description="Failed probes in a row for an outage.")
    recover_consecutive: int = Field(default=2, ge=1, le=100, description="Good probes in a row to recover.")
    arl0_days: float = Field(default=90, gt=0, description="At most one false alarm per stream this often.")
    calibration_days: float = Field(default=14, ge=0)
    prior_p0: float = Field(default=0.02, gt=0, lt=0.5, description="Canary failure rate assumed until learned.")
    design_p1: float = Field(default=0.15, gt=0, lt=1)
    vendors: dict[str, ProbeVendorSettings] = Field(default_factory=dict)


class ClusterSettings(_Strict):
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


class WebSettings(_Strict):
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


SECRET_KEYS = (
    ("slack", "token"),
    ("slack", "signing_secret"),
    ("slack", "webhook_url"),
    ("slack", "app_token"),
    ("email", "password"),
    ("alerts", "ack_secret"),
    ("web", "auth_token"),
    ("web", "password"),
)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="WATCHER_",
        env_nested_delimiter="__",
        extra="forbid",
        case_sensitive=False,
    )

    watch: list[str] | None = Field(
        default=None,
        description="Vendor ids to watch; default every catalog vendor that has a status source.",
    )
    storage: StorageSettings = Field(default_factory=StorageSettings)
    poll: PollSettings = Field(default_factory=PollSettings)
    log: LogSettings = Field(default_factory=LogSettings)
    vendors: dict[str, VendorSettings] = Field(default_factory=dict)
    routes: list[RouteSettings] = Field(default_factory=list)
    slack: SlackSettings = Field(default_factory=SlackSettings)
    email: EmailSettings = Field(default_factory=EmailSettings)
    oncall: OnCallSettings = Field(default_factory=OnCallSettings)
    alerts: AlertSettings = Field(default_factory=AlertSettings)
    web: WebSettings = Field(default_factory=WebSettings)
    probes: ProbeSettings = Field(default_factory=ProbeSettings)
    retention: RetentionSettings = Field(default_factory=RetentionSettings)
    heartbeat: HeartbeatSettings = Field(default_factory=HeartbeatSettings)
    report: ReportSettings = Field(default_factory=ReportSettings)
    cluster: ClusterSettings = Field(default_factory=ClusterSettings)

    @field_validator("watch")
    @classmethod
    def _watch(cls, v: list[str] | None) -> list[str] | None:
        if v is None:
            return v
        return [x.strip().lower() for x in v if x.strip()]

    @field_validator("vendors")
    @classmethod
    def _vendor_ids(cls, v: dict[str, VendorSettings]) -> dict[str, VendorSettings]:
        for vid, vendor in v.items():
            if not _ID.match(vid):
                raise ValueError(f"vendor id {vid!r} must be lowercase letters, digits, '-' or '_'")
            for sid in vendor.sources:
                if not _ID.match(sid):
                    raise ValueError(
                        f"source id {sid!r} of vendor {vid!r} must be lowercase letters, digits, '-', '_'"
                    )
        return v


def load_settings(path: Path | str | None = None) -> Settings:
    """Read settings from ``path`` (or ``$WATCHER_CONFIG``), then the environment.

    Raises :class:`ConfigError` with a message that names the offending key and how
    to fix it; never a raw traceback.
    """
    if path is None and os.environ.get("WATCHER_CONFIG"):
        path = os.environ["WATCHER_CONFIG"]
    data: dict[str, Any] = {}
    if path is not None:
        p = Path(path)
        try:
            raw = p.read_bytes()
        except FileNotFoundError:
            raise ConfigError(f"config file {p} does not exist (copy config.example.toml to start)") from None
        except OSError as e:
            raise ConfigError(f"config file {p} cannot be read: {e.strerror}") from None
        try:
            data = tomllib.loads(raw.decode("utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
            raise ConfigError(f"config file {p} is not valid TOML: {e}") from None
        leaked = [f"{a}.{b}" for a, b in SECRET_KEYS if isinstance(data.get(a), dict) and b in data[a]]
        probe_vendors = (data.get("probes") or {}).get("vendors") if isinstance(data.get("probes"), dict) else None
        if isinstance(probe_vendors, dict):
            leaked += [f"probes.vendors.{v}.key" for v, t in probe_vendors.items() if isinstance(t, dict) and "key" in t]
        if leaked:
            fixes = ", ".join(f"WATCHER_{k.upper().replace('.', '__')} or {k}_file" for k in leaked)
            raise ConfigError(
                f"config file {p} holds secret(s) {', '.join(leaked)}: config files get copied and read; "
                f"put them in the environment or a file readable only by watcher instead ({fixes})"
            )

    class _FromFile(Settings):
        @classmethod
        def settings_customise_sources(
            cls,
            settings_cls: type[BaseSettings],
            init_settings: PydanticBaseSettingsSource,
            env_settings: PydanticBaseSettingsSource,
            dotenv_settings: PydanticBaseSettingsSource,
            file_secret_settings: PydanticBaseSettingsSource,
        ) -> tuple[PydanticBaseSettingsSource, ...]:
            return (env_settings, init_settings)

    try:
        settings = _FromFile(**data)
    except ValidationError as e:
        raise ConfigError(_explain(e, path)) from None
    settings.storage.path = database_path(settings.storage.path, path)
    return Settings.model_construct(**{k: getattr(settings, k) for k in Settings.model_fields})


def database_path(configured: Path, config_file: Path | str | None) -> Path:
    """Where the SQLite file is, the same for every command wherever it is run from.

    An absolute ``storage.path`` is used as is. A relative one (the default ``watcher.db``) is taken from
    the state directory when systemd or the container gives one (``$STATE_DIRECTORY``), else from the
    config file's folder, else from the working folder. ``WATCHER_STORAGE__PATH`` set to a relative path
    is from the working folder, as a path typed in a shell is.
    """
    p = Path(configured).expanduser()
    if p.is_absolute():
        return p
    state_dir = os.environ.get("STATE_DIRECTORY", "").split(":")[0]
    if "WATCHER_STORAGE__PATH" in os.environ:
        base = Path.cwd()
    elif state_dir:
        base = Path(state_dir)
    elif config_file is not None:
        base = Path(config_file).expanduser().resolve().parent
    else:
        base = Path.cwd()
    return base / p


def _explain(err: ValidationError, path: Path | str | None) -> str:
    where = f"in {path}" if path else "in the environment"
    lines = [f"invalid configuration ({err.error_count()} problem{'s' if err.error_count() > 1 else ''}):"]
    for e in err.errors():
        loc = ".".join(str(x) for x in e["loc"])
        env_name = "WATCHER_" + "__".join(str(x).upper() for x in e["loc"])
        if e["type"] == "extra_forbidden":
            parent = _model_at(e["loc"][:-1])
            hint = ""
            if parent is not None:
                close = difflib.get_close_matches(str(e["loc"][-1]), list(parent.model_fields), n=1)
                if close:
                    hint = f"; did you mean {close[0]!r}?"
                else:
                    hint = f"; allowed here: {', '.join(parent.model_fields)}"
            lines.append(f"  - {loc}: unknown key {where}{hint}")
        else:
            got = e.get("input")
            shown = "" if isinstance(got, dict | list) else f" (got {got!r})"
            lines.append(f"  - {loc}: {e['msg']}{shown}. Fix it {where} or set {env_name}.")
    return "\n".join(lines)


def _model_at(loc: tuple[Any, ...]) -> type[BaseModel] | None:
    """The model class that a location points into, for "did you mean" hints."""
    model: type[BaseModel] = Settings
    i = 0
    while i < len(loc):
        field = model.model_fields.get(str(loc[i]))
        if field is None:
            return None
        ann = field.annotation
        args = get_args(ann)
        if (
            get_origin(ann) is dict
            and args
            and isinstance(args[-1], type)
            and issubclass(args[-1], BaseModel)
        ):
            model, i = args[-1], i + 2
        elif isinstance(ann, type) and issubclass(ann, BaseModel):
            model, i = ann, i + 1
        else:
            return None
    return model


def read_secret(value: SecretStr | None, path: Path | None, what: str) -> str | None:
    """A secret from the environment (``value``) or from a file; never from the TOML."""
    if value is not None and value.get_secret_value():
        return value.get_secret_value()
    if path is None:
        return None
    try:
        return path.read_text().strip() or None
    except OSError as e:
        raise ConfigError(f"{what}: cannot read secret file {path}: {e.strerror}") from None
