"""The one settings model, read from TOML and overridable by ``WATCHER_*`` variables.

Precedence, highest first: environment (``WATCHER_POLL__INTERVAL=30``, ``__`` nests),
the TOML file (``--config PATH`` or ``WATCHER_CONFIG``), then the defaults here.
Unknown keys are refused so that a typo fails at start instead of being ignored.

Vendors come from the built-in catalog (:mod:`watcher.catalog`); the ``vendors``
table patches them (override a URL, filter components, disable a source) or adds
vendors of the user's own.

The sections are in :mod:`.sections` (what is watched, how watcher runs) and :mod:`.alerting`
(routes, channels, on-call); this module assembles them into :class:`Settings`, loads and explains
errors, and re-exports every section so callers import from ``watcher.config`` alone.
"""

from __future__ import annotations

import difflib
import os
import tomllib
from pathlib import Path
from typing import Any, get_args, get_origin

from pydantic import BaseModel, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from watcher.config.alerting import (
    KIND_NAMES,
    USUAL_TARGET_FIELDS,
    AlertSettings,
    EmailSettings,
    KindName,
    OnCallPerson,
    OnCallSettings,
    QuietHours,
    RouteSettings,
    SlackSettings,
)
from watcher.config.sections import (
    SOURCE_TYPES,
    VALID_ID,
    ClusterSettings,
    ConfigError,
    HeartbeatSettings,
    LogSettings,
    PollSettings,
    ProbeSettings,
    ProbeVendorSettings,
    ReportSettings,
    RetentionSettings,
    SourceSettings,
    SourceType,
    StorageSettings,
    VendorSettings,
    WebSettings,
)

__all__ = [
    "SOURCE_TYPES",
    "SourceType",
    "ConfigError",
    "StorageSettings",
    "PollSettings",
    "SourceSettings",
    "VendorSettings",
    "LogSettings",
    "RetentionSettings",
    "HeartbeatSettings",
    "ReportSettings",
    "ProbeVendorSettings",
    "ProbeSettings",
    "ClusterSettings",
    "WebSettings",
    "KIND_NAMES",
    "USUAL_TARGET_FIELDS",
    "KindName",
    "QuietHours",
    "RouteSettings",
    "SlackSettings",
    "EmailSettings",
    "OnCallPerson",
    "OnCallSettings",
    "AlertSettings",
    "SECRET_KEYS",
    "Settings",
    "load_settings",
    "database_path",
    "read_secret",
]


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
            if not VALID_ID.match(vid):
                raise ValueError(f"vendor id {vid!r} must be lowercase letters, digits, '-' or '_'")
            for sid in vendor.sources:
                if not VALID_ID.match(sid):
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
        probe_vendors = (
            (data.get("probes") or {}).get("vendors") if isinstance(data.get("probes"), dict) else None
        )
        if isinstance(probe_vendors, dict):
            leaked += [
                f"probes.vendors.{v}.key"
                for v, t in probe_vendors.items()
                if isinstance(t, dict) and "key" in t
            ]
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
