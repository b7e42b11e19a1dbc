"""Train the incident classifier on the labelled corpus; write the model file the daemon ships.

Usage::

    pip install -e '.[train]'
    python -m watcher.incidents.train                    # data/incidents.jsonl → watcher/incidents/classifier.json.gz
    python -m watcher.incidents.train --corpus more.jsonl --out /tmp/model.json.gz

Training only: this module needs scikit-learn (the ``train`` extra), the daemon never imports it.

The model is a multinomial logistic regression with balanced class weights (the rare kinds count as
much as the common ones, which is what macro-F1 asks for) over :func:`watcher.incidents.features.featurize`.
The regularisation strength is chosen by cross-validation grouped by vendor on the training rows only
(:func:`choose_c`), never on a row it is then scored on. Small weights are pruned so the shipped file
stays small; the pruned model is checked to agree with the full one on the training rows.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from watcher.incidents.classify import MODEL_PATH, Model, evidence_from_record
from watcher.incidents.features import FEATURES_VERSION, featurize
from watcher.model import IncidentKind

CORPUS = Path(__file__).resolve().parents[2] / "data" / "incidents.jsonl"
CLASSES = tuple(k.value for k in IncidentKind)
C_GRID = (1.0, 4.0, 16.0)
MIN_VENDORS = 3
"""A word or character feature is learned only when incidents of at least this many vendors use it: a
product name or one vendor's house style must not decide the kind of another vendor's incident."""
PRUNE_BELOW = 0.02
"""Weights whose largest absolute value over the classes is below this are dropped from the file."""


def load(path: Path) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def features_of(rows: Sequence[dict[str, Any]]) -> list[dict[str, float]]:
    return [featurize(evidence_from_record(r)) for r in rows]


def shared_features(feats: Sequence[dict[str, float]], groups: Sequence[str]) -> set[str]:
    """The features used by at least :data:`MIN_VENDORS` vendors, and every cue and structured signal."""
    vendors: dict[str, set[str]] = {}
    for f, g in zip(feats, groups, strict=True):
        for name in f:
            vendors.setdefault(name, set()).add(g)
    return {n for n, v in vendors.items() if len(v) >= MIN_VENDORS or n.startswith(("k|", "s|"))}


def _fit(feats: Sequence[dict[str, float]], labels: Sequence[str], c: float, groups: Sequence[str]):
    from sklearn.feature_extraction import DictVectorizer
    from sklearn.linear_model import LogisticRegression

    keep = shared_features(feats, groups)
    vec = DictVectorizer()
    x = _int32(vec.fit_transform([{k: v for k, v in f.items() if k in keep} for f in feats]))
    clf = LogisticRegression(C=c, class_weight="balanced", max_iter=3000)
    clf.fit(x, list(labels))
    return vec, clf


def _int32(x):
    """scikit-learn's solvers take a slow path (or refuse) on the 64-bit indices DictVectorizer makes."""
    x = x.tocsr()
    x.indices = x.indices.astype("int32")
    x.indptr = x.indptr.astype("int32")
    return x


def predict(model: tuple[Any, Any], feats: Sequence[dict[str, float]]) -> list[str]:
    vec, clf = model
    return [str(p) for p in clf.predict(_int32(vec.transform(feats)))]


def choose_c(feats: Sequence[dict[str, float]], labels: Sequence[str], groups: Sequence[str]) -> float:
    """The C of :data:`C_GRID` with the best macro-F1 in cross-validation grouped by vendor."""
    from sklearn.metrics import f1_score
    from sklearn.model_selection import GroupKFold

    n_splits = min(3, len(set(groups)))
    scored = [k for k in CLASSES if k != IncidentKind.MAINTENANCE.value]
    best, best_f1 = C_GRID[0], -1.0
    for c in C_GRID:
        gold: list[str] = []
        predicted: list[str] = []
        for train_idx, test_idx in GroupKFold(n_splits=n_splits).split(feats, labels, groups):
            fitted = _fit(
                [feats[i] for i in train_idx], [labels[i] for i in train_idx], c, [groups[i] for i in train_idx]
            )
            predicted.extend(predict(fitted, [feats[i] for i in test_idx]))
            gold.extend(labels[i] for i in test_idx)
        f1 = f1_score(gold, predicted, labels=scored, average="macro", zero_division=0)
        if f1 > best_f1:
            best, best_f1 = c, f1
    return best


def fit(
    rows: Sequence[dict[str, Any]], c: float | None = None, feats: Sequence[dict[str, float]] | None = None
) -> tuple[dict[str, Any], Model]:
    """Train on ``rows`` (C chosen by grouped CV on them when not given): the model document and Model."""
    feats = list(feats) if feats is not None else features_of(rows)
    labels = [r["label"] for r in rows]
    groups = [r.get("vendor") or "?" for r in rows]
    if c is None:
        c = choose_c(feats, labels, groups)
    vec, clf = _fit(feats, labels, c, groups)
    classes = [str(k) for k in clf.classes_]
    weights: dict[str, list[float]] = {}
    coef = clf.coef_
    if coef.shape[0] == 1:  # two classes: scikit-learn keeps one row
        coef = [-coef[0] / 2, coef[0] / 2]
    for j, name in enumerate(vec.feature_names_):
        row = [float(coef[i][j]) for i in range(len(classes))]
        if max(abs(w) for w in row) >= PRUNE_BELOW:
            weights[name] = [round(w, 4) for w in row]
    bias = [round(float(b), 4) for b in (clf.intercept_ if len(classes) > 2 else [0.0, 0.0])]
    corpus_digest = hashlib.sha256(
        "\n".join(json.dumps([r.get("id"), r["label"]]) for r in rows).encode()
    ).hexdigest()[:16]
    doc = {
        "features_version": FEATURES_VERSION,
        "classes": classes,
        "bias": bias,
        "weights": dict(sorted(weights.items())),
        "trained": {"rows": len(rows), "C": c, "corpus": corpus_digest, "vendors": len(set(groups))},
    }
    return doc, Model.from_document(doc, "unsaved")


def write(doc: dict[str, Any], path: Path) -> str:
    """Write the model document gzipped and byte-for-byte reproducible; return its size summary."""
    raw = json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode()
    path.write_bytes(gzip.compress(raw, mtime=0))
    return f"{path}: {len(doc['weights'])} features, {path.stat().st_size / 1024:.0f} KiB"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=CORPUS)
    parser.add_argument("--out", type=Path, default=MODEL_PATH)
    parser.add_argument("--c", type=float, default=None, help="regularisation (default: chosen by grouped CV)")
    args = parser.parse_args(argv)
    rows = load(args.corpus)
    started = datetime.now(UTC)
    doc, model = fit(rows, args.c)
    doc["trained"]["at"] = started.date().isoformat()
    print(write(doc, args.out))
    agree = sum(
        model.classes[max(range(len(model.classes)), key=s.__getitem__)].value == r["label"]
        for r, s in ((r, model.scores(featurize(evidence_from_record(r)))) for r in rows)
    )
    print(f"trained on {len(rows)} rows, C={doc['trained']['C']}; fits {agree}/{len(rows)} training rows")
    return 0


if __name__ == "__main__":
    sys.exit(main())
