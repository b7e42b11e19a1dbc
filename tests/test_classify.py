"""The incident classifier (watcher.incidents.classify): structure first, then the shipped linear model.

What a learned model must keep doing, whatever it was trained on: structure decides where it can,
every answer has a reason made of words that are in the incident, hostile text is read in bounded
time, the shipped weights are the ones the corpus trains, and on incidents it never saw (the dev set
in ``tests/data``, a copy of ``../shared/eval/incidents-dev.jsonl``) it stays well above chance.
Its honest figures (leave one vendor out, split by time) are printed by ``bench/eval_classifier.py``.
"""

from __future__ import annotations

import gzip
import json
import re
from pathlib import Path

import pytest

from watcher.incidents.classify import (
    MODEL_PATH,
    Model,
    classify,
    classify_record,
    evidence_from_record,
    explain,
    load_model,
    read_model,
)
from watcher.incidents.features import MAX_BODIES, MAX_TITLE, describe, detect_language, featurize, text_of
from watcher.model import ComponentStatus, Evidence, IncidentKind, IncidentStatus

DATA = Path(__file__).parent / "data"
CORPUS = Path(__file__).resolve().parents[1] / "data" / "incidents.jsonl"
SCORED = ("outage", "degradation", "api_change", "hallucination_spike")


def _rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


# --- structure decides where it can -------------------------------------------------------------


@pytest.mark.parametrize(
    "evidence",
    [
        Evidence(title="Elevated errors on the API", is_maintenance=True),
        Evidence(title="API unavailable", impact="maintenance"),
        Evidence(title="Database work", status=IncidentStatus.SCHEDULED),
        Evidence(title="Database work", status=IncidentStatus.IN_PROGRESS),
        Evidence(title="Database work", status=IncidentStatus.COMPLETED),
    ],
    ids=["maintenance-object", "impact", "scheduled", "in-progress", "completed"],
)
def test_a_maintenance_by_structure_is_maintenance_whatever_its_words(evidence: Evidence) -> None:
    result = classify(evidence)
    assert result.kind is IncidentKind.MAINTENANCE
    assert result.reason.endswith("(maintenance)")


@pytest.mark.parametrize(
    "status", [IncidentStatus.INVESTIGATING, IncidentStatus.IDENTIFIED, IncidentStatus.MONITORING]
)
def test_an_incident_in_an_unplanned_status_is_never_a_maintenance(status: IncidentStatus) -> None:
    evidence = Evidence(
        title="Scheduled maintenance",
        bodies=["The scheduled maintenance window for the database upgrade will take place tonight."],
        status=status,
    )
    assert classify(evidence).kind is not IncidentKind.MAINTENANCE


# --- reasons ----------------------------------------------------------------------------------------


def _quoted(reason: str) -> list[str]:
    return re.findall(r'"([^"]+)"', reason)


@pytest.mark.parametrize("row", _rows(DATA / "incidents-dev.jsonl")[:30], ids=lambda r: r["id"][:40])
def test_the_reason_quotes_only_words_of_the_incident_and_names_the_kind(row: dict) -> None:
    result = classify_record(row)
    assert result.reason.endswith(f"({result.kind.value})")
    features = featurize(evidence_from_record(row))
    for phrase in _quoted(result.reason):
        assert f"t|{phrase}" in features or f"b|{phrase}" in features, (phrase, result.reason)


def test_reasons_leave_out_words_that_explain_nothing() -> None:
    assert describe("t|the") is None
    assert describe("b|we are") is None
    assert describe("c| err") is None
    assert describe("s|lang=fr") is None
    assert describe("t|elevated errors") == '"elevated errors" in the title'
    assert describe("s|impact=critical") == "the vendor rates its impact critical"


def test_explain_gives_probabilities_and_the_weightiest_features() -> None:
    evidence = Evidence(title="Elevated error rates on the API", bodies=["Some requests fail."])
    out = explain(evidence, top=5)
    assert out["kind"] == classify(evidence).kind.value
    assert abs(sum(out["probabilities"].values()) - 1) < 0.01
    assert max(out["probabilities"], key=out["probabilities"].get) == out["kind"]
    assert 0 < len(out["features"]) <= 5
    weights = [f["weight"] for f in out["features"]]
    assert weights == sorted(weights, reverse=True) and weights[0] > 0
    assert out["model"] == load_model().version


# --- hostile text -----------------------------------------------------------------------------------


