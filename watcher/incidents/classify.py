"""Incident classifier: one `IncidentKind` per incident, with a short reason a human can check.

A pure function over `Evidence`, no I/O and no learned weights. It works in three steps:

1. **Maintenance first.** Planned work is decided by structure (the source says it is a
   maintenance, the impact is ``maintenance``, the status is a maintenance status and the
   text talks about maintenance) or by unmistakable planned-work wording in the title.
2. **Scoring pass.** One ordered table of rules (regex, kind, weight, label) is run over the
   title and over the update bodies. Rules earlier in the table claim the words they match,
   so that specific phrases win over the generic words inside them ("partially unavailable"
   is a degradation phrase, and its "unavailable" is then no longer outage evidence;
   "degraded output quality" is a hallucination phrase, not a "degraded" one). Each rule counts
   once per incident, at its best place: a title match weighs ``TITLE``, a body match
   ``BODY`` (bodies are long and repeat or mention many things). Non-text signals are added:
   component statuses (a component in ``major_outage`` is strong outage evidence) and the
   vendor's impact (``critical`` is only a tie-breaker toward outage, vendors over-rate).
   Ambiguous outage words ("service disruption", "all models" in a title) count only when that
   severity confirms them; unambiguous ones ("completely unavailable") count fully even in a body.
   Announcement kinds need a minimum of evidence, so a stray word in a long body does not win.
3. **Decision.** The kind with the highest score wins; ties go to the less alarming reading
   (degradation before outage). With no signal at all the incident is a degradation: something
   was declared, nothing says it is unusable.

The reason names the words or signals that decided, e.g.
``"elevated errors" in title: some requests fail (degradation)``.
"""

from __future__ import annotations

import html
import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from watcher.model import Classification, ComponentStatus, Evidence, IncidentKind, IncidentStatus

__all__ = ["classify", "classify_record"]

OUTAGE = IncidentKind.OUTAGE
DEGRADATION = IncidentKind.DEGRADATION
API_CHANGE = IncidentKind.API_CHANGE
HALLUCINATION = IncidentKind.HALLUCINATION_SPIKE
MAINTENANCE = IncidentKind.MAINTENANCE

# Weights of one piece of evidence (before the title/body multiplier).
STRONG = 4.0
CLEAR = 3.0
QUALIFIER = 3.5  # "some users", "a subset of": outweighs a plain "unavailable" in the same place
MODERATE = 2.0
WEAK = 1.0
GENERIC = 0.25

# Where a word was found.
TITLE = 1.0
BODY = 0.5

CRITICAL_IMPACT_WEIGHT = 1.0
MAJOR_OUTAGE_COMPONENT_WEIGHT = STRONG
DEGRADED_COMPONENT_WEIGHT = MODERATE
MAINTENANCE_COMPONENT_WEIGHT = MODERATE

# An announcement kind (maintenance, api_change, hallucination_spike) needs at least this much evidence
# to win: one weak word in a long body ("replacement", "corrupted") does not make an announcement.
MIN_ANNOUNCEMENT_SCORE = 1.0
ANNOUNCEMENT_KINDS = frozenset({MAINTENANCE, API_CHANGE, HALLUCINATION})

# Ties are broken toward the first kind here: specific announcements, then the less alarming reading.
TIE_ORDER = (MAINTENANCE, API_CHANGE, HALLUCINATION, DEGRADATION, OUTAGE)

MAINTENANCE_STATUSES = frozenset(
    {IncidentStatus.SCHEDULED, IncidentStatus.IN_PROGRESS, IncidentStatus.VERIFYING, IncidentStatus.COMPLETED}
)
# Statuses of the incident lifecycle: the vendor filed it as unplanned, whatever the title says
# ("Elevated errors after scheduled maintenance" is an incident).
INCIDENT_STATUSES = frozenset(
    {
        IncidentStatus.INVESTIGATING,
        IncidentStatus.IDENTIFIED,
        IncidentStatus.MONITORING,
        IncidentStatus.RESOLVED,
        IncidentStatus.POSTMORTEM,
    }
)

_MONTH = r"(?:jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)[a-z]*\.?"


