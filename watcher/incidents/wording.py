"""The words watcher itself writes about an incident, in any language: classifier reasons, event texts,
the titles of incidents opened from component states.

They are made as :class:`~watcher.i18n.Said` (a message key and its values, see
``watcher/locales/<lang>/messages.toml``): the English text is what the incident stage stores (the store
keeps text, and the CLI, the API and the logs show it as is). To show them in another language, the
functions here read the stored English back into its key and values (:func:`watcher.i18n.parse`, from
the same English templates that wrote it) and say it again in that language. Text they cannot read back
(rows written before these words had keys, a detector's own reason, the vendor's words) is shown as
stored: never lost, never half-translated.

The pure classifier stays pure: it returns a ``Said``, which is a ``str``.
"""

from __future__ import annotations

import re

from watcher import i18n
from watcher.i18n import Listed, Said
from watcher.incidents.model import EventType

KINDS = ("outage", "degradation", "api_change", "hallucination_spike", "maintenance")
CUE_FAMILIES = ("all", "some", "unusable", "slow", "errors", "wrong", "change", "unaffected", "planned")
TITLE_WORDS = ("degraded_performance", "partial_outage", "major_outage")
PROBE_TITLES = ("outage", "degradation", "quality")


# -- classifier reasons ---------------------------------------------------------------------------


def quoted(where: str, words: list[str]) -> Said:
    """``"unable" and "failing" in the updates`` (``where``: ``title`` or ``updates``)."""
    return Said(f"why.in_{where}", words=Listed([Said("why.quoted", word=w) for w in words], "why.and"))


def cues(where: str, families: list[str]) -> Said:
    """``words of errors and words of slowness in the title``."""
    return Said(f"why.in_{where}", words=Listed([Said(f"why.cue.{f}") for f in families], "why.and"))


def signal(key: str, value: str = "") -> Said:
    """A structured signal: ``impact``, ``worst`` or ``component`` with its value; ``maintenance_object``, ``no_body``."""
    if key in ("impact", "worst", "component"):
        return Said(f"why.{key}", value=_Value(key, value))
    return Said(f"why.{key}")


def structural_status(status: str) -> Said:
    return Said("why.structural_status", status=_Value("status", status))


def reason(kind: str, parts: list[Said]) -> Said:
    said: object = Listed(parts, "why.sep") if parts else Said("why.whole")
    return Said("why.result", said=said, gloss=Said(f"why.gloss.{kind}"), kind=Said(f"why.kind.{kind}"))


class _Value(str):
    """A status or impact word from the vendor's vocabulary (``partial outage``, ``critical``): said in the
    locale when it has words for it, else as the vendor wrote it."""

    field: str

    def __new__(cls, field: str, value: str) -> _Value:
        self = super().__new__(cls, value)
        self.field = field
        return self

    def say(self, locale: str | None) -> str:
        code = str(self).replace(" ", "_")
        table = {"impact": "board.impact_word", "status": "status"}.get(self.field, "state")
        key = f"{table}.{code}"
        return i18n.t(locale, key) if i18n.has(locale, key) else str(self)

    def __reduce__(self):
        return (_Value, (self.field, str(self)))


def read_reason(text: str) -> Said | None:
    """A stored classifier reason back into its key and values; None when it is not one watcher wrote."""
    if not text:
        return None
    for key in ("why.structural_object", "why.structural_impact"):
        if text == i18n.t("en", key):
            return Said(key)
    got = i18n.parse(text, "why.structural_status")
    if got is not None:
        return Said("why.structural_status", status=_Value("status", got["status"]))
    got = i18n.parse(text, "why.result")
    if got is None:
        return None
    kind = next((k for k in KINDS if got["kind"] == i18n.t("en", f"why.kind.{k}")), None)
    if kind is None:
        return None
    if got["said"] == i18n.t("en", "why.whole"):
        parts: list[Said] = []
    else:
        read = [_read_part(p) for p in got["said"].split(i18n.t("en", "why.sep"))]
        if any(p is None for p in read):
            return None
        parts = [p for p in read if p is not None]
    out = reason(kind, parts)
    return out if out == text else None  # said back exactly as stored, or not at all


_QUOTED = re.compile(r'"([^"]+)"')


