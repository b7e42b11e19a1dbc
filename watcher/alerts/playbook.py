"""The playbook every alert carries: what the incident blocks, what to do now, where to move work.

A playbook is a Markdown template per kind and locale
(``watcher/locales/<locale>/playbooks/<kind>.md``), filled with the facts of one
incident. The prose lives in the files so a team can rewrite it; the parts that
depend on the moment (the impact list, the healthy alternatives, the saved
prompts, the times) are computed here and substituted as placeholders.

Templates use :class:`string.Template`: ``$name`` or ``${name}``, ``$$`` for a
literal dollar sign. HTML comments (``<!-- … -->``) are removed before
substitution, so each file documents itself in one without it reaching anyone.
The placeholders are listed in :data:`PLACEHOLDERS`.

Overrides: ``overrides_dir/<locale>/<vendor>/<kind>.md`` beats
``overrides_dir/<locale>/<kind>.md`` beats the shipped file. An override that
cannot be read or rendered (unknown placeholder, stray ``$``, not UTF-8, too
big) is skipped with a warning in the log and the next one is used: a typo in a
team's file must never cost the alert its playbook.

Security: vendor text (incident title, component names, the vendor's display
name, alternatives' names and reasons) and prompt file names are untrusted. They
go through :func:`neutralise` before they are placed into the Markdown, which is
later rendered to Slack mrkdwn, HTML email and Apprise Markdown (Discord,
Teams...): no mentions, no links, no tags, no Markdown structure can come from
them. Only this module's own text and the team's templates are trusted.

Only the Markdown subset that :func:`watcher.alerts.slack_render.markdown_to_mrkdwn`
understands is used: ``#`` headings, ``-`` bullets, ``1.`` lists, ``**bold**``,
``>`` quotes and inline ``code``.
"""

from __future__ import annotations

import logging
import math
import re
import stat
import string
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from functools import lru_cache
from importlib import resources
from pathlib import Path
from zoneinfo import ZoneInfo

from watcher import i18n
from watcher.alerts.model import Alternative
from watcher.alerts.neutralise import NEUTRAL_LIMIT as NEUTRAL_LIMIT
from watcher.alerts.neutralise import neutralise as neutralise  # re-exported: renderers import it here
from watcher.alerts.prompt_library import scan_prompt_library, tokens

log = logging.getLogger(__name__)

KINDS = ("outage", "degradation", "api_change", "hallucination_spike", "maintenance")
DEFAULT_LOCALE = i18n.DEFAULT

BUDGET = 2500
"""Target size of a rendered shipped playbook (characters): one Slack section is 3000 after escaping."""
MAX_TEMPLATE_BYTES = 64 * 1024

PLACEHOLDERS: dict[str, str] = {
    "vendor": "vendor id (openai)",
    "vendor_name": "vendor's name (OpenAI)",
    "kind_label": "the kind in words (outage, API change...)",
    "title": "the vendor's incident title",
    "status": "the vendor's status word (investigating, monitoring...)",
    "components": "affected components, comma-separated, or 'not stated'",
    "started": "start time in the team's time zone",
    "elapsed": "how long it has lasted (42 min)",
    "since": "start time and duration: '14:05 CEST (for 42 min)'",
    "window": "maintenance window with where we are in it",
    "window_plain": "maintenance window alone, for the client note",
    "impact": "bullet list of what the team uses this vendor for (vendors.<id>.used_for)",
    "alternatives": "bullet list of the watched vendors healthy now, best first",
    "saved_prompts": "the 'Saved prompts' section, or nothing when no prompt library is set",
    "scope": "what is and is not affected for this team (vendors.<id>.uses), in plain words",
    "fallback_plan": "for the client note: where urgent work went, agreeing with $alternatives (no period)",
}

_VENDOR_DIR = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")


# -- facts -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PlaybookFacts:
    """What a playbook is filled with: one incident at one moment, plus our config."""

    vendor: str
    vendor_name: str
    """Display name; vendor-controlled enough to be treated as untrusted text."""
    kind: str
    """``outage``, ``degradation``, ``api_change``, ``hallucination_spike``, ``maintenance``."""
    title: str
    """The vendor's incident title: untrusted."""
    status: str
    started_at: datetime | None
    components: tuple[str, ...]
    """Vendor component names: untrusted."""
    used_for: tuple[str, ...]
    """From our config: what the team uses this vendor for."""
    alternatives: tuple[Alternative, ...]
    scheduled_for: datetime | None = None
    scheduled_until: datetime | None = None
    timezone: str = "UTC"
    """IANA zone in which times are shown to the team."""
    notice: bool = False
    """Only what the team does not use, or only the admin around the tools (usage page, billing):
    the ``notice`` playbook (``<locale>/notice.md``), not the kind's "expect failed requests"."""
    scope: str = ""
    """What is and is not affected, in the playbook's language (may quote the vendor: untrusted)."""