@dataclass(frozen=True, slots=True)
class Rule:
    """One line of the rule table: where ``pattern`` matches, it is ``weight`` evidence for ``kind``."""

    pattern: re.Pattern[str]
    kind: IncidentKind
    weight: float
    label: str
    title_only: bool = False
    """Only meaningful in a title (a body says "for all users" when recovery is complete)."""
    needs_severity: bool = False
    """Ambiguous outage cue: counts only when impact is critical or a component is in major outage."""
    full_weight_in_body: bool = False
    """Unambiguous even in a body ("completely unavailable"): titles are often left as first posted."""


def _rule(
    pattern: str,
    kind: IncidentKind,
    weight: float,
    label: str,
    *,
    title_only: bool = False,
    needs_severity: bool = False,
    full_weight_in_body: bool = False,
) -> Rule:
    return Rule(
        re.compile(pattern, re.IGNORECASE),
        kind,
        weight,
        label,
        title_only,
        needs_severity,
        full_weight_in_body,
    )


PLANNED_WORK = _rule(
    r"\b(?:scheduled|planned)\s+(?:\w+\s+)?(?:maintenance|downtime|upgrade|work|migration)\b"
    r"|\bmaintenance\s+(?:window|is\s+(?:currently\s+)?in\s+progress|will\s+begin)\b"
    r"|\bupgrade\s+window\b|\bwill\s+be\s+performing\s+(?:a\s+)?(?:scheduled\s+)?maintenance\b"
    r"|\bmaintenance\s+(?:programm|planifi|pr[ée]vue)\w*|\bop[ée]ration\s+de\s+maintenance\b"
    r"|\btravaux\s+(?:programm|planifi)\w*|计划维护|例行维护",
    MAINTENANCE,
    STRONG,
    "planned work announced in advance",
)

