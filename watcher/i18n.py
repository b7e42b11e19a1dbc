"""The words watcher shows people, per language, and times and durations in the team's zone and locale.

Every user-facing string of the alerts (Slack blocks and buttons, email subject
and body) lives in ``watcher/locales/<lang>/messages.toml``, one flat table of
``key = "text"`` with ``$name`` placeholders (:class:`string.Template`). Adding a
language is one folder: ``watcher/locales/<lang>/messages.toml`` with the same
keys (a missing key falls back to English, and ``tests/test_french.py`` shows
what was left out). Dates and durations are formatted by Babel for the locale.
"""

from __future__ import annotations

import logging
import re
import string
import tomllib
from datetime import UTC, datetime, timedelta, tzinfo
from functools import lru_cache
from importlib import resources
from zoneinfo import ZoneInfo

log = logging.getLogger(__name__)

DEFAULT = "en"


@lru_cache(maxsize=1)
def locales() -> tuple[str, ...]:
    """The languages shipped: one folder each under ``watcher/locales``."""
    root = resources.files("watcher").joinpath("locales")
    return tuple(sorted(p.name for p in root.iterdir() if p.is_dir() and p.joinpath("messages.toml").is_file()))


def lang(locale: str | None) -> str:
    """``fr``, ``fr_FR``, ``fr-CA``, ``FR`` → ``fr``; anything not shipped → ``en``."""
    code = re.split(r"[-_.@]", (locale or "").strip().lower(), maxsplit=1)[0]
    return code if code in locales() else DEFAULT


@lru_cache(maxsize=8)
def messages(locale: str) -> dict[str, str]:
    text = resources.files("watcher").joinpath("locales", locale, "messages.toml").read_text("utf-8")
    return _flatten(tomllib.loads(text))


def _flatten(d: dict, prefix: str = "") -> dict[str, str]:
    out: dict[str, str] = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = str(v)
    return out


def t(locale: str | None, key: str, **values: object) -> str:
    """The text for ``key`` in ``locale`` (English when that language lacks it), placeholders filled."""
    loc = lang(locale)
    text = messages(loc).get(key)
    if text is None:
        text = messages(DEFAULT).get(key, key)
    return string.Template(text).safe_substitute({k: str(v) for k, v in values.items()})


def has(locale: str | None, key: str) -> bool:
    return key in messages(lang(locale)) or key in messages(DEFAULT)


def reason_words(text: str, locale: str | None) -> str:
    """A vendor state's reason (watcher/status.py) in the locale when it is one of the fixed phrases
    (``all components operational``, ``no recent data``...); anything else as given."""
    key = "reason." + (text or "").strip().lower().replace(" ", "_")
    return t(locale, key) if text and key in messages(lang(locale)) else text


def zone(name: str | None) -> tzinfo:
    try:
        return ZoneInfo(name or "UTC")
    except (ValueError, OSError, LookupError):
        log.warning("unknown time zone %r: using UTC", name)
        return UTC


def parse_time(value: str | datetime | None) -> datetime | None:
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        dt = value
    else:
        try:
            dt = datetime.fromisoformat(str(value).strip().replace("Z", "+00:00"))
        except ValueError:
            return None
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt


def format_time(value: str | datetime | None, locale: str | None = None, timezone: str | None = None) -> str:
    """A moment in the team's zone, written for its locale: ``Dec 6, 2026, 11:05 CET`` / ``6 déc. 2026, 11:05 CET``.

    Unparsable input is returned as given (it is never a reason to lose an alert).
    """
    dt = parse_time(value)
    if dt is None:
        return "" if value in (None, "") else str(value)[:60]
    from babel import Locale
    from babel.dates import format_date
    from babel.dates import format_time as babel_time

    loc = lang(locale)
    local = dt.astimezone(zone(timezone))
    pattern = str(Locale.parse(loc).datetime_formats["medium"])
    text = pattern.replace("{1}", format_date(local, "medium", locale=loc)).replace(
        "{0}", babel_time(local, "short", locale=loc)
    )
    name = local.tzname() or "UTC"
    return f"{text} {'UTC' + name if name[:1] in '+-' else name}"


def format_duration(seconds: float, locale: str | None = None) -> str:
    """``47 min``, ``1 h 12 min``, ``2 j 3 h``: at most two units, in the locale's short words."""
    from babel.dates import format_timedelta

    loc = lang(locale)
    seconds = int(max(0, seconds))
    if seconds < 60:
        return format_timedelta(timedelta(seconds=max(seconds, 1)), format="short", locale=loc)
    minutes = seconds // 60
    days, rem = divmod(minutes, 1440)
    hours, minutes = divmod(rem, 60)
    parts: list[timedelta] = []
    if days:
        parts = [timedelta(days=days)] + ([timedelta(hours=hours)] if hours else [])
    elif hours:
        parts = [timedelta(hours=hours)] + ([timedelta(minutes=minutes)] if minutes else [])
    else:
        parts = [timedelta(minutes=minutes)]
    return " ".join(
        format_timedelta(p, format="short", locale=loc, threshold=1) for p in parts
    )
