"""What the incident classifier reads: one feature map per incident, the same at training and at run time.

The classifier is a linear model (:mod:`watcher.incidents.classify`), trained offline on the labelled
corpus in ``data/incidents.jsonl`` (:mod:`watcher.incidents.train`). Both sides call :func:`featurize`,
so a change here changes the model's input everywhere at once; the shipped model records
:data:`FEATURES_VERSION` and refuses to run against another one.

Features, each group scaled to unit length so that a long body does not drown the title:

- ``t|word`` and ``t|word word``: words and word pairs of the title;
- ``b|word`` and ``b|word word``: the same over the update texts;
- ``c|gram``: character 4-grams inside words of title and body (French and German endings, typos,
  Chinese and Japanese text, which has no spaces between words);
- ``k|field:cue``: whether the title or the updates use words of one family of :data:`CUES` ("all",
  "some", "unusable", "slow", "errors", "wrong", "change", "planned"), in any language we know, and
  the pairs that decide between outage and degradation ("some" with "unusable": part of the users
  cannot work; "all" with "unusable": nobody can). The families are fixed; how much each weighs for
  each kind is learned like every other feature. They let the model generalise from a few hundred
  incidents: a vendor who writes "a subset of customers" is read like one who wrote "some users".
- ``s|...``: structured signals, each worth 1: the vendor's impact rating, the component statuses
  (worst and each present), a scheduled-maintenance object, the language, and "no update text".

The incident's status and the source type are not model features: labelled corpora and the incidents
met at run time do not carry them alike (a record piped to ``watcher classify`` seldom has a status),
and a feature present in training but missing at run time moves every score. The status decides where
structure decides (:mod:`watcher.incidents.classify`).

Digits become ``0`` (dates, versions and model numbers then generalise). The vendor's name is not a
feature: the model must work on vendors it has never seen.

Everything here is linear in the length of the input (the patterns have no nested repetition) and the
input is bounded (:data:`MAX_TITLE`, :data:`MAX_BODY`, :data:`MAX_BODIES`): vendor text is hostile.
"""

from __future__ import annotations

import html
import math
import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from watcher.model import ComponentStatus, Evidence

__all__ = ["FEATURES_VERSION", "describe", "detect_language", "featurize", "normalise"]

FEATURES_VERSION = 2
"""Bump when :func:`featurize` changes what it emits: the shipped model must then be retrained."""

MAX_TITLE = 500
MAX_BODY = 4_000
"""Characters read of one update; the first lines of an update carry its meaning."""
MAX_BODIES = 16_000
"""Characters read of all updates together, first ones first (they say what happened to users)."""
CHAR_N = 4

# Linear patterns only: a bounded run between two delimiters that cannot overlap.
_TAG = re.compile(r"<[^<>]{0,1000}>")
_WORD = re.compile(r"\w+")
_DIGIT = re.compile(r"\d")
_SPACE = re.compile(r"\s+")


_CJK = "\u3040-\u30ff\u3400-\u9fff\uac00-\ud7af\uf900-\ufaff"
_TOKEN = re.compile(f"[{_CJK}]+|[^\\W{_CJK}]+")
"""A run of Chinese, Japanese or Korean characters, or a run of other word characters."""


def normalise(text: str, limit: int) -> str:
    """Plain lowercase text of at most ``limit`` characters: tags and entities gone, quotes unified."""
    text = text[: limit * 4]
    text = html.unescape(_TAG.sub(" ", text))
    text = unicodedata.normalize("NFKC", text).replace("’", "'").replace("‘", "'")
    return _SPACE.sub(" ", text).strip().lower()[:limit]


def _words(text: str) -> list[str]:
    """Words, digits folded to 0; a run of Chinese or Japanese characters becomes its character pairs."""
    words: list[str] = []
    for token in _TOKEN.findall(_DIGIT.sub("0", text)):
        if token[0] >= "\u3040" and _TOKEN_IS_CJK(token):
            if len(token) == 1:
                words.append(token)
            else:
                words.extend(token[i : i + 2] for i in range(len(token) - 1))
        else:
            words.append(token)
    return words


_TOKEN_IS_CJK = re.compile(f"[{_CJK}]").match


def _grams(words: list[str]) -> set[str]:
    out = set(words)
    out.update(f"{a} {b}" for a, b in zip(words, words[1:], strict=False))
    return out


def _char_grams(words: Iterable[str]) -> set[str]:
    out: set[str] = set()
    for w in words:
        padded = f" {w} "
        if len(padded) <= CHAR_N:
            out.add(padded)
            continue
        out.update(padded[i : i + CHAR_N] for i in range(len(padded) - CHAR_N + 1))
    return out


def _unit(prefix: str, grams: set[str], into: dict[str, float]) -> None:
    if grams:
        value = 1.0 / math.sqrt(len(grams))
        for g in grams:
            into[prefix + g] = value