# -- words ---------------------------------------------------------------------------------------
# The words live in watcher/locales/<lang>/messages.toml ([playbook], [playbook.kind], [status]).


def _t(locale: str, key: str, **values: object) -> str:
    return i18n.t(locale, f"playbook.{key}", **values)


# -- limits ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Limits:
    """How much of each computed list fits; a second, compact set is used when the first is too long."""

    title: int = 200
    impact_lines: int = 6
    component_chars: int = 200
    alternative_lines: int = 6
    alternative_reasons: bool = True
    prompt_lines: int = 6


_NORMAL = _Limits()
_COMPACT = _Limits(
    title=120,
    impact_lines=3,
    component_chars=100,
    alternative_lines=3,
    alternative_reasons=False,
    prompt_lines=3,
)


# -- rendering ---------------------------------------------------------------------------------


def render_playbook(
    facts: PlaybookFacts,
    *,
    locale: str = "en",
    overrides_dir: Path | None = None,
    prompt_library: Path | None = None,
    now: datetime | None = None,
) -> str:
    """Markdown text of the playbook for ``facts.kind``, filled with the facts.

    Never raises because of a team's override file: an override that fails is
    logged and skipped. An unknown locale falls back to English, an unknown kind
    to the outage playbook under a generic heading.
    """
    loc = _locale(locale)
    now = _aware(now) or datetime.now(UTC)
    known_kind = facts.kind in KINDS
    kind = facts.kind if known_kind else "outage"
    if facts.notice:
        kind, known_kind = "notice", True
    prompts = scan_prompt_library(prompt_library) if prompt_library is not None else None

    def values(limits: _Limits) -> dict[str, str]:
        return _values(facts, loc, now, limits, prompt_library is not None, prompts)

    full = values(_NORMAL)
    for label, path in _candidates(overrides_dir, loc, facts.vendor, kind):
        source = _shipped(loc, kind) if path is None else _read_override(path)
        if source is None:
            continue
        try:
            text = _fill(source, full, loc, known_kind)
            if len(text) > BUDGET:  # long lists: the same template with shorter ones
                text = _fill(source, values(_COMPACT), loc, known_kind)
            return text
        except Exception as e:
            if path is None:
                raise  # our own file is broken: a bug for the tests (and the engine's guard) to catch
            log.warning(
                "playbook %s %s does not render (%s): using the next one. Placeholders are %s; "
                "write $$ for a literal dollar sign",
                label,
                path,
                _describe(e),
                ", ".join("$" + k for k in PLACEHOLDERS),
            )
    raise AssertionError("unreachable: the shipped playbook is always the last candidate")  # pragma: no cover


def _candidates(
    overrides_dir: Path | None, loc: str, vendor: str, kind: str
) -> list[tuple[str, Path | None]]:
    """Template sources in order of precedence: (label, path), path None for the shipped file."""
    out: list[tuple[str, Path | None]] = []
    if overrides_dir is not None:
        base = Path(overrides_dir) / loc
        if _VENDOR_DIR.match(vendor or ""):
            out.append(("vendor override", base / vendor / f"{kind}.md"))
        out.append(("team override", base / f"{kind}.md"))
    out.append(("shipped", None))
    return out


def _describe(e: Exception) -> str:
    if isinstance(e, KeyError):
        return f"unknown placeholder ${e.args[0]}"
    return f"{type(e).__name__}: {e}"


_COMMENT = re.compile(r"<!--.*?-->\n?", re.DOTALL)
_HEADING_LINE = re.compile(r"^[ ]{0,3}#{1,6}[ \t].*$", re.MULTILINE)