def test_hostile_text_is_read_only_up_to_its_bounds() -> None:
    evidence = Evidence(title="<" * 100_000 + "x" * 5_000, bodies=["<" * 200_000, "a " * 500_000] * 3)
    text = text_of(evidence)
    assert len(text.title) <= MAX_TITLE
    assert len(text.body) <= MAX_BODIES + 16  # joints between updates
    assert classify(evidence).kind in IncidentKind


def test_tags_and_entities_do_not_become_words() -> None:
    plain = featurize(Evidence(title="API down", bodies=["All requests fail."]))
    tagged = featurize(
        Evidence(title="API <b>down</b>", bodies=['<p class="x">All&nbsp;requests <i>fail</i>.</p>'])
    )
    assert plain == tagged


def test_language_is_guessed_from_the_text() -> None:
    assert detect_language("Nous rencontrons des problèmes sur le service") == "fr"
    assert detect_language("DeepSeek 网页/API 性能下降") == "zh"
    assert detect_language("Wir untersuchen eine Störung, die nicht alle Kunden betrifft") == "de"
    assert detect_language("We are investigating elevated errors") == "en"


# --- records (the `watcher classify` command) -------------------------------------------------------


def test_record_with_plain_component_names_and_missing_keys() -> None:
    evidence = evidence_from_record({"title": "API issue", "components": ["API", "Chat"]})
    assert evidence.components == ["API", "Chat"] and evidence.bodies == []
    assert classify_record({"title": "API issue", "components": ["API", "Chat"]}).reason


def test_record_with_component_objects_and_unknown_strings_does_not_crash() -> None:
    record = {
        "title": "Something",
        "body": ["first", "", "second"],
        "status": "weird-status",
        "impact": 3,
        "components": [{"name": "API", "status": "sideways"}, {"name": "Chat", "status": "major_outage"}],
    }
    evidence = evidence_from_record(record)
    assert evidence.status is IncidentStatus.UNKNOWN
    assert evidence.component_statuses == [ComponentStatus.UNKNOWN, ComponentStatus.MAJOR_OUTAGE]
    assert evidence.bodies == ["first", "second"]
    assert classify(evidence).reason


# --- the shipped model --------------------------------------------------------------------------------


def test_a_model_for_other_features_is_refused_with_the_fix(tmp_path: Path) -> None:
    doc = json.loads(gzip.decompress(MODEL_PATH.read_bytes()))
    doc["features_version"] = -1
    path = tmp_path / "m.json.gz"
    path.write_bytes(gzip.compress(json.dumps(doc).encode()))
    with pytest.raises(ValueError, match="retrain with python -m watcher.incidents.train"):
        read_model(path)


def test_a_malformed_model_is_refused() -> None:
    with pytest.raises(ValueError, match="one value per class"):
        Model.from_document(
            {
                "features_version": load_model_doc()["features_version"],
                "classes": ["outage", "degradation"],
                "bias": [0, 0],
                "weights": {"t|x": [1.0]},
            },
            "v",
        )


def load_model_doc() -> dict:
    return json.loads(gzip.decompress(MODEL_PATH.read_bytes()))


def test_the_shipped_model_is_what_the_corpus_trains() -> None:
    """Retrain on data/incidents.jsonl with the recorded C: the shipped file must agree with it.

    Fails when the corpus, the features or the training changed and nobody ran
    ``python -m watcher.incidents.train``.
    """
    pytest.importorskip("sklearn")
    from watcher.incidents.train import fit

    rows = _rows(CORPUS)
    shipped = load_model()
    assert shipped.trained["rows"] == len(rows)
    _, fresh = fit(rows, c=shipped.trained["C"])
    probe = rows + _rows(DATA / "incidents-dev.jsonl")
    same = sum(classify_record(r, shipped).kind == classify_record(r, fresh).kind for r in probe)
    assert same >= 0.99 * len(probe), f"{len(probe) - same} of {len(probe)} rows differ"


def test_on_the_unseen_dev_set_the_model_is_far_above_chance() -> None:
    """A floor against a broken or mistrained model file, not the target (see bench/eval_classifier.py)."""
    rows = _rows(DATA / "incidents-dev.jsonl")
    gold = [r["label"] for r in rows]
    predicted = [classify_record(r).kind.value for r in rows]
    f1s = []
    for kind in SCORED:
        tp = sum(g == p == kind for g, p in zip(gold, predicted, strict=True))
        fp = sum(p == kind != g for g, p in zip(gold, predicted, strict=True))
        fn = sum(g == kind != p for g, p in zip(gold, predicted, strict=True))
        f1s.append(2 * tp / (2 * tp + fp + fn) if tp else 0.0)
    assert sum(f1s) / len(f1s) >= 0.85, dict(zip(SCORED, f1s, strict=True))