_STOP = {
    "en": {"the", "is", "are", "we", "and", "of", "to", "some", "users", "with", "for", "this", "have", "been"},
    "fr": {"le", "la", "les", "des", "est", "nous", "une", "sont", "pour", "avec", "sur", "du", "certains"},
    "de": {"der", "die", "das", "und", "ist", "wir", "nicht", "mit", "für", "auf", "sind", "eine", "von"},
    "es": {"el", "los", "las", "del", "está", "estamos", "una", "para", "con", "por", "algunos", "servicio"},
    "pt": {"os", "das", "dos", "não", "está", "estamos", "uma", "para", "com", "alguns", "serviço", "em"},
    "it": {"il", "gli", "della", "è", "stiamo", "alcuni", "per", "con", "servizio", "non", "una", "sono"},
    "nl": {"het", "een", "van", "en", "zijn", "wij", "niet", "voor", "met", "op", "storing", "onderhoud"},
}


def detect_language(text: str) -> str:
    """A best guess of the language of vendor text (ISO 639-1), from its script and common words."""
    sample = text[:2000]
    letters = [ch for ch in sample if ch.isalpha()]
    if letters:
        kana = sum(1 for ch in letters if 0x3040 <= ord(ch) <= 0x30FF)
        han = sum(1 for ch in letters if 0x3400 <= ord(ch) <= 0x9FFF)
        hangul = sum(1 for ch in letters if 0xAC00 <= ord(ch) <= 0xD7AF)
        cyr = sum(1 for ch in letters if 0x0400 <= ord(ch) <= 0x04FF)
        n = len(letters)
        if kana > 0.05 * n:
            return "ja"
        if hangul > 0.2 * n:
            return "ko"
        if han > 0.2 * n:
            return "zh"
        if cyr > 0.3 * n:
            return "ru"
    words = set(_WORD.findall(sample.lower()))
    best, score = "en", 0
    for lang, stop in _STOP.items():
        hits = len(words & stop)
        if hits > score:
            best, score = lang, hits
    return best


@dataclass(frozen=True, slots=True)
class Text:
    """The normalised text of one incident, shared by the features and the explanation."""

    title: str
    body: str


def text_of(evidence: Evidence) -> Text:
    bodies: list[str] = []
    left = MAX_BODIES
    for body in evidence.bodies:
        if left <= 0:
            break
        piece = normalise(body or "", min(MAX_BODY, left))
        if piece:
            bodies.append(piece)
            left -= len(piece)
    return Text(normalise(evidence.title or "", MAX_TITLE), " \n ".join(bodies))


CUES: dict[str, frozenset[str]] = {
    "all": frozenset(
        "all every entire entirely complete completely fully full total totally whole global globally "
        "widespread everyone nobody tous toutes tout totale complète complet complètement entière "
        "ensemble alle vollständig komplett gesamte todos todas completo total 全部 所有 完全 全面 全て".split()
    ),
    "some": frozenset(
        "some subset portion fraction percentage small minority certain few partial partially partly "
        "intermittent intermittently sporadic sporadically occasional occasionally limited isolated "
        "elevated increased higher certains certaines partie partiel partielle partiellement quelques "
        "intermittente intermittents sporadiques einige teilweise vereinzelt manche algunos algunas "
        "parcial parcialmente alguns 部分 一些 少数 个别 一部".split()
    ),
    "unusable": frozenset(
        "unable cannot cant unavailable unavailability down outage outages offline inaccessible "
        "unreachable unresponsive failing fails failed fail broken stopped disabled impossible "
        "indisponible indisponibles indisponibilité panne pannes inaccessible inaccessibles "
        "interruption coupure hors nicht unerreichbar ausfall ausgefallen störung "
        "caído caida interrupción indisponível fora 无法 不可用 中断 宕机 故障 不能".split()
    ),
    "slow": frozenset(
        "latency latencies slow slower slowness slowdown slowdowns delay delays delayed lag lagging "
        "timeout timeouts lenteur lenteurs lent lente ralentissement ralentissements latence retard "
        "retards langsam verzögerung verzögerungen lentitud lentidão 延迟 缓慢 变慢 卡顿 遅延".split()
    ),
    "errors": frozenset(
        "error errors erroring 0xx erreur erreurs fehler fehlermeldungen errores erros "
        "错误 异常 报错 エラー".split()
    ),
    "wrong": frozenset(
        "incorrect incorrectly wrong wrongly inaccurate inaccuracies erroneous nonsensical nonsense "
        "gibberish garbled corrupted corruption hallucination hallucinations hallucinated quality "
        "discrepancy discrepancies mismatch misleading bizarre incoherent fabricated misreported "
        "incorrecte incorrects incorrectes erronée erronées inexacte inexactes qualité falsch fehlerhaft "
        "incorrecto incorrecta 乱码 不准确 错误的".split()
    ),
    "change": frozenset(
        "deprecated deprecation deprecations deprecating retire retired retiring retirement sunset "
        "sunsetting shutdown discontinue discontinued discontinuation removed removal legacy migrate "
        "migration replacement breaking successor eol obsolète obsolètes dépréciation déprécié "
        "dépréciés retrait abandon supprimé supprimés abgekündigt eingestellt veraltet obsoleto "
        "descontinuado 弃用 下线 停止支持 退役 廃止".split()
    ),
    "unaffected": frozenset(
        "unaffected unimpacted unchanged operational normally normal fine "
        "inchangé inchangés normalement fonctionnel fonktioniert normal normalmente 正常".split()
    ),
    "planned": frozenset(
        "scheduled planned maintenance window upgrade upgrades prévue prévu programmée programmé "
        "planifiée planifié travaux entretien wartung wartungsarbeiten geplant geplante "
        "mantenimiento programado manutenção 维护 升级 计划 メンテナンス".split()
    ),
}
_CUE_PAIRS = (("some", "unusable"), ("all", "unusable"), ("some", "errors"), ("all", "errors"))
_CJK_CUES = {
    family: tuple(w for w in words if _TOKEN_IS_CJK(w) and len(w) > 1) for family, words in CUES.items()
}