# Ordered: earlier rules claim their words first. Keep the specific phrases above the generic
# words they contain (see the module docstring).
RULES: tuple[Rule, ...] = (
    # --- maintenance: planned work ------------------------------------------------------------
    PLANNED_WORK,
    # --- api_change: announced changes by design ----------------------------------------------
    _rule(r"\bdeprecat\w*|\bd[ée]pr[ée]ci\w*|\bobsol[eè]te\b|弃用", API_CHANGE, STRONG, "deprecation notice"),
    _rule(
        r"\bretir(?:e|ed|es|ing|ement)\b|\bsera\s+retir[ée]e?s?\b|\bretrait\b|淘汰|停用",
        API_CHANGE,
        STRONG,
        "retirement of a model or feature",
    ),
    _rule(r"\bsunset(?:s|ting)?\b", API_CHANGE, STRONG, "sunset of a model or feature"),
    _rule(
        rf"\bshut\s?down\s+(?:date|on\b|scheduled|schedule|\(?\d[\d/-]*|{_MONTH}\s*\d{{1,2}}(?:,?\s*\d{{4}})?)"
        r"|\b(?:scheduled|planned)\s+for\s+shut\s?down\b|\bwill\s+(?:be\s+)?shut\s?down\b"
        r"|\bdate\s+d['’]arr[êe]t\b|关闭时间表",
        API_CHANGE,
        STRONG,
        "shutdown date announced",
    ),
    _rule(
        r"\bend[- ]of[- ](?:life|support)\b|\bfin\s+de\s+(?:vie|support)\b", API_CHANGE, STRONG, "end of life"
    ),
    _rule(
        r"\bbreaking\s+changes?\b|\bschema\s+(?:change|update)s?\b|\bchangement\s+(?:cassant|de\s+sch[ée]ma)",
        API_CHANGE,
        STRONG,
        "breaking or schema change",
    ),
    _rule(
        r"\b(?:new|now)\s+required\s+(?:[\w-]+\s+){0,2}?(?:parameter|field|header|argument)s?\b"
        r"|\b(?:parameter|field|header|argument)s?\s+(?:is|are|will\s+be|becomes?)\s+(?:now\s+)?required\b",
        API_CHANGE,
        CLEAR,
        "new required parameter",
    ),
    _rule(
        r"\b(?:changes?|changed|changing|update)\s+(?:to\s+)?(?:the\s+)?defaults?\b"
        r"|\bdefaults?\s+(?:\w+\s+){0,3}(?:will\s+)?(?:change[sd]?|changing|switch\w*)\b"
        r"|\bchangement\s+(?:de\s+la\s+)?valeur\s+par\s+d[ée]faut",
        API_CHANGE,
        CLEAR,
        "changed default",
    ),
    _rule(
        r"\b(?:will\s+be\s+|been\s+)?renamed\b|\bsera\s+renomm[ée]", API_CHANGE, CLEAR, "model or API renamed"
    ),
    _rule(
        r"\b(?:will\s+)?no\s+longer\s+(?:be\s+)?(?:available|supported|accessible|accepted)\b"
        r"|\bwill\s+be\s+removed\b|\bremoving\s+support\b|\bsupport\s+(?:will\s+end|ends)\b"
        r"|\bne\s+sera\s+plus\s+(?:disponible|pris\s+en\s+charge)",
        API_CHANGE,
        CLEAR,
        "announced end of availability",
    ),
    _rule(
        r"\b(?:changes?|updates?)\s+to\s+(?:the\s+)?(?:\w+\s+)?(?:rate\s+limits?|pricing|parameters?"
        r"|response\s+format|request\s+format)\b",
        API_CHANGE,
        MODERATE,
        "announced change to limits or formats",
        title_only=True,
    ),
    _rule(
        r"\bwill\s+continue\s+to\s+be\s+(?:availa|support)\w*|\bupdates?\s+to\s+availability\b"
        r"|\bnotified\s+(?:developers|customers|users)\b",
        API_CHANGE,
        MODERATE,
        "availability change announced to developers",
    ),
    _rule(
        r"\brecommended\s+replacement\b|\breplacements?\b|\blegacy\s+models?\b|\bmigrate\s+to\b",
        API_CHANGE,
        WEAK,
        "replacement or migration named",
    ),
    # --- hallucination_spike: it answers, but wrongly -----------------------------------------
    _rule(
        r"\b(?:wrong|incorrect|inaccurate|erroneous|nonsensical|nonsense|garbled|corrupted|gibberish|bizarre"
        r"|unexpected|unusual|strange|low[- ]quality|poor[- ]quality|lower[- ]quality|hallucinated)\s+"
        r"(?:(?!errors?\b|failures?\b|timeouts?\b)\w+\s+){0,2}?(?:responses?|answers?|outputs?|completions?|results?|depictions?|content|text"
        r"|characters?|tokens?|images?|generations?|translations?|transcriptions?|replies"
        r"|information|citations?|summar(?:y|ies)|embeddings?|vectors?|predictions?|classifications?)\b",
        HALLUCINATION,
        STRONG,
        "answers are wrong or garbled",
    ),
    _rule(
        r"\b(?:output|response|answer|generation)s?\s+(?:corruption|quality)\b"
        r"|\b(?:degraded|reduced|lower|decreased|poor|worse|degradation\s+(?:in|of))\s+"
        r"(?:\w+\s+)?(?:quality|accuracy)\b|\bquality\s+(?:degradation|regression|issues?)\b",
        HALLUCINATION,
        STRONG,
        "lower output quality",
    ),
    _rule(
        r"\bhallucinat\w*|\bgibberish\b|\bnonsensical\b|\bgarbled\b|\b(?:wrong|incorrect)\s+language\b|乱码"
        r"|\b(?:responses?|answers?|outputs?|completions?)\s+(?:\w+\s+){0,3}?(?:wrong|incorrect|inaccurate"
        r"|nonsensical|garbled|corrupted|incoherent|unrelated|irrelevant)\b",
        HALLUCINATION,
        STRONG,
        "nonsensical output",
    ),
    _rule(
        r"\br[ée]ponses?\s+(?:\w+\s+)?(?:incorrecte|incoh[ée]rente|erron[ée]e|inexacte|absurde)s?\b"
        r"|\bqualit[ée]\s+d[ée]grad[ée]e|\bd[ée]gradation\s+de\s+la\s+qualit[ée]|\bincoh[ée]rent\w*",
        HALLUCINATION,
        STRONG,
        "answers are wrong or of lower quality",
    ),
    _rule(r"\bcorrupt(?:ed|ion)\b", HALLUCINATION, MODERATE, "corrupted output"),
    # --- degradation phrases that contain outage words (must come before the outage rules) -----
    _rule(
        r"\bpartial(?:ly)?\s+(?:outage|unavailab\w*|down|disruption|degradation|available)\b|\bpartly\s+\w+"
        r"|\bpartiellement\s+(?:indisponible|hors\s+service|disponible)\w*|\bpanne\s+partielle\b"
        r"|部分中断|部分不可用",
        DEGRADATION,
        CLEAR,
        "only part of the service is affected",
    ),
    _rule(
        r"\b(?:elevated|increased|higher|high|heightened|rising|raised|more)\s+(?:\w+\s+){0,2}?"
        r"(?:error\s+rates?|errors?|rates?\s+of\s+errors|failure\s+rates?|failures|timeouts)\b"
        r"|\btaux\s+d['’]erreurs?\s+(?:[ée]lev[ée]|en\s+hausse)|\berreurs?\s+(?:en\s+hausse|accrues)",
        DEGRADATION,
        CLEAR,
        "some requests fail",
    ),
    _rule(
        r"\b(?:elevated|increased|higher|high)\s+(?:\w+\s+)?(?:latency|latencies|response\s+times?)\b",
        DEGRADATION,
        CLEAR,
        "responses are slower",
    ),
    # --- outage: unusable for the users it concerns ------------------------------------------
    _rule(
        r"\ball\s+(?:\w+\s+)?(?:requests|calls|jobs)\s+(?:are\s+|were\s+)?fail\w*"
        r"|\b(?:major|full|complete|total|global|widespread|significant)\s+outage\b"
        r"|\b(?:completely|entirely|fully|totally)\s+(?:unavailable|down|offline|inaccessible)\b"
        r"|\b(?:unavailable|down|offline)\s+for\s+all\s+(?:users|customers)\b"
        r"|\binterruption\s+(?:totale|compl[eè]te)\b",
        OUTAGE,
        STRONG,
        "everything fails",
        full_weight_in_body=True,
    ),
    _rule(
        r"\b(?:errors?|failures?|failing|fails?|failed|unable)\s+(?:when\s+|while\s+|to\s+)?"
        r"(?:logging|signing|log|sign)\s+(?:in|on|into)\b"
        r"|\b(?:log-?in|sign-?in)\s+(?:errors|failures|failing|is\s+failing|broken)\b",
        OUTAGE,
        CLEAR,
        "users cannot sign in",
    ),
    _rule(r"(?<!partial )\boutages?\b|\bpanne\b", OUTAGE, CLEAR, "outage"),
    _rule(
        r"\bunable\s+to\b|\bnot\s+able\s+to\b|\b(?:cannot|can't|can\s+not|could\s+not|couldn't)\b"
        r"|\bimpossible\s+de\b|无法",
        OUTAGE,
        CLEAR,
        "users cannot use it",
    ),
    _rule(
        r"(?<!partially )(?<!partly )\bunavailab(?:le|ility)\b"
        r"|(?<!partiellement )\bindisponib(?:le|les|ilit[ée])\b|(?<!部分)不可用|宕机",
        OUTAGE,
        CLEAR,
        "unavailable",
    ),
    _rule(
        r"\b(?:not|isn't|aren't|wasn't|weren't)\s+(?:loading|working|responding|accessible|available|reachable"
        r"|starting|opening|functional)\b|\bstopped\s+working\b|\bnon[- ]functional\b"
        r"|\bne\s+(?:fonctionne|r[ée]pond)\s+(?:plus|pas)\b",
        OUTAGE,
        CLEAR,
        "not working",
    ),
    _rule(
        r"\b(?:is|are|was|were|went|goes|going|been|being)\s+(?:\w+\s+)?down\b"
        r"|(?<!shut )(?<!slow )\bdown(?=\s*(?:$|[.,;:!)\]（(]|for\b|in\b|across\b))",
        OUTAGE,
        CLEAR,
        "down",
    ),
    _rule(
        r"\b(?:offline|inaccessible|unreachable)\b|\bhors\s+(?:service|ligne)\b",
        OUTAGE,
        CLEAR,
        "offline",
    ),
    _rule(r"\bdisabled\b|\bd[ée]sactiv[ée]e?s?\b", OUTAGE, CLEAR, "feature disabled"),
    _rule(r"\b(?:paused|suspended|halted)\b|\bsuspendue?s?\b", OUTAGE, MODERATE, "feature taken offline"),
    _rule(
        r"\bfail(?:s|ed|ing)?\s+to\s+(?:load|start|open|connect|respond|launch|run)\b",
        OUTAGE,
        MODERATE,
        "fails to start",
    ),
    _rule(r"\bfailing\b", OUTAGE, 1.5, "failing"),
    _rule(r"(?<!部分)中断", OUTAGE, MODERATE, "interruption"),
    _rule(
        r"\b(?:service\s+)?disruption\b|\binterruption\s+de\s+service\b",
        OUTAGE,
        CLEAR,
        "service disruption",
        needs_severity=True,
    ),
    _rule(
        r"\b(?:all|every)\s+(?:\w+\s+)?(?:users|models|customers|requests|regions|services|products|plans"
        r"|accounts|endpoints)\b|\b(?:completely|entirely|globally)\b|\btous\s+les\s+utilisateurs\b",
        OUTAGE,
        CLEAR,
        "affects everyone",
        title_only=True,
        needs_severity=True,
    ),
    # --- degradation: it works, but worse -----------------------------------------------------
    _rule(
        r"\bdegraded\b|\bdegradation\b|\bperformance\s+(?:issues?|problems?|impacted)\b"
        r"|\bd[ée]grad(?:ation|[ée]e?s?)\b|性能下降",
        DEGRADATION,
        CLEAR,
        "works, but worse",
    ),
    _rule(
        r"\blatenc(?:y|ies)\b|\bslow(?:er|ness|ly|downs?)?\b|\blenteurs?\b|\bralenti\w*|\blatence\b"
        r"|延迟|缓慢|变慢",
        DEGRADATION,
        CLEAR,
        "responses are slower",
    ),
    _rule(
        r"\bintermittent\w*|\bsporadic\w*|\boccasional\w*|\bflaky\b|\bpartial(?:ly)?\b|\bpartiel\w*|波动",
        DEGRADATION,
        CLEAR,
        "intermittent or partial",
    ),
    _rule(
        r"\bsome\s+(?:of\s+(?:our|the)\s+)?(?:\w+\s+)?(?:users|customers|requests|accounts|people|regions|plans"
        r"|uploads|tasks|conversations)\b|\b(?:a\s+)?(?:small\s+)?(?:subset|portion|fraction|percentage"
        r"|share)\s+of\b|\bsmall\s+number\s+of\b|\bcertain(?:e?s)?\s+(?:users|customers|regions|utilisateurs"
        r"|clients)\b|\bune\s+partie\s+des?\b",
        DEGRADATION,
        QUALIFIER,
        "only some users or requests",
    ),
    _rule(
        r"\bdelay(?:s|ed)?\b|\bstuck\b|\bbacklog\b|\btaking\s+longer\b|\blonger\s+than\s+(?:usual|normal|expected)\b|\bretard\w*",
        DEGRADATION,
        MODERATE,
        "delays",
    ),
    _rule(r"\btime(?:outs?|d\s+out)\b", DEGRADATION, MODERATE, "timeouts"),
    _rule(r"\bperturbations?\b", DEGRADATION, MODERATE, "disturbance"),
    _rule(r"\berror\s+rates?\b", DEGRADATION, 2.5, "some requests fail"),
    _rule(r"\b(?:instability|unstable|instabilit[ée])\b", DEGRADATION, WEAK, "instability"),
    _rule(r"\berrors?\b|\berreurs?\b|异常", DEGRADATION, 1.5, "errors, nothing says every request fails"),
    _rule(r"\bissues?\b|\bproblems?\b|\bprobl[eè]mes?\b", DEGRADATION, GENERIC, "vague issue"),
)