def _fill(source: str, values: dict[str, str], loc: str, known_kind: bool) -> str:
    """Substitute the values into a template; KeyError/ValueError for an unknown name or a stray $."""
    body = _COMMENT.sub("", source)
    if not known_kind:
        heading = _t(loc, "generic_heading")
        body, n = _HEADING_LINE.subn(lambda _m: heading, body, count=1)
        if not n:
            body = heading + "\n\n" + body
    template = string.Template(body)
    if not template.is_valid():
        raise ValueError("a $ that starts no placeholder")
    unknown = [name for name in template.get_identifiers() if name not in PLACEHOLDERS]
    if unknown:
        raise KeyError(unknown[0])
    text = template.substitute({k: v for k, v in values.items() if k in PLACEHOLDERS})
    text = "\n".join(line.rstrip() for line in text.split("\n"))
    return re.sub(r"\n{3,}", "\n\n", text).strip() + "\n"


@lru_cache(maxsize=32)
def _shipped(loc: str, kind: str) -> str:
    return resources.files("watcher").joinpath("locales", loc, "playbooks", f"{kind}.md").read_text("utf-8")


def _read_override(path: Path) -> str | None:
    """The override's text; None when it does not exist or cannot be used (then a warning is logged)."""
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    except OSError as e:
        log.warning("playbook override %s cannot be read (%s): using the next one", path, e)
        return None
    if not stat.S_ISREG(st.st_mode):
        log.warning("playbook override %s is not a regular file: using the next one", path)
        return None
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_TEMPLATE_BYTES + 1)
    except OSError as e:
        log.warning("playbook override %s cannot be read (%s): using the next one", path, e)
        return None
    if len(data) > MAX_TEMPLATE_BYTES:
        log.warning("playbook override %s is over %d bytes: using the next one", path, MAX_TEMPLATE_BYTES)
        return None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        log.warning("playbook override %s is not UTF-8 (%s): using the next one", path, e)
        return None


def _locale(locale: str | None) -> str:
    """``fr``, ``fr_FR``, ``fr-CA``, ``FR`` → ``fr``; anything not shipped (``watcher/locales``) → ``en``."""
    return i18n.lang(locale)


def _aware(dt: datetime | None) -> datetime | None:
    if dt is None:
        return None
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt


def _zone(name: str) -> tzinfo:
    try:
        return ZoneInfo(name or "UTC")
    except (ValueError, OSError, LookupError):  # ZoneInfoNotFoundError is a KeyError
        log.warning("unknown time zone %r for playbooks: using UTC", name)
        return UTC


# -- the values --------------------------------------------------------------------------------


def _values(
    facts: PlaybookFacts,
    loc: str,
    now: datetime,
    limits: _Limits,
    library_set: bool,
    prompts: list[tuple[str, str]] | None,
) -> dict[str, str]:
    zone = _zone(facts.timezone)
    now_local = now.astimezone(zone)
    vendor_name = neutralise(facts.vendor_name or facts.vendor, limit=60)
    vendor = neutralise(facts.vendor, limit=64)
    values = {
        "vendor": vendor,
        "vendor_name": vendor_name,
        "kind_label": _t(
            loc, f"kind.{facts.kind}" if i18n.has(loc, f"playbook.kind.{facts.kind}") else "kind.unknown"
        ),
        "title": neutralise(facts.title, limit=limits.title) or "—",
        "status": _status(facts.status, loc),
        "components": _components(facts.components, loc, limits.component_chars),
        "impact": _impact(facts.used_for, loc, limits.impact_lines, vendor, vendor_name),
        "alternatives": _alternatives(facts.alternatives, facts.vendor, loc, limits),
        "saved_prompts": (
            _saved_prompts(prompts, facts.used_for, loc, limits.prompt_lines) if library_set else ""
        ),
        "scope": neutralise(facts.scope, limit=600),
        # the client note says what the alternatives list shows: backup tools only when one is healthy
        "fallback_plan": _t(
            loc, "plan_backup" if _healthy(facts.alternatives, facts.vendor) else "plan_manual"
        ),
    }
    values.update(_since(_aware(facts.started_at), now_local, loc))
    values.update(_window(facts, now_local, loc))
    return values


def _status(status: str, loc: str) -> str:
    word = neutralise((status or "unknown").strip().lower(), limit=40)
    if loc != DEFAULT_LOCALE and i18n.has(loc, f"status.{word}"):
        return i18n.t(loc, f"status.{word}")
    return word.replace("_", " ")


def _components(components: tuple[str, ...], loc: str, max_chars: int) -> str:
    names = _unique(neutralise(c, limit=60) for c in components or ())
    if not names:
        return _t(loc, "not_stated")
    shown: list[str] = []
    used = 0
    for name in names:
        if shown and used + len(name) + 2 > max_chars:
            break
        shown.append(name)
        used += len(name) + 2
    text = ", ".join(shown)
    if len(shown) < len(names):
        text += ", " + _t(loc, "and_more", n=len(names) - len(shown))
    return text


