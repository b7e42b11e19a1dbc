"""Incident classifier: one `IncidentKind` per incident, with a reason a human can check.

A pure function over `Evidence`. Two steps:

1. **Structure decides where it can.** A scheduled-maintenance object, the impact ``maintenance`` or a
   maintenance status (scheduled, in progress, verifying, completed) is planned work, whatever its words.
   An incident in an unplanned lifecycle state (investigating, identified, monitoring) is never maintenance.
2. **A linear model reads the rest.** Multinomial logistic regression over the features of
   :mod:`watcher.incidents.features` (words and word pairs of title and updates, character 4-grams, the
   component statuses, the vendor's impact, status, source type and language). It was trained offline on
   the labelled corpus ``data/incidents.jsonl`` by ``python -m watcher.incidents.train`` and ships as
   ``classifier.json.gz`` beside this module; nothing is learned at run time. Inference is a dictionary
   lookup per feature: plain Python, well under a millisecond per incident (``bench/eval_classifier.py``).

Why learned weights and not a rule table: hand-set rules fit the rows they were written against and
miss the wording of incidents nobody tuned them for; a model trained on hundreds of real incidents from
many vendors, evaluated leave-one-vendor-out, generalises to vendors it has never seen.

The reason names the words and signals that weighed most for the winning kind against the runner-up,
e.g. ``"incorrect answers" and "fabricated" in the updates: wrong answers (hallucination_spike)``.
"""

from __future__ import annotations

import gzip
import hashlib
import itertools
import json
import math
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from functools import cache
from operator import mul
from pathlib import Path
from typing import Any

from watcher import i18n
from watcher.i18n import Said
from watcher.incidents import wording
from watcher.incidents.features import FEATURES_VERSION, cue_words, describe, featurize
from watcher.model import Classification, ComponentStatus, Evidence, IncidentKind, IncidentStatus

__all__ = [
    "MODEL_PATH",
    "Contribution",
    "Model",
    "classify",
    "classify_record",
    "evidence_from_record",
    "explain",
    "load_model",
]

MODEL_PATH = Path(__file__).with_name("classifier.json.gz")

MAINTENANCE_STATUSES = frozenset(
    {IncidentStatus.SCHEDULED, IncidentStatus.IN_PROGRESS, IncidentStatus.VERIFYING, IncidentStatus.COMPLETED}
)
UNPLANNED_STATUSES = frozenset({IncidentStatus.INVESTIGATING, IncidentStatus.IDENTIFIED, IncidentStatus.MONITORING})

GLOSS = {kind: i18n.t("en", f"why.gloss.{kind.value}") for kind in IncidentKind}
"""What each kind means, in English (``why.gloss.*`` in the locale files: every language has its own)."""


@dataclass(frozen=True, slots=True)
class Model:
    """The shipped weights: one row of class weights per feature, and a bias per class."""

    classes: tuple[IncidentKind, ...]
    bias: tuple[float, ...]
    weights: Mapping[str, tuple[float, ...]]
    version: str
    """A digest of the weights: stored with the database, so an upgrade re-classifies what it holds."""
    trained: Mapping[str, Any]

    def scores(self, features: Mapping[str, float]) -> list[float]:
        get = self.weights.get
        values: list[float] = []
        rows: list[tuple[float, ...]] = []
        for name, value in features.items():
            row = get(name)
            if row is not None:
                values.append(value)
                rows.append(row)
        if not rows:
            return list(self.bias)
        # one column per class, summed in C (map/operator.mul): inference stays well under a millisecond
        return [b + sum(map(mul, values, column)) for b, column in zip(self.bias, zip(*rows, strict=True), strict=True)]

    @classmethod
    def from_document(cls, doc: Mapping[str, Any], version: str) -> Model:
        if doc.get("features_version") != FEATURES_VERSION:
            raise ValueError(
                f"classifier model was trained on features version {doc.get('features_version')}, "
                f"this code makes version {FEATURES_VERSION}: retrain with python -m watcher.incidents.train"
            )
        classes = tuple(IncidentKind(c) for c in doc["classes"])
        weights = {k: tuple(float(x) for x in v) for k, v in doc["weights"].items()}
        if any(len(v) != len(classes) for v in weights.values()) or len(doc["bias"]) != len(classes):
            raise ValueError("classifier model is malformed: a weight row does not have one value per class")
        return cls(classes, tuple(float(b) for b in doc["bias"]), weights, version, doc.get("trained", {}))


def read_model(path: Path) -> Model:
    raw = path.read_bytes()
    doc = json.loads(gzip.decompress(raw))
    return Model.from_document(doc, hashlib.sha256(raw).hexdigest()[:16])


@cache
def load_model() -> Model:
    """The shipped model, read once per process."""
    return read_model(MODEL_PATH)


@dataclass(frozen=True, slots=True)
class Contribution:
    feature: str
    words: str | None
    weight: float
    """How much the feature pushed the winner above the runner-up (or toward a named kind)."""


def _structural(evidence: Evidence) -> Said | None:
    if evidence.is_maintenance:
        return Said("why.structural_object")
    if (evidence.impact or "").strip().lower() == "maintenance":
        return Said("why.structural_impact")
    if evidence.status in MAINTENANCE_STATUSES:
        return wording.structural_status(str(evidence.status))
    return None