def _cues(prefix: str, text: str, words: list[str], into: dict[str, float]) -> None:
    present = set(words)
    found = {
        family
        for family, cue in CUES.items()
        if not present.isdisjoint(cue) or any(w in text for w in _CJK_CUES[family])
    }
    for family in found:
        into[f"k|{prefix}:{family}"] = 1.0
    for a, b in _CUE_PAIRS:
        if a in found and b in found:
            into[f"k|{prefix}:{a}+{b}"] = 1.0


def _structured(evidence: Evidence, text: Text) -> dict[str, float]:
    out: dict[str, float] = {}
    impact = (evidence.impact or "").strip().lower() or "unrated"
    out[f"s|impact={impact}"] = 1.0
    statuses = set(evidence.component_statuses)
    if statuses:
        worst = max(statuses, key=lambda s: s.severity)
        out[f"s|worst={worst.value}"] = 1.0
        for s in statuses:
            if s is not ComponentStatus.OPERATIONAL:
                out[f"s|component={s.value}"] = 1.0
    else:
        out["s|worst=none"] = 1.0
    if evidence.is_maintenance:
        out["s|maintenance_object"] = 1.0
    lang = evidence.lang or detect_language(f"{text.title} {text.body}")
    out[f"s|lang={lang}"] = 1.0
    if not text.body:
        out["s|no_body"] = 1.0
    return out


def featurize(evidence: Evidence) -> dict[str, float]:
    """The feature map of one incident (see the module docstring)."""
    text = text_of(evidence)
    title_words = _words(text.title)
    body_words = _words(text.body)
    features: dict[str, float] = {}
    _unit("t|", _grams(title_words), features)
    _unit("b|", _grams(body_words), features)
    _unit("c|", _char_grams(title_words + body_words), features)
    _cues("title", text.title, title_words, features)
    _cues("updates", text.body, body_words, features)
    features.update(_structured(evidence, text))
    return features


_STRUCTURED_WORDS = {
    "impact": "the vendor rates its impact {}",
    "worst": "the worst component status is {}",
    "component": "a component is in {}",
}


_FUNCTION_WORDS = frozenset().union(*_STOP.values()) | {
    "a", "an", "on", "in", "at", "it", "be", "by", "as", "or", "our", "was", "were", "has", "had", "that",
    "from", "will", "can", "all", "you", "your", "their", "they", "there", "these", "into", "not",
    "et", "en", "de", "un", "au", "aux", "vos", "nos", "ce", "cette", "ces", "qui", "que", "0",
}
_CUE_WORDS = {
    "all": "words of total impact",
    "some": "words of partial impact",
    "unusable": "words of unusability",
    "slow": "words of slowness",
    "errors": "words of errors",
    "wrong": "words of wrong answers",
    "change": "words of a change by design",
    "unaffected": "words saying something is not affected",
    "planned": "words of planned work",
}
_SILENT = frozenset({"worst=none", "impact=unrated"})


def cue_words(feature: str, features: Mapping[str, float]) -> list[str]:
    """The words of the incident behind a cue feature (``k|title:some+unusable`` → ["some", "unable"])."""
    where, _, families = feature[2:].partition(":")
    prefix = "t|" if where == "title" else "b|"
    return [w for family in families.split("+") for w in sorted(CUES[family]) if prefix + w in features]


def describe(feature: str) -> str | None:
    """A feature in words for a reason ('"elevated errors" in the title').

    None for what explains nothing to a reader: character grams, words like "the" or "is", the
    language, and the absence of a signal.
    """
    kind, _, name = feature.partition("|")
    if kind in ("t", "b"):
        if all(w in _FUNCTION_WORDS or not w.strip("0") for w in name.split(" ")):
            return None
        return f'"{name}" in the {"title" if kind == "t" else "updates"}'
    if kind == "k":
        where, _, family = name.partition(":")
        return f"{' and '.join(_CUE_WORDS[f] for f in family.split('+'))} in the {where}"
    if kind == "s":
        if name in _SILENT or name.startswith("lang="):
            return None
        key, _, value = name.partition("=")
        if key == "maintenance_object":
            return "published as a scheduled maintenance"
        if key == "no_body":
            return "no update text"
        template = _STRUCTURED_WORDS.get(key)
        return template.format(value.replace("_", " ")) if template else None
    return None