def _impact(used_for: tuple[str, ...], loc: str, max_lines: int, vendor: str, vendor_name: str) -> str:
    tasks = _unique(neutralise(t, limit=80) for t in used_for or ())
    if not tasks:
        return _t(loc, "no_used_for", vendor=vendor or "ID", vendor_name=vendor_name)
    if len(tasks) > max_lines:
        shown, rest = tasks[: max_lines - 1], len(tasks) - (max_lines - 1)
        return "\n".join([f"- {t}" for t in shown] + [_t(loc, "more_used_for", n=rest, vendor=vendor)])
    return "\n".join(f"- {t}" for t in tasks)


def _unique(items) -> list[str]:
    seen: set[str] = set()
    out: list[str] = []
    for item in items:
        key = item.casefold()
        if item and key not in seen:
            seen.add(key)
            out.append(item)
    return out


_HEALTH_RANK = {"operational": 0, "degraded": 1, "degraded_performance": 1}


def _healthy(alternatives: tuple[Alternative, ...], affected: str) -> bool:
    affected_key = (affected or "").strip().lower()
    return any(
        _HEALTH_RANK.get((a.state or "").strip().lower()) is not None
        and (a.vendor or "").strip().lower() != affected_key
        for a in alternatives or ()
    )


def _alternatives(alternatives: tuple[Alternative, ...], affected: str, loc: str, limits: _Limits) -> str:
    affected_key = (affected or "").strip().lower()
    seen: set[str] = {affected_key}
    healthy: list[tuple[int, int, float, int, Alternative]] = []
    for i, alt in enumerate(alternatives or ()):
        key = (alt.vendor or "").strip().lower()
        rank = _HEALTH_RANK.get((alt.state or "").strip().lower())
        if rank is None or key in seen:
            continue
        seen.add(key)
        latency = _latency(alt.latency_ms)
        healthy.append((rank, -(alt.match or 0), latency if latency is not None else math.inf, i, alt))
    if not healthy:
        return _t(loc, "none_healthy")
    healthy.sort(key=lambda h: h[:4])  # healthy, then closest to the same job, then fastest
    lines = []
    cap = limits.alternative_lines
    shown = healthy if len(healthy) <= cap else healthy[: cap - 1]
    for rank, _match, _lat, _i, alt in shown:
        name = neutralise(alt.name or alt.vendor, limit=40) or neutralise(alt.vendor, limit=40)
        colon = " : " if loc == "fr" else ": "
        line = f"- **{name}**{colon}" + _t(loc, "operational" if rank == 0 else "degraded")
        latency = _latency(alt.latency_ms)
        if latency is not None:
            line += " · " + _format_latency(latency, loc)
        if rank and limits.alternative_reasons and alt.reason and alt.reason.strip():
            line += " · " + neutralise(alt.reason, limit=60)
        if limits.alternative_reasons and alt.note and alt.note.strip():
            line += " · " + neutralise(alt.note, limit=140)
        lines.append(line)
    if len(shown) < len(healthy):
        lines.append(_t(loc, "more_alternatives", n=len(healthy) - len(shown)))
    return "\n".join(lines)


def _latency(ms: float | None) -> float | None:
    try:
        value = float(ms)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) and value >= 0 else None


def _format_latency(ms: float, loc: str) -> str:
    if ms < 1000:
        return f"{ms:.0f} ms"
    text = f"{ms / 1000:.1f} s"
    return text.replace(".", ",") if loc == "fr" else text


# -- times ---------------------------------------------------------------------------------------