@dataclass(frozen=True, slots=True)
class _Signal:
    kind: IncidentKind
    score: float
    description: str
    """Human text, e.g. '"elevated errors" in title: some requests fail'."""


_TAG = re.compile(r"<[^>]+>")
_SPACE = re.compile(r"\s+")


def _normalise(text: str) -> str:
    """Plain lowercase text: HTML tags and entities removed, typographic quotes and spaces unified."""
    text = html.unescape(_TAG.sub(" ", text))
    text = unicodedata.normalize("NFKC", text).replace("’", "'").replace("‘", "'")
    return _SPACE.sub(" ", text).strip().lower()


def _match_section(text: str, claimed: list[tuple[int, int]], rule: Rule) -> str | None:
    """First match of ``rule`` in ``text`` outside the spans claimed by earlier rules.

    Every such match is claimed, so that later, more generic rules do not count the same words again.
    """
    first = None
    for match in rule.pattern.finditer(text):
        start, end = match.span()
        if start == end or any(start < c_end and c_start < end for c_start, c_end in claimed):
            continue
        claimed.append((start, end))
        if first is None:
            first = match.group(0).strip()
    return first


def _text_signals(evidence: Evidence, severe: bool) -> list[_Signal]:
    sections = [("title", TITLE, _normalise(evidence.title or ""))]
    body = " \n ".join(_normalise(b) for b in evidence.bodies if b)
    if body:
        sections.append(("body", BODY, body))
    claimed: dict[str, list[tuple[int, int]]] = {name: [] for name, _, _ in sections}

    signals = []
    for rule in RULES:
        best: tuple[float, str, str] | None = None
        for name, multiplier, text in sections:
            if rule.title_only and name != "title":
                continue
            found = _match_section(text, claimed[name], rule)
            if found is None:
                continue
            score = rule.weight * (TITLE if rule.full_weight_in_body else multiplier)
            if best is None or score > best[0]:
                best = (score, name, found)
        if best is None:
            continue
        score, where, found = best
        label = rule.label
        if rule.needs_severity:
            if not severe:
                continue
            label += ", confirmed by severity"
        signals.append(_Signal(rule.kind, score, f'"{found}" in {where}: {label}'))
    return signals