def _ranked(model: Model, scores: list[float], evidence: Evidence) -> list[int]:
    order = sorted(range(len(scores)), key=lambda i: -scores[i])
    if evidence.status in UNPLANNED_STATUSES:
        order = [i for i in order if model.classes[i] is not IncidentKind.MAINTENANCE]
    return order


def _contributions(
    model: Model, features: Mapping[str, float], win: int, against: int
) -> Iterator[Contribution]:
    """What pushed ``win`` above ``against``, strongest first.

    A feature counts only when it also favours ``win`` over the other kinds on average: "elevated
    errors" may separate an outage from an API change, but it is no reason to call anything an outage.
    Described in words lazily: only the few a reason shows are.
    """
    scored = []
    others = len(model.classes) - 1
    get = model.weights.get
    for name, value in features.items():
        row = get(name)
        if row is None:
            continue
        delta = value * (row[win] - row[against])
        if delta <= 0:
            continue
        overall = value * (row[win] - (sum(row) - row[win]) / others)
        if overall > 0:
            scored.append((min(delta, overall), name))
    scored.sort(reverse=True)
    return (Contribution(name, describe(name), weight) for weight, name in scored)


def _phrases(contributions: Iterable[Contribution], limit: int = 3) -> list[Contribution]:
    """The strongest readable contributions, skipping a word already inside a chosen phrase."""
    chosen: list[Contribution] = []
    for c in contributions:
        if c.words is None:
            continue
        field, _, name = c.feature.partition("|")
        if any(
            o.feature.startswith(field + "|") and f" {name} " in f" {o.feature.partition('|')[2]} "
            for o in chosen
        ):
            continue
        chosen.append(c)
        if len(chosen) == limit:
            break
    return chosen


def _reason(kind: IncidentKind, chosen: list[Contribution], features: Mapping[str, float]) -> Said:
    """'"unable to" and "failing" in the updates; the vendor rates its impact critical: ... (outage)'.

    Made of message keys and their values (:mod:`watcher.incidents.wording`): the English text is what is
    stored, and any language can say it again.
    """
    quoted: dict[str, list[str]] = {"title": [], "updates": []}
    other: list[Said] = []
    for c in chosen:
        kind_of, _, name = c.feature.partition("|")
        if kind_of in ("t", "b"):
            words = [name]
            where = "title" if kind_of == "t" else "updates"
        elif kind_of == "k":
            words = cue_words(c.feature, features)
            where, _, families = name.partition(":")
            if not words and c.words:
                other.append(wording.cues(where, families.split("+")))
        elif c.words:
            said = _signal(name)
            if said is not None:
                other.append(said)
            continue
        else:
            continue
        for w in words:
            if w not in quoted[where] and not any(f" {w} " in f" {q} " for q in quoted[where]):
                quoted[where].append(w)
    parts = [wording.quoted(where, words[:3]) for where, words in quoted.items() if words]
    parts.extend(other)
    return wording.reason(kind.value, parts)


def _signal(name: str) -> Said | None:
    """A structured feature (``s|impact=critical``) as a part of a reason; what ``features.describe`` says."""
    key, _, value = name.partition("=")
    if key == "maintenance_object":
        return wording.signal("maintenance_object")
    if key == "no_body":
        return wording.signal("no_body")
    if key in ("impact", "worst", "component"):
        return wording.signal(key, value.replace("_", " "))
    return None


def classify(evidence: Evidence, model: Model | None = None) -> Classification:
    """Classify one incident; the reason names the words or signals that decided."""
    structural = _structural(evidence)
    if structural is not None:
        return Classification(IncidentKind.MAINTENANCE, structural)
    model = model or load_model()
    features = featurize(evidence)
    scores = model.scores(features)
    order = _ranked(model, scores, evidence)
    win, second = order[0], order[1]
    chosen = _phrases(_contributions(model, features, win, second))
    return Classification(model.classes[win], _reason(model.classes[win], chosen, features))


def explain(evidence: Evidence, top: int = 10, model: Model | None = None) -> dict[str, Any]:
    """What `watcher classify --explain` prints: probabilities and the features that weighed most."""
    model = model or load_model()
    result = classify(evidence, model)
    features = featurize(evidence)
    scores = model.scores(features)
    peak = max(scores)
    exps = [math.exp(s - peak) for s in scores]
    total = sum(exps)
    probabilities = {k.value: round(e / total, 3) for k, e in zip(model.classes, exps, strict=True)}
    order = _ranked(model, scores, evidence)
    win = model.classes.index(result.kind)
    against = order[1] if order[0] == win else order[0]
    return {
        "kind": result.kind.value,
        "reason": result.reason,
        "probabilities": probabilities,
        "runner_up": model.classes[against].value,
        "features": [
            {"feature": c.feature, "words": c.words, "weight": round(c.weight, 4)}
            for c in itertools.islice(_contributions(model, features, win, against), top)
        ],
        "model": model.version,
    }


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


def _optional_str(value: Any) -> str | None:
    return str(value).strip().lower() or None if value is not None else None


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
        source_type=_optional_str(record.get("source_type")),
        lang=_optional_str(record.get("lang")),
    )


def classify_record(record: Mapping[str, Any], model: Model | None = None) -> Classification:
    """Classify one JSON-lines record; what `watcher classify` calls for each line."""
    return classify(evidence_from_record(record), model)
