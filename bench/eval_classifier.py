"""Evaluate the incident classifier honestly: on vendors and on times it was not trained on.

Usage::

    pip install -e '.[train]'
    python bench/eval_classifier.py                       # all three evaluations below
    python bench/eval_classifier.py --only lovo           # or: time, dev, file
    python bench/eval_classifier.py --only file FILE.jsonl  # the shipped model on any labelled file

1. **Leave one vendor out** over ``data/incidents.jsonl``: for each vendor, a model is trained on every
   other vendor's incidents (its regularisation chosen by cross-validation grouped by vendor *inside*
   those training rows) and scores that vendor's incidents. Predictions of all folds are pooled.
2. **Split by time**: trained on the oldest 75 % of the corpus (by ``started_at``), scored on the newest
   25 %, so wording that changed over time is not learned from the future.
3. **The dev set** ``../shared/eval/incidents-dev.jsonl`` (a copy is in ``tests/data``) scored with the
   shipped model, which never saw it: one more unseen set.

Each prints macro-F1 over outage, degradation, api_change and hallucination_spike (maintenance is
decided mostly by structure and is reported but not in the macro), per-class precision and recall, the
confusion matrix and the misclassified rows, then the inference time per incident.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from watcher.incidents.classify import classify_record, load_model  # noqa: E402
from watcher.incidents.train import CORPUS, features_of, fit, load  # noqa: E402
from watcher.model import IncidentKind  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DEV_FILES = (ROOT.parent / "shared" / "eval" / "incidents-dev.jsonl", ROOT / "tests" / "data" / "incidents-dev.jsonl")
SCORED_KINDS = ("outage", "degradation", "api_change", "hallucination_spike")
ALL_KINDS = tuple(kind.value for kind in IncidentKind)


def per_class(gold: Sequence[str], predicted: Sequence[str], kind: str) -> tuple[float, float, float, int]:
    """Precision, recall, F1 and support of one class."""
    tp = sum(g == kind and p == kind for g, p in zip(gold, predicted, strict=True))
    fp = sum(g != kind and p == kind for g, p in zip(gold, predicted, strict=True))
    fn = sum(g == kind and p != kind for g, p in zip(gold, predicted, strict=True))
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1, tp + fn


def macro_f1(gold: Sequence[str], predicted: Sequence[str], kinds: Sequence[str] = SCORED_KINDS) -> float:
    """Mean F1 over the scored kinds that occur in ``gold`` (a kind absent from a test set has no F1)."""
    present = [k for k in kinds if k in gold]
    return sum(per_class(gold, predicted, k)[2] for k in present) / len(present) if present else 0.0


def report(
    name: str, rows: Sequence[dict[str, Any]], predicted: Sequence[str], reasons: Sequence[str] | None, show: int
) -> float:
    gold = [row["label"] for row in rows]
    score = macro_f1(gold, predicted)
    print(f"\n=== {name}: {len(rows)} rows ===")
    print(f"{'class':<22}{'precision':>10}{'recall':>10}{'f1':>10}{'support':>9}")
    for kind in ALL_KINDS:
        precision, recall, f1, support = per_class(gold, predicted, kind)
        marker = "" if kind in SCORED_KINDS else "  (not in macro-F1)"
        print(f"{kind:<22}{precision:>10.3f}{recall:>10.3f}{f1:>10.3f}{support:>9}{marker}")
    accuracy = sum(g == p for g, p in zip(gold, predicted, strict=True)) / len(rows) if rows else 0.0
    scored = [k for k in SCORED_KINDS if k in gold]
    absent = [k for k in SCORED_KINDS if k not in gold]
    note = f" ({', '.join(absent)}: no row in this set, left out)" if absent else ""
    print(f"macro-F1 over {', '.join(scored)}: {score:.3f}{note}   accuracy: {accuracy:.3f}")
    labels = [kind for kind in ALL_KINDS if kind in gold or kind in predicted]
    print("confusion matrix (rows = gold, columns = predicted)")
    print(f"{'':<22}" + "".join(f"{k[:11]:>12}" for k in labels))
    for g in labels:
        counts = [sum(1 for x, y in zip(gold, predicted, strict=True) if x == g and y == p) for p in labels]
        print(f"{g:<22}" + "".join(f"{c:>12}" for c in counts))
    wrong = [i for i, (g, p) in enumerate(zip(gold, predicted, strict=True)) if g != p]
    print(f"misclassified: {len(wrong)}" + (f" (first {show} shown)" if len(wrong) > show else ""))
    for i in wrong[:show]:
        row = rows[i]
        print(f"- [{row.get('vendor')}] {row['title'][:100]}")
        print(f"    gold {row['label']}, predicted {predicted[i]}")
        if reasons:
            print(f"    reason: {reasons[i][:200]}")
    return score


def heldout(train_rows: Sequence[dict[str, Any]], test_rows: Sequence[dict[str, Any]], feats_of) -> list[str]:
    """Train on ``train_rows`` only, then classify ``test_rows`` by the daemon's own path."""
    _, model = fit(train_rows, feats=[feats_of[id(r)] for r in train_rows])
    return [classify_record(r, model).kind.value for r in test_rows]