def _duration(seconds: float, loc: str) -> str:
    minutes = int(max(0.0, seconds) // 60)
    if minutes < 1:
        return _t(loc, "less_than_minute")
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        if loc == "fr":
            return f"{hours} h {minutes:02d}" if minutes else f"{hours} h"
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    days, hours = divmod(hours, 24)
    day = "j" if loc == "fr" else "d"
    return f"{days} {day} {hours} h" if hours else f"{days} {day}"


def _clock(dt: datetime, loc: str) -> str:
    """As every other time watcher writes (:func:`watcher.i18n.format_clock`), so the playbook and
    the Slack fields above it never show the same moment two ways."""
    from watcher.i18n import format_clock

    return format_clock(dt, loc)


def _day(dt: datetime, loc: str, now_local: datetime) -> str:
    from babel.dates import format_date

    text = format_date(dt, "EEE d MMM", locale=loc)
    if abs((dt.date() - now_local.date()).days) > 300:
        text += f" {dt.year}"
    return text


def _zone_name(dt: datetime) -> str:
    name = dt.tzname() or "UTC"
    return f"UTC{name}" if name[:1] in "+-" else name


def _when(dt: datetime, loc: str, now_local: datetime) -> str:
    """Time in the team's zone, with the day when it is not today."""
    clock = f"{_clock(dt, loc)} {_zone_name(dt)}"
    if dt.date() == now_local.date():
        return clock
    if loc == "fr":
        return f"le {_day(dt, loc, now_local)} à {clock}"
    return f"{_day(dt, loc, now_local)} {clock}"


def _since(started: datetime | None, now_local: datetime, loc: str) -> dict[str, str]:
    if started is None:
        text = _t(loc, "not_stated")
        return {"started": text, "elapsed": "?", "since": text}
    local = started.astimezone(now_local.tzinfo)
    elapsed = (now_local - local).total_seconds()
    started_text = _when(local, loc, now_local)
    elapsed_text = _duration(elapsed, loc)
    key = "since" if elapsed >= 0 else "since_future"
    return {
        "started": started_text,
        "elapsed": elapsed_text,
        "since": _t(loc, key, started=started_text, elapsed=elapsed_text),
    }


def _window(facts: PlaybookFacts, now_local: datetime, loc: str) -> dict[str, str]:
    start = _aware(facts.scheduled_for) or (_aware(facts.started_at) if facts.kind == "maintenance" else None)
    end = _aware(facts.scheduled_until)
    zone = now_local.tzinfo
    if start is None:
        text = _t(loc, "window_unknown")
        return {"window": text, "window_plain": text}
    s = start.astimezone(zone)
    s_text = f"{_day(s, loc, now_local)}{' à ' if loc == 'fr' else ' '}{_clock(s, loc)}"
    if end is None:
        plain = _t(loc, "window_from", start=f"{s_text} {_zone_name(s)}")
        if s <= now_local:
            note = _t(loc, "in_progress")
        else:
            note = _t(loc, "starts_in", d=_duration((s - now_local).total_seconds(), loc))
        return {"window": f"{plain} ({note})", "window_plain": plain}
    e = end.astimezone(zone)
    if e.date() == s.date():
        plain = _t(
            loc, "window_same_day", day=_day(s, loc, now_local), start=_clock(s, loc), end=_clock(e, loc)
        )
    else:
        e_text = f"{_day(e, loc, now_local)}{' à ' if loc == 'fr' else ' '}{_clock(e, loc)}"
        plain = _t(loc, "window_days", start=s_text, end=e_text)
    plain += f" {_zone_name(e) if _zone_name(e) == _zone_name(s) else _zone_name(s) + '/' + _zone_name(e)}"
    if now_local < s:
        note = _t(loc, "starts_in", d=_duration((s - now_local).total_seconds(), loc))
    elif now_local < e:
        note = _t(loc, "in_progress_until", d=_duration((e - now_local).total_seconds(), loc))
    else:
        note = _t(loc, "over")
    return {"window": f"{plain} ({note})", "window_plain": plain}


# -- saved prompts -------------------------------------------------------------------------------


def _saved_prompts(
    prompts: list[tuple[str, str]] | None, used_for: tuple[str, ...], loc: str, max_lines: int
) -> str:
    if prompts is None:
        return _t(loc, "prompts_missing")
    if not prompts:
        return _t(loc, "prompts_empty")
    wanted: set[str] = set()
    for task in used_for or ():
        wanted |= tokens(str(task))
    scored = []
    for rel, first in prompts:
        name_hits = len(wanted & tokens(rel.rsplit(".", 1)[0]))
        line_hits = len(wanted & tokens(first))
        if name_hits or line_hits:
            scored.append((-(2 * name_hits + line_hits), rel))
    if scored:
        heading = _t(loc, "prompts_heading")
        chosen = [rel for _score, rel in sorted(scored)[:max_lines]]
    else:
        heading = _t(loc, "prompts_heading_any")
        chosen = [rel for rel, _first in prompts[: min(5, max_lines)]]
    return heading + "\n" + "\n".join(f"- `{neutralise(rel, limit=80)}`" for rel in chosen)