def _read_part(part: str) -> Said | None:
    for where in ("title", "updates"):
        got = i18n.parse(part, f"why.in_{where}")
        if got is None:
            continue
        words = got["words"]
        if words.startswith('"'):
            return quoted(where, _QUOTED.findall(words))
        names = {i18n.t("en", f"why.cue.{f}"): f for f in CUE_FAMILIES}
        families = [names.get(w) for w in words.split(i18n.t("en", "why.and"))]
        if any(f is None for f in families):
            return None
        return cues(where, [f for f in families if f is not None])
    for key in ("maintenance_object", "no_body"):
        if part == i18n.t("en", f"why.{key}"):
            return signal(key)
    for key in ("impact", "worst", "component"):
        got = i18n.parse(part, f"why.{key}")
        if got is not None:
            return signal(key, got["value"])
    return None


def say_reason(text: str, locale: str | None) -> str:
    """An incident's reason (stored English, or a :class:`Said`) in ``locale``; as stored when unreadable.

    The classifier's reasons, and those of watcher's own detectors (a probe incident's "Outage: 4
    probe runs failed since ..."), which were English in a French alert until they had keys too.
    """
    if i18n.lang(locale) == i18n.DEFAULT or not text:
        return text
    if isinstance(text, Said | Listed):
        return text.say(locale)
    said: object | None = read_reason(text) or read_detector(text)
    return i18n.say(said, locale) if said is not None else text


# -- what watcher's own detectors say (watcher/detection/, watcher/probes/) --------------------------

_DETECT = (
    "detect.outage",
    "detect.alarm",
    "detect.since_first",
    "detect.clears",
    "detect.latency_alarm",
    "detect.confirmed",
)
_SENTENCE = re.compile(r"(?<=\.) (?=[A-Z])")


def read_detector(text: str) -> object | None:
    """A detector's stored reason back into its keys and values (:class:`Said`, :class:`Listed`), else None.

    One alarm's explanation is one or more sentences; the probe runner joins two detectors' with
    ``"; "`` (errors and latency), which also occurs inside a sentence, so every cut is tried.
    All or nothing: a reason read only in part is shown as stored, never half-translated.
    """
    if not text:
        return None
    whole = _sentences(text)
    if whole is not None:
        return whole
    parts = text.split("; ")
    for i in range(1, len(parts)):
        first, second = _sentences("; ".join(parts[:i])), _sentences("; ".join(parts[i:]))
        if first is not None and second is not None:
            return Listed([first, second], "detect.sep")
    return None


def _sentences(text: str) -> object | None:
    read = [_detector_sentence(s) for s in _SENTENCE.split(text)]
    if any(r is None for r in read):
        return None
    return read[0] if len(read) == 1 else Listed(read, "detect.space")


def _detector_sentence(text: str) -> Said | None:
    from watcher.detection.base import WORDS

    # the detectors' configured words ("probe requests", "failed (error or timeout)") hold spaces and
    # brackets that make the template's split ambiguous: each is masked as one token while parsing
    english = sorted(((i18n.t("en", f"detect.word.{k}"), k) for k in WORDS), key=lambda p: -len(p[0]))
    masked = text
    for phrase, k in english:
        masked = masked.replace(phrase, f"\x00{k}\x00")

    def unmask(value: str) -> str:
        for phrase, k in english:
            value = value.replace(f"\x00{k}\x00", phrase)
        return value

    for key in _DETECT:
        got = i18n.parse(masked, key)
        if got is None:
            continue
        values: dict[str, object] = {}
        for name, value in got.items():
            whole = re.fullmatch("\x00(\\w+)\x00", value)
            values[name] = Said(f"detect.word.{whole[1]}") if whole else _detector_value(name, unmask(value))
        said = Said(key, **values)
        if said == text:
            return said
    return None


def _detector_value(name: str, value: str) -> object:
    from watcher.detection.base import word

    if name == "base":
        got = i18n.parse(value, "detect.baseline")
        if got is not None:
            rate = i18n.parse(got["rate"], "detect.rate")
            if rate is not None:
                return Said("detect.baseline", rate=Said("detect.rate", n=rate["n"]))
            if got["rate"] == i18n.t("en", "detect.rate_none"):
                return Said("detect.baseline", rate=Said("detect.rate_none"))
    if name == "why":
        for key in ("detect.why_row", "detect.why_expected", "detect.why_tiny"):
            got = i18n.parse(value, key)
            if got is not None:
                return Said(key, **got)
    if name == "now":
        got = i18n.parse(value, "detect.latency_now")
        if got is not None:
            return Said("detect.latency_now", **got)
        if value == i18n.t("en", "detect.latency_none"):
            return Said("detect.latency_none")
    if name == "explain":
        got = i18n.parse(value, "detect.locations")
        if got is not None:
            return Said("detect.locations", **got)
    if value == i18n.t("en", "detect.unknown_time"):
        return Said("detect.unknown_time")
    return word(value)


