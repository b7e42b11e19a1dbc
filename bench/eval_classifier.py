"""Evaluate the incident classifier on a labelled JSON-lines file.

Usage: python bench/eval_classifier.py [FILE.jsonl]   (default: tests/data/incidents-dev.jsonl)

Each line needs ``title``, ``body`` and ``label``; ``impact``, ``components``, ``vendor``, ``status``
and ``is_maintenance`` are used when present. Prints per-class precision/recall/F1, the macro-F1
over the four incident kinds (outage, degradation, api_change, hallucination_spike), the confusion
matrix, and every misclassified row with the classifier's reason.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from watcher.incidents.classify import classify_record  # noqa: E402
from watcher.model import IncidentKind  # noqa: E402

DEFAULT_FILE = Path(__file__).resolve().parents[1] / "tests" / "data" / "incidents-dev.jsonl"
SCORED_KINDS = ("outage", "degradation", "api_change", "hallucination_spike")
ALL_KINDS = tuple(kind.value for kind in IncidentKind)


def load(path: Path) -> list[dict]:
    with path.open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def per_class(gold: list[str], predicted: list[str], kind: str) -> tuple[float, float, float, int]:
    """Precision, recall, F1 and support of one class."""
    tp = sum(g == kind and p == kind for g, p in zip(gold, predicted, strict=True))
    fp = sum(g != kind and p == kind for g, p in zip(gold, predicted, strict=True))
    fn = sum(g == kind and p != kind for g, p in zip(gold, predicted, strict=True))
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1, tp + fn


def macro_f1(gold: list[str], predicted: list[str], kinds: tuple[str, ...] = SCORED_KINDS) -> float:
    return sum(per_class(gold, predicted, kind)[2] for kind in kinds) / len(kinds)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("file", nargs="?", type=Path, default=DEFAULT_FILE)
    args = parser.parse_args(argv)

    rows = load(args.file)
    results = [classify_record(row) for row in rows]
    gold = [row["label"] for row in rows]
    predicted = [result.kind.value for result in results]

    print(f"{args.file}: {len(rows)} rows\n")
    print(f"{'class':<22}{'precision':>10}{'recall':>10}{'f1':>10}{'support':>9}")
    for kind in ALL_KINDS:
        precision, recall, f1, support = per_class(gold, predicted, kind)
        marker = "" if kind in SCORED_KINDS else "  (not in macro-F1)"
        print(f"{kind:<22}{precision:>10.3f}{recall:>10.3f}{f1:>10.3f}{support:>9}{marker}")
    accuracy = sum(g == p for g, p in zip(gold, predicted, strict=True)) / len(rows) if rows else 0.0
    print(f"\nmacro-F1 over {', '.join(SCORED_KINDS)}: {macro_f1(gold, predicted):.3f}")
    print(f"accuracy: {accuracy:.3f}\n")

    labels = [kind for kind in ALL_KINDS if kind in gold or kind in predicted]
    short = {kind: kind[:11] for kind in labels}
    print("confusion matrix (rows = gold, columns = predicted)")
    print(f"{'':<22}" + "".join(f"{short[k]:>12}" for k in labels))
    for g in labels:
        counts = [sum(1 for x, y in zip(gold, predicted, strict=True) if x == g and y == p) for p in labels]
        print(f"{g:<22}" + "".join(f"{c:>12}" for c in counts))

    wrong = [
        (row, result) for row, result in zip(rows, results, strict=True) if result.kind.value != row["label"]
    ]
    print(f"\nmisclassified: {len(wrong)}")
    for row, result in wrong:
        print(f"- [{row.get('vendor')}] {row['title']}")
        print(f"    gold {row['label']}, predicted {result.kind.value} (impact={row.get('impact')})")
        print(f"    reason: {result.reason}")
        if row.get("label_reason"):
            print(f"    label reason: {row['label_reason']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
