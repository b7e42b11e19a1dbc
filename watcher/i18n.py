"""The words watcher shows people, per language, and times and durations in the team's zone and locale.

Every user-facing string of the alerts (Slack blocks and buttons, email subject
and body) lives in ``watcher/locales/<lang>/messages.toml``, one flat table of
``key = "text"`` with ``$name`` placeholders (:class:`string.Template`). Adding a
language is one folder: ``watcher/locales/<lang>/messages.toml`` with the same
keys (a missing key falls back to English, and ``tests/test_french.py`` shows
what was left out). Dates and durations are formatted by Babel for the locale.

Words watcher writes before it knows who reads them (a classifier reason, an incident event, a vendor's
one-line state) are :class:`Said`: the English string, which remembers its key and values so it can be
said again in any language; stored English is read back with :func:`parse`, from the same templates.
"""

from __future__ import annotations

import logging
import re
import string
import tomllib
from collections.abc import Sequence
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
    """A vendor state's reason (watcher/status.py) in the locale.

    A reason made by watcher.status is a :class:`Said` and is said again in ``locale``; a plain string
    (one that went through JSON) is translated when it is one of the fixed phrases
    (``all components operational``, ``no recent data``...); anything else as given.
    """
    if callable(getattr(text, "say", None)):
        return say(text, locale)
    key = "reason." + (text or "").strip().lower().replace(" ", "_")
    return t(locale, key) if text and key in messages(lang(locale)) else text


# -- words that can be said again in another language ---------------------------------------------


class Said(str):
    """English text that remembers how it was made: a message key and its values.

    It *is* the English string (every reader that wants a string, JSON and the logs get the English
    words), and :meth:`say` says it again in another language from the same key and values. Values
    may themselves be :class:`Said` or :class:`Listed` (a status word, a list of parts): each is said
    in the same language. Vendor words (titles, component names, errors) are plain strings, kept as is.
    """

    key: str
    values: dict[str, object]

    def __new__(cls, key: str, /, **values: object) -> Said:
        self = super().__new__(cls, _say(DEFAULT, key, values))
        self.key = key
        self.values = values
        return self

    def say(self, locale: str | None) -> str:
        return _say(locale, self.key, self.values)

    def __reduce__(self):  # copy and pickle keep the key, not only the English
        return (_said, (self.key, self.values))


def _said(key: str, values: dict[str, object]) -> Said:
    return Said(key, **values)


class Listed(str):
    """Items joined with the locale's words: ``sep`` between them, ``last`` (if given) before the last one."""

    items: tuple[object, ...]
    sep: str
    last: str | None

    def __new__(cls, items: Sequence[object], sep: str, last: str | None = None) -> Listed:
        self = super().__new__(cls, _join(DEFAULT, tuple(items), sep, last))
        self.items, self.sep, self.last = tuple(items), sep, last
        return self

    def say(self, locale: str | None) -> str:
        return _join(locale, self.items, self.sep, self.last)

    def __reduce__(self):
        return (Listed, (self.items, self.sep, self.last))


def say(value: object, locale: str | None) -> str:
    """``value`` in ``locale`` when it knows how (a ``str`` with a ``say(locale)`` method, such as
    :class:`Said` and :class:`Listed`), else as given."""
    speak = getattr(value, "say", None)
    if isinstance(value, str) and callable(speak):
        return str(speak(locale))
    return "" if value is None else str(value)


_DECIMAL = re.compile(r"-?[0-9]+\.[0-9]+")
"""A number that code wrote with a decimal point (``f"{ratio:.1f}"``) as one of a message's values."""


def _number(value: object, locale: str | None) -> str:
    """A value said in ``locale``; a decimal number written by code gets the locale's decimal sign
    ("3,9" in French). Stored text keeps the point: it is English, and read back from English."""
    text = say(value, locale)
    if isinstance(value, str) and not callable(getattr(value, "say", None)) and _DECIMAL.fullmatch(text):
        from babel.numbers import get_decimal_symbol  # imported when needed, as the dates are

        sign = get_decimal_symbol(lang(locale))
        if sign != ".":
            return text.replace(".", sign)
    return text


def _say(locale: str | None, key: str, values: dict[str, object]) -> str:
    return t(locale, key, **{k: _number(v, locale) for k, v in values.items()})


def _join(locale: str | None, items: tuple[object, ...], sep: str, last: str | None) -> str:
    words = [say(i, locale) for i in items]
    if last is not None and len(words) > 1:
        return t(locale, sep).join(words[:-1]) + t(locale, last) + words[-1]
    return t(locale, sep).join(words)


@lru_cache(maxsize=256)
def _pattern(key: str) -> re.Pattern[str] | None:
    text = messages(DEFAULT).get(key)
    if text is None:
        return None
    out, pos = [], 0
    for m in re.finditer(r"\$(?:(\$)|(\w+)|\{(\w+)\})", text):
        out.append(re.escape(text[pos : m.start()]))
        name = m.group(2) or m.group(3)
        out.append(re.escape("$") if m.group(1) else f"(?P<{name}>.+?)")
        pos = m.end()
    out.append(re.escape(text[pos:]))
    return re.compile("".join(out), re.DOTALL)


def parse(text: str, key: str) -> dict[str, str] | None:
    """The values of ``text`` when it is the English of ``key`` (``vendor marked it $status`` and
    ``vendor marked it resolved`` → ``{"status": "resolved"}``), else None.

    This is how words stored in English (incident events, classifier reasons) are said again in
    another language: the English text *is* the key and its values, written out.
    """
    pattern = _pattern(key)
    m = pattern.fullmatch(text) if pattern is not None and text else None
    return m.groupdict() if m else None


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


def format_clock(dt: datetime, locale: str | None = None) -> str:
    """The time of day on a 24-hour clock as the locale writes one (Babel's ``Hm`` skeleton): ``13:33``.

    The one way watcher writes a clock time, for Slack fields, emails and playbooks alike: the
    French test alert said "13:33" in its Slack field and "13 h 33" in its playbook (a hand-written
    format), and an English one "1:33 PM" above "13:33". 24-hour, because alerts are read by teams
    across Europe and on-call rotas are written that way; the locale still decides the separators.
    """
    from babel.dates import format_skeleton

    return format_skeleton("Hm", dt, locale=lang(locale))


def format_time(value: str | datetime | None, locale: str | None = None, timezone: str | None = None) -> str:
    """A moment in the team's zone, written for its locale: ``Dec 6, 2026, 11:05 CET`` / ``6 déc. 2026, 11:05 CET``.

    Unparsable input is returned as given (it is never a reason to lose an alert).
    """
    dt = parse_time(value)
    if dt is None:
        return "" if value in (None, "") else str(value)[:60]
    from babel import Locale
    from babel.dates import format_date

    loc = lang(locale)
    local = dt.astimezone(zone(timezone))
    pattern = str(Locale.parse(loc).datetime_formats["medium"])
    text = pattern.replace("{1}", format_date(local, "medium", locale=loc)).replace(
        "{0}", format_clock(local, loc)
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