# -- incident titles watcher writes (component states alone) ---------------------------------------


def component_title(worst: str, names: list[str], shown: int = 3) -> Said:
    """``Partial outage: Chat, API and 2 more`` (``worst``: a component status value)."""
    listed: object = Listed(names[:shown], "incident_title.sep")
    if len(names) > shown:
        listed = Said("incident_title.more", names=listed, n=len(names) - shown)
    return Said(f"incident_title.{worst}", names=listed)


def say_title(text: str, locale: str | None) -> str:
    """An incident title in ``locale`` when watcher wrote it (``Partial outage: Chat``); the vendor's as is."""
    if i18n.lang(locale) == i18n.DEFAULT or not text:
        return text
    for key in PROBE_TITLES:  # the incidents watcher's probes open
        got = i18n.parse(text, f"probe_title.{key}")
        if got is not None:
            return Said(f"probe_title.{key}", name=got["name"]).say(locale)
    for worst in TITLE_WORDS:
        got = i18n.parse(text, f"incident_title.{worst}")
        if got is None:
            continue
        names: object = got["names"]
        more = i18n.parse(str(names), "incident_title.more")
        if more is not None and more["n"].isdigit():
            names = Said("incident_title.more", names=more["names"], n=more["n"])
        return Said(f"incident_title.{worst}", names=names).say(locale)
    return text


# -- event texts ---------------------------------------------------------------------------------

_FIXED = ("probes_cleared", "maintenance_unlisted", "probes_working", "unlisted", "components_ok")


def status_word(value: str) -> Said | str:
    return Said(f"status.{value}") if i18n.has("en", f"status.{value}") else value


def kind_word(value: str) -> Said | str:
    return Said(f"kind_lc.{value}") if value in KINDS else value


def say_event(kind: EventType | str, text: str, locale: str | None) -> str:
    """One event's text in ``locale``: watcher's own words said again, the vendor's as they are."""
    if i18n.lang(locale) == i18n.DEFAULT or not text:
        return text
    said = read_event(EventType(kind), text)
    return i18n.say(said, locale) if said is not None else text


def read_event(kind: EventType, text: str) -> object | None:
    """A stored event text back into what it says (a :class:`Said`, or a title to say), else None."""
    if kind in (EventType.VENDOR_UPDATE, EventType.MAINTENANCE_STARTED):
        got = i18n.parse(text, "probe_title.seen")  # a probe incident's first update: watcher's own words
        if got is not None and kind is EventType.VENDOR_UPDATE:
            return Said("probe_title.seen", reason=_Reason(got["reason"]))
        return None  # the vendor's words
    if kind in (EventType.OPENED, EventType.BACKFILLED):
        return _Title(text)
    if kind is EventType.COMPONENTS_CHANGED:
        if say_title(text, "fr") != text:  # a title watcher wrote: a title, said as such
            return _Title(text)
        return Said("incident_event.components", components=text)
    for key in _FIXED:
        if text == i18n.t("en", f"incident_event.{key}"):
            return Said(f"incident_event.{key}")
    got = i18n.parse(text, "incident_event.merged")
    if got is not None:
        return Said("incident_event.merged", title=got["title"])
    got = i18n.parse(text, "incident_event.probes_confirm")
    if got is not None:
        return Said("incident_event.probes_confirm", what=_Reason(got["what"]))
    for key in ("vendor_marked", "reopened"):
        got = i18n.parse(text, f"incident_event.{key}")
        if got is not None:
            return Said(f"incident_event.{key}", status=status_word(got["status"]))
    got = i18n.parse(text, "incident_event.reclassified")
    if got is not None:
        return Said(
            "incident_event.reclassified",
            old=kind_word(got["old"]),
            new=kind_word(got["new"]),
            version=got["version"],
            reason=_Reason(got["reason"]),
        )
    got = i18n.parse(text, "incident_event.kind_changed")
    if got is not None:
        return Said(
            "incident_event.kind_changed",
            old=kind_word(got["old"]),
            new=kind_word(got["new"]),
            reason=_Reason(got["reason"]),
        )
    got = i18n.parse(text, "incident_event.status_changed")
    if got is not None:
        return Said("incident_event.status_changed", old=status_word(got["old"]), new=status_word(got["new"]))
    return None


class _Title(str):
    def say(self, locale: str | None) -> str:
        return say_title(str(self), locale)


class _Reason(str):
    def say(self, locale: str | None) -> str:
        return say_reason(str(self), locale)