def _impact(evidence: Evidence) -> str:
    return (evidence.impact or "").strip().lower()


def _maintenance_decision(evidence: Evidence, title: str, all_text: str) -> str | None:
    """The reason the incident is planned work, or None."""
    if evidence.is_maintenance:
        return "published as a scheduled maintenance (maintenance)"
    if _impact(evidence) == "maintenance":
        return 'vendor impact is "maintenance" (maintenance)'
    if evidence.status in MAINTENANCE_STATUSES and re.search(
        r"maintenance|upgrade|planned|travaux|维护", all_text
    ):
        return f'status "{evidence.status}" with maintenance wording (maintenance)'
    found = PLANNED_WORK.pattern.search(title)
    if found and evidence.status not in INCIDENT_STATUSES:
        return f'"{found.group(0)}" in title: {PLANNED_WORK.label} (maintenance)'
    return None


def _non_text_signals(evidence: Evidence) -> list[_Signal]:
    signals = []
    statuses = list(evidence.component_statuses)
    names = list(evidence.components) if len(evidence.components) == len(statuses) else [""] * len(statuses)

    def named(status: ComponentStatus) -> str:
        hit = [n for n, s in zip(names, statuses, strict=True) if s is status and n]
        return f'component "{hit[0]}"' if hit else "a component"

    if ComponentStatus.MAJOR_OUTAGE in statuses:
        signals.append(
            _Signal(
                OUTAGE,
                MAJOR_OUTAGE_COMPONENT_WEIGHT,
                f"{named(ComponentStatus.MAJOR_OUTAGE)} in major_outage",
            )
        )
    else:
        worst = next(
            (s for s in (ComponentStatus.PARTIAL_OUTAGE, ComponentStatus.DEGRADED) if s in statuses), None
        )
        if worst is not None:
            signals.append(
                _Signal(DEGRADATION, DEGRADED_COMPONENT_WEIGHT, f"{named(worst)} in {worst.value}")
            )
        elif statuses and all(s is ComponentStatus.MAINTENANCE for s in statuses):
            signals.append(_Signal(MAINTENANCE, MAINTENANCE_COMPONENT_WEIGHT, "components under maintenance"))
    if _impact(evidence).startswith("critical"):
        signals.append(_Signal(OUTAGE, CRITICAL_IMPACT_WEIGHT, "impact=critical (tie-breaker toward outage)"))
    return signals