def _fold(rows: Sequence[dict[str, Any]], vendor: str) -> list[str]:
    """One leave-one-vendor-out fold, in a worker process: the held-out vendor's predictions."""
    feats = features_of(rows)
    feats_of = {id(r): f for r, f in zip(rows, feats, strict=True)}
    test = [r for r in rows if r["vendor"] == vendor]
    train = [r for r in rows if r["vendor"] != vendor]
    return heldout(train, test, feats_of)


def lovo(rows: Sequence[dict[str, Any]], show: int, jobs: int) -> float:
    vendors = sorted({r["vendor"] for r in rows})
    predicted: dict[int, str] = {}
    started = time.perf_counter()
    with ProcessPoolExecutor(max_workers=jobs) as pool:
        futures = {vendor: pool.submit(_fold, rows, vendor) for vendor in vendors}
        for n, vendor in enumerate(vendors, 1):
            test = [r for r in rows if r["vendor"] == vendor]
            for r, p in zip(test, futures[vendor].result(), strict=True):
                predicted[id(r)] = p
            print(f"  fold {n}/{len(vendors)} {vendor}: {len(test)} rows", file=sys.stderr)
    print(f"(leave-one-vendor-out: {len(vendors)} folds in {time.perf_counter() - started:.0f} s)")
    return report(
        f"leave one vendor out ({len(vendors)} vendors)", rows, [predicted[id(r)] for r in rows], None, show
    )


def by_time(rows: Sequence[dict[str, Any]], feats_of, show: int) -> float:
    dated = sorted(rows, key=lambda r: str(r.get("started_at") or ""))
    cut = int(len(dated) * 0.75)
    train, test = dated[:cut], dated[cut:]
    print(f"\n(time split: trained up to {train[-1].get('started_at')}, scored from {test[0].get('started_at')})")
    return report("split by time (newest 25 %)", test, heldout(train, test, feats_of), None, show)


def shipped(name: str, rows: Sequence[dict[str, Any]], show: int) -> float:
    results = [classify_record(r) for r in rows]
    return report(name, rows, [r.kind.value for r in results], [r.reason for r in results], show)


def speed(rows: Sequence[dict[str, Any]]) -> None:
    load_model()
    wall, cpu = time.perf_counter(), time.process_time()
    for r in rows:
        classify_record(r)
    n = max(len(rows), 1)
    per_wall = (time.perf_counter() - wall) / n
    per_cpu = (time.process_time() - cpu) / n
    print(
        f"\ninference: {per_cpu * 1e6:.0f} µs of CPU per incident ({per_wall * 1e6:.0f} µs wall clock; "
        f"mean over {len(rows)} corpus rows, plain Python, one thread)"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=("lovo", "time", "dev", "file"), default=None)
    parser.add_argument("--corpus", type=Path, default=CORPUS)
    parser.add_argument("--show", type=int, default=25, help="misclassified rows to print per evaluation")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="processes for the folds")
    parser.add_argument("file", nargs="?", type=Path, help="with --only file: a labelled JSON-lines file")
    args = parser.parse_args(argv)

    if args.only == "file":
        if not args.file:
            parser.error("--only file needs a FILE")
        rows = load(args.file)
        shipped(f"shipped model on {args.file}", rows, args.show)
        speed(rows)
        return 0
    rows = load(args.corpus)
    if args.only in (None, "lovo"):
        lovo(rows, args.show, args.jobs)
    if args.only in (None, "time"):
        feats = features_of(rows)
        by_time(rows, {id(r): f for r, f in zip(rows, feats, strict=True)}, args.show)
    if args.only in (None, "dev"):
        dev = next((p for p in DEV_FILES if p.exists()), None)
        if dev is None:
            print("\n(dev set not found: ../shared/eval/incidents-dev.jsonl)")
        else:
            shipped(f"dev set, shipped model ({dev})", load(dev), args.show)
    speed(rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