def _is_severe(evidence: Evidence) -> bool:
    return (
        _impact(evidence).startswith("critical")
        or ComponentStatus.MAJOR_OUTAGE in evidence.component_statuses
    )


def classify(evidence: Evidence) -> Classification:
    """Classify one incident; the reason names the words or signals that decided."""
    title = _normalise(evidence.title or "")
    all_text = " ".join([title, *(_normalise(b) for b in evidence.bodies if b)])
    maintenance = _maintenance_decision(evidence, title, all_text)
    if maintenance is not None:
        return Classification(MAINTENANCE, maintenance)

    signals = _text_signals(evidence, _is_severe(evidence)) + _non_text_signals(evidence)
    scores = {kind: 0.0 for kind in TIE_ORDER}
    for signal in signals:
        scores[signal.kind] += signal.score
    if evidence.status in INCIDENT_STATUSES:
        scores[MAINTENANCE] = 0.0
    for kind in ANNOUNCEMENT_KINDS:
        if scores[kind] < MIN_ANNOUNCEMENT_SCORE:
            scores[kind] = 0.0
            signals = [s for s in signals if s.kind is not kind]

    if not any(scores.values()):
        return Classification(
            DEGRADATION,
            "no decisive wording or signal: an incident was declared but nothing says it is unusable "
            "(degradation by default)",
        )

    winner = max(TIE_ORDER, key=lambda kind: (scores[kind], -TIE_ORDER.index(kind)))
    if winner is OUTAGE and all(s.kind is not OUTAGE or s.description.startswith("impact=") for s in signals):
        vague = [s.description for s in signals if s.kind is not OUTAGE]
        detail = "; ".join(vague[:2]) if vague else "no decisive wording"
        return Classification(
            OUTAGE, f"only vague wording ({detail}); impact=critical tips it to outage (outage)"
        )
    return Classification(winner, _reason(winner, scores, signals))


def _reason(winner: IncidentKind, scores: Mapping[IncidentKind, float], signals: list[_Signal]) -> str:
    ranked = sorted((s for s in signals if s.kind is winner), key=lambda s: -s.score)
    reason = "; ".join(s.description for s in ranked[:2]) + f" ({winner.value})"
    runner_up = max((k for k in TIE_ORDER if k is not winner), key=lambda k: scores[k])
    if scores[runner_up] > 0:
        best_against = max((s for s in signals if s.kind is runner_up), key=lambda s: s.score)
        reason += f"; outweighs {best_against.description} ({runner_up.value})"
    return reason


# --- JSON-lines records (the `watcher classify` command) ----------------------------------------


def _component_status(value: Any) -> ComponentStatus:
    text = str(value or "").strip().lower().replace(" ", "_")
    try:
        return ComponentStatus(text)
    except ValueError:
        aliases = {"degraded": ComponentStatus.DEGRADED, "maintenance": ComponentStatus.MAINTENANCE}
        return aliases.get(text, ComponentStatus.UNKNOWN)


def _incident_status(value: Any) -> IncidentStatus | None:
    if value is None or value == "":
        return None
    text = str(value).strip().lower().replace(" ", "_").replace("-", "_")
    try:
        return IncidentStatus(text)
    except ValueError:
        return IncidentStatus.UNKNOWN


def _bodies(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value] if value.strip() else []
    if isinstance(value, Iterable):
        return [str(v) for v in value if v]
    return [str(value)]


def evidence_from_record(record: Mapping[str, Any]) -> Evidence:
    """Evidence from a JSON-lines record (``title``, ``body``, optional ``impact``, ``components``, ...)."""
    names: list[str] = []
    statuses: list[ComponentStatus] = []
    for component in record.get("components") or []:
        if isinstance(component, Mapping):
            names.append(str(component.get("name") or ""))
            if component.get("status") is not None:
                statuses.append(_component_status(component.get("status")))
        else:
            names.append(str(component))
    impact = record.get("impact")
    return Evidence(
        title=str(record.get("title") or ""),
        bodies=_bodies(record.get("body")),
        impact=str(impact) if impact is not None else None,
        status=_incident_status(record.get("status")),
        is_maintenance=bool(record.get("is_maintenance") or False),
        component_statuses=statuses,
        components=names,
        vendor=record.get("vendor"),
    )


def classify_record(record: Mapping[str, Any]) -> Classification:
    """Classify one JSON-lines record; what `watcher classify` calls for each line."""
    return classify(evidence_from_record(record))
