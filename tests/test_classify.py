"""Tests of the incident classifier (watcher.incidents.classify).

Titles come from three places, marked on each row:
- "eval": /work/shared/eval/incidents-dev.jsonl (real incidents, labelled by the README rules);
- "fixture": /work/shared/fixtures/statuspage/*.json, feeds/*.rss, gcp/ (real payloads);
- "extra": not from the eval file: real titles remembered from vendors' status pages, or French
  titles written by hand ("extra-fr"), labelled by the same rules. They guard against fitting the
  rules to the dev file.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from watcher.incidents.classify import classify, classify_record
from watcher.model import ComponentStatus, Evidence, IncidentKind, IncidentStatus

DEV_FILE = Path(__file__).parent / "data" / "incidents-dev.jsonl"
SCORED_KINDS = (
    IncidentKind.OUTAGE,
    IncidentKind.DEGRADATION,
    IncidentKind.API_CHANGE,
    IncidentKind.HALLUCINATION_SPIKE,
)

OUT = IncidentKind.OUTAGE
DEG = IncidentKind.DEGRADATION
API = IncidentKind.API_CHANGE
HAL = IncidentKind.HALLUCINATION_SPIKE
MNT = IncidentKind.MAINTENANCE

TITLES: list[tuple[str, str, IncidentKind]] = [
    # --- eval file --------------------------------------------------------------------------------
    (
        "eval",
        "Image model deprecations: gpt-image-1-mini, gpt-image-1.5, chatgpt-image-latest "
        "(shutdown Dec 1, 2026)",
        API,
    ),
    (
        "eval",
        "Model-as-a-Service open models (deepseek-*-maas) deprecated July 21, 2026; retired Oct 21, 2026",
        API,
    ),
    ("eval", "2023-11-06: Chat model updates (gpt-3.5-turbo-0613 and -16k-0613 shut down 2024-06-13)", API),
    ("eval", "pixtral-12b-2409 deprecated (retired 2025-12-31; replacement Ministral 3 14B)", API),
    ("eval", "搜索服务异常（Search service error）", DEG),
    ("eval", "Elevated error rate on Opus 4.8", DEG),
    ("eval", "Degraded performance on claude.ai and Claude Code", DEG),
    ("eval", "Elevated errors for image generation", DEG),
    ("eval", "File uploads are delayed or failing", DEG),
    ("eval", "Computer Sandbox Errors", DEG),
    ("eval", "Increased error rate for Plus and Pro users.", DEG),
    ("eval", "DeepSeek 网页/API 性能下降（DeepSeek Web/API Degraded Performance）", DEG),
    ("eval", "DeepSeek 网页/API 部分中断（DeepSeek Web/API partially unavailable)", DEG),
    ("eval", "Elevated error rate – AWS CDN (Singapore)", DEG),
    ("eval", "Connector connectivity issues", DEG),
    ("eval", "Audio API Degraded", DEG),
    ("eval", "Ads Manager login issues", DEG),
    ("eval", "Elevated latency on the Claude API for some users", DEG),
    ("eval", "Error rates across multiple models", DEG),
    ("eval", "We are seeing elevated error rates across API models", DEG),
    ("eval", "Gemini image generation of people paused after inaccurate historical depictions", HAL),
    ("eval", "Output corruption from TPU server misconfiguration (Opus 4.1, Opus 4, Sonnet 4)", HAL),
    ("eval", "Unable to open shared ChatGPT Project using direct link", OUT),
    ("eval", "Incident report: 11 May outage", OUT),
    ("eval", "Free Tier Temporarily Disabled", OUT),
    ("eval", "Errors logging into Claude.ai", OUT),
    ("eval", "Support chat unavailable", OUT),
    # --- fixtures ----------------------------------------------------------------------------------
    ("fixture", "Elevated errors on platform.claude.com", DEG),
    ("fixture", "Generative AI features are unavailable for some customers", DEG),
    ("fixture", "Elevated errors across ChatGPT, Codex, and the API including the Agents API", DEG),
    ("fixture", "Elevated error rates and latency", DEG),
    ("fixture", "Analytics", DEG),
    ("fixture", "DeepSeek 网页端搜索不可用（DeepSeek Web Search Service Unavailable）", OUT),
    ("fixture", "API服务异常(API service partially unavailable)", DEG),
    ("fixture", "API 服务性能下降（API Service performance impacted）", DEG),
    ("fixture", "Multiple products in us-central1-b are experiencing network service degradation.", DEG),
    ("fixture", "Scheduled maintenance for Claude.ai and Anthropic Console", MNT),
    # --- extra: not from the eval file (remembered real titles) ------------------------------------
    ("extra", "Increased latency for ChatGPT", DEG),
    ("extra", "ChatGPT unavailable for all users", OUT),
    ("extra", "Degraded performance on Sonnet 4", DEG),
    ("extra", "Elevated error rates on Claude 3.5 Sonnet", DEG),
    ("extra", "Partial outage of ChatGPT", DEG),
    ("extra", "ChatGPT is down", OUT),
    ("extra", "API and ChatGPT outage", OUT),
    ("extra", "Increased error rates for DALL·E", DEG),
    ("extra", "Users unable to log in to ChatGPT", OUT),
    ("extra", "Claude.ai is unavailable", OUT),
    ("extra", "Sora unavailable", OUT),
    ("extra", "Gemini API returning 503 errors for some users", DEG),
    ("extra", "Intermittent failures with file uploads", DEG),
    ("extra", "Voice mode not working", OUT),
    ("extra", "Claude Code not loading", OUT),
    ("extra", "Slow response times on the Gemini app", DEG),
    ("extra", "Fine-tuning jobs delayed", DEG),
    ("extra", "Mistral La Plateforme API down", OUT),
    ("extra", "Codex tasks failing for all users", OUT),
    ("extra", "ChatGPT conversation history not loading for some users", DEG),
    ("extra", "Claude.ai unavailable in Europe for some users", DEG),
    ("extra", "Login failures for Claude.ai", OUT),
    ("extra", "Elevated errors when logging into ChatGPT", DEG),
    ("extra", "Increased timeouts on the Batch API", DEG),
    ("extra", "Embeddings endpoint returning 500 errors", DEG),
    ("extra", "Realtime API inaccessible", OUT),
    ("extra", "Cannot create new API keys", OUT),
    ("extra", "Image generation temporarily disabled", OUT),
    ("extra", "Deprecation of the Assistants API (sunset August 26, 2026)", API),
    ("extra", "Claude 2 and Claude 2.1 will be retired on July 21, 2025", API),
    ("extra", "Change to the default reasoning effort for o-series models", API),
    ("extra", "Gemini 1.0 Pro will no longer be available starting April 9", API),
    ("extra", "Claude API: new required anthropic-version header", API),
    ("extra", "Breaking change to the Realtime API event schema", API),
    ("extra", "Unexpected responses from ChatGPT", HAL),
    ("extra", "Degraded quality of responses for Claude Opus 4", HAL),
    ("extra", "Increased rate of incorrect answers from GPT-4o", HAL),
    ("extra", "ChatGPT responding with gibberish", HAL),
    ("extra", "Planned database upgrade", MNT),
    # --- extra-fr: French titles written by hand ---------------------------------------------------
    ("extra-fr", "Indisponibilité de l'API Mistral", OUT),
    ("extra-fr", "Le Chat indisponible pour tous les utilisateurs", OUT),
    ("extra-fr", "Panne de l'API La Plateforme", OUT),
    ("extra-fr", "Impossible de se connecter à Le Chat", OUT),
    ("extra-fr", "Le Chat hors service", OUT),
    ("extra-fr", "Lenteurs sur l'API de génération", DEG),
    ("extra-fr", "Erreurs intermittentes sur Le Chat", DEG),
    ("extra-fr", "API partiellement indisponible", DEG),
    ("extra-fr", "Taux d'erreur élevé sur l'API", DEG),
    ("extra-fr", "Dégradation des performances de l'API", DEG),
    ("extra-fr", "Ralentissement du service pour certains utilisateurs", DEG),
    ("extra-fr", "Le modèle mistral-large-2402 sera retiré le 30 juin", API),
    ("extra-fr", "Le modèle open-mistral-7b est obsolète", API),
    ("extra-fr", "Réponses incorrectes de Codestral", HAL),
    ("extra-fr", "Qualité dégradée des réponses sur Mistral Large", HAL),
    ("extra-fr", "Réponses incohérentes sur Le Chat", HAL),
    ("extra-fr", "Maintenance programmée de la base de données", MNT),
]


@pytest.mark.parametrize(("origin", "title", "expected"), TITLES, ids=[f"{o}:{t[:50]}" for o, t, _ in TITLES])
def test_title_alone_gives_expected_kind(origin: str, title: str, expected: IncidentKind) -> None:
    result = classify(Evidence(title=title))
    assert result.kind is expected, f"[{origin}] {title!r}: {result.reason}"


# Not from the eval file: realistic incidents with bodies, written from memory of vendors' pages
# ("fr": written by hand in French). They pin the interplay of title, body and impact.
EXTRA_WITH_BODIES: list[tuple[Evidence, IncidentKind]] = [
    (
        Evidence(
            "Increased errors on ChatGPT",
            ["We are investigating increased errors.", "ChatGPT is currently unavailable for all users."],
        ),
        OUT,
    ),
    (Evidence("ChatGPT Unavailable", ["Some users may be unable to access ChatGPT."]), OUT),
    (
        Evidence("Elevated errors on Claude 3 Opus", ["A portion of requests to Claude 3 Opus are failing."]),
        DEG,
    ),
    (Evidence("Unexpected errors in Responses API"), DEG),
    (Evidence("Some users seeing responses in the wrong language"), HAL),
    (Evidence("Search results contain inaccurate information"), HAL),
    (Evidence("Embeddings API returning incorrect vectors"), HAL),
    (Evidence("Fine-tuning jobs stuck in queue"), DEG),
    (Evidence("Codex cloud tasks are not starting"), OUT),
    (Evidence("Issues accessing ChatGPT"), DEG),
    (Evidence("Changes to API rate limits for the free tier"), API),
    (Evidence("Assistants API v1 access will be removed on December 18, 2024"), API),
    (Evidence("o1-preview and o1-mini deprecation", ["o1-preview will be shut down on July 28, 2025."]), API),
    (Evidence("Sora is experiencing an outage", ["Sora is currently down. We are working on a fix."]), OUT),
    (
        Evidence(
            "Increased latency for voice mode", ["Some users are experiencing slow responses."], "critical"
        ),
        DEG,
    ),
    (Evidence("Connectors unavailable in ChatGPT", ["Connectors are not working for any users."]), OUT),
    (Evidence("Mistral Le Chat - panne générale", ["Le Chat est totalement indisponible."]), OUT),  # fr
    (Evidence("Perturbations sur l'API", ["Certains utilisateurs rencontrent des erreurs."]), DEG),  # fr
    (
        Evidence("Fin de vie de mistral-small-2402", ["Le modèle sera retiré le 30 septembre 2025."]),
        API,
    ),  # fr
]


@pytest.mark.parametrize(
    ("evidence", "expected"), EXTRA_WITH_BODIES, ids=[e.title[:50] for e, _ in EXTRA_WITH_BODIES]
)
def test_incident_with_body_gives_expected_kind(evidence: Evidence, expected: IncidentKind) -> None:
    result = classify(evidence)
    assert result.kind is expected, f"{evidence.title!r}: {result.reason}"


def _load_dev() -> list[dict]:
    with DEV_FILE.open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


# --- maintenance ----------------------------------------------------------------------------------


def test_is_maintenance_flag_makes_maintenance_whatever_the_words() -> None:
    result = classify(Evidence(title="Upgrades to Connector Auth Storage", is_maintenance=True))
    assert result.kind is MNT
    assert "maintenance" in result.reason


def test_maintenance_impact_makes_maintenance() -> None:
    result = classify(Evidence(title="Upgrades to Connector Auth Storage", impact="maintenance"))
    assert result.kind is MNT


def test_maintenance_status_with_maintenance_wording_makes_maintenance() -> None:
    evidence = Evidence(
        title="Upgrades to Connector Auth Storage",
        bodies=["Scheduled maintenance is currently in progress. We will provide updates as necessary."],
        status=IncidentStatus.IN_PROGRESS,
    )
    assert classify(evidence).kind is MNT


def test_maintenance_status_without_maintenance_wording_is_not_enough() -> None:
    evidence = Evidence(title="Elevated errors on Claude Sonnet 5", status=IncidentStatus.COMPLETED)
    assert classify(evidence).kind is DEG


def test_planned_work_wording_in_an_incident_filed_as_unplanned_is_not_a_maintenance() -> None:
    evidence = Evidence(
        title="Elevated errors after scheduled maintenance",
        bodies=["Scheduled maintenance is complete, but some requests are failing."],
        status=IncidentStatus.INVESTIGATING,
    )
    assert classify(evidence).kind is DEG


def test_scheduled_shutdown_of_a_model_is_an_api_change_not_a_maintenance() -> None:
    evidence = Evidence(title="GPT-4.5 preview scheduled for shutdown on July 14, 2025")
    assert classify(evidence).kind is API


def test_record_with_is_maintenance_and_component_objects_is_maintenance() -> None:
    record = {
        "title": "Scheduled maintenance for Claude.ai and Anthropic Console",
        "body": "From 17:00–17:30 PT, we will be performing a scheduled maintenance of backend services.",
        "impact": "maintenance",
        "status": "scheduled",
        "is_maintenance": True,
        "components": [{"name": "claude.ai", "status": "operational"}],
    }
    assert classify_record(record).kind is MNT


# --- component statuses and impact ----------------------------------------------------------------


def test_major_outage_component_makes_an_ambiguous_incident_an_outage() -> None:
    evidence = Evidence(
        title="Service disruption on Claude services",
        components=["claude.ai", "Claude API (api.anthropic.com)"],
        component_statuses=[ComponentStatus.MAJOR_OUTAGE, ComponentStatus.DEGRADED],
    )
    result = classify(evidence)
    assert result.kind is OUT
    assert "major_outage" in result.reason


def test_major_outage_component_outweighs_elevated_errors_title() -> None:
    evidence = Evidence(
        title="API, ChatGPT & Sora Facing Issues",
        bodies=["We are currently experiencing an issue with high error rates on ChatGPT, Sora and the API."],
        component_statuses=[ComponentStatus.MAJOR_OUTAGE] * 3,
    )
    assert classify(evidence).kind is OUT


def test_same_incident_with_only_degraded_components_is_a_degradation() -> None:
    evidence = Evidence(
        title="Service disruption on Claude services",
        components=["claude.ai"],
        component_statuses=[ComponentStatus.DEGRADED],
    )
    result = classify(evidence)
    assert result.kind is DEG
    assert "degraded_performance" in result.reason


def test_partial_outage_component_is_degradation_evidence() -> None:
    record = {
        "title": "Elevated errors for Claude Fable 5",
        "body": "We have identified the cause of elevated errors on requests to Claude Fable 5.",
        "impact": "major",
        "components": [{"name": "claude.ai", "status": "partial_outage"}],
    }
    assert classify_record(record).kind is DEG


def test_critical_impact_alone_only_breaks_ties() -> None:
    # "Elevated errors" is clear degradation wording: a critical rating does not overturn it...
    assert classify(Evidence(title="Elevated errors on Claude Sonnet 5", impact="critical")).kind is DEG
    # ...but with "all models" in the title it confirms that everyone is affected.
    assert classify(Evidence(title="Elevated errors across all models", impact="critical")).kind is OUT
    assert classify(Evidence(title="Elevated errors across all models", impact="minor")).kind is DEG


def test_vague_text_with_critical_impact_is_an_outage_and_says_why() -> None:
    result = classify(Evidence(title="Computer Sandbox Issue", impact="critical"))
    assert result.kind is OUT
    assert "critical" in result.reason and "vague" in result.reason


def test_service_disruption_needs_severity_to_be_an_outage() -> None:
    body = ["We are investigating degraded performance in Claude Code on the Web sessions."]
    minor = Evidence(title="Service disruption on Claude Code on the web", bodies=body, impact="minor")
    critical = Evidence(title="Service disruption on Claude Code on the web", bodies=body, impact="critical")
    assert classify(minor).kind is DEG
    assert classify(critical).kind is OUT
    # Alone and unconfirmed, the phrase is no evidence: the incident falls back to degradation.
    assert classify(Evidence(title="Service disruption on Claude Code", impact="minor")).kind is DEG


# --- title versus body ----------------------------------------------------------------------------


def test_body_saying_outage_makes_vague_title_an_outage() -> None:
    evidence = Evidence(
        title="Service disruption on Claude Services",
        bodies=["We are investigating an outage affecting features such as document creation in claude.ai."],
    )
    assert classify(evidence).kind is OUT


def test_title_outweighs_a_passing_word_in_a_long_body() -> None:
    evidence = Evidence(
        title="Elevated errors on Claude Opus 4",
        bodies=[
            "Between 10:02 and 10:40 UTC a subset of requests to Claude Opus 4 failed. API similar outage in "
            "March was caused by the same load balancer; we have added capacity."
        ],
    )
    assert classify(evidence).kind is DEG


def test_deprecated_in_an_incident_body_does_not_make_an_api_change() -> None:
    evidence = Evidence(
        title="ChatGPT unavailable for all users",
        bodies=[
            "A configuration for a deprecated endpoint caused every request to fail. ChatGPT is unavailable."
        ],
    )
    assert classify(evidence).kind is OUT


def test_a_weak_word_in_a_body_does_not_make_an_announcement() -> None:
    evidence = Evidence(title="Analytics", bodies=["We completed the replacement of a faulty node."])
    assert classify(evidence).kind is DEG


def test_html_in_bodies_is_ignored() -> None:
    evidence = Evidence(title="Audio API", bodies=["Status: Investigating<br/>Requests are <b>degraded</b>."])
    assert classify(evidence).kind is DEG


def test_no_signal_defaults_to_degradation_and_says_so() -> None:
    result = classify(Evidence(title="Perplexity Website and API incident"))
    assert result.kind is DEG
    assert "default" in result.reason


# --- reasons --------------------------------------------------------------------------------------


def test_reason_names_the_deciding_words() -> None:
    result = classify(Evidence(title="Elevated errors for image generation"))
    assert result.reason.startswith('"elevated errors" in title')
    assert result.reason.endswith("(degradation)")


def test_every_result_has_a_non_empty_reason() -> None:
    evidences = [Evidence(title=title) for _, title, _ in TITLES] + [Evidence(title="")]
    results = [classify(e) for e in evidences] + [classify_record(r) for r in _load_dev()]
    assert all(r.reason.strip() for r in results)


# --- records (`watcher classify`) -----------------------------------------------------------------


def test_record_with_plain_component_names_and_missing_keys() -> None:
    result = classify_record({"title": "Support chat unavailable", "body": "", "components": ["Help Center"]})
    assert result.kind is OUT


def test_record_with_unknown_status_strings_does_not_crash() -> None:
    record = {
        "title": "Audio API Degraded",
        "body": "Requests are degraded.",
        "status": "Weird",
        "components": [{"name": "Audio API", "status": "purple"}],
    }
    assert classify_record(record).kind is DEG


# --- the dev set ----------------------------------------------------------------------------------


def _macro_f1(gold: list[str], predicted: list[str]) -> tuple[float, dict[str, float]]:
    per_class = {}
    for kind in SCORED_KINDS:
        tp = sum(g == kind and p == kind for g, p in zip(gold, predicted, strict=True))
        fp = sum(g != kind and p == kind for g, p in zip(gold, predicted, strict=True))
        fn = sum(g == kind and p != kind for g, p in zip(gold, predicted, strict=True))
        precision = tp / (tp + fp) if tp + fp else 0.0
        recall = tp / (tp + fn) if tp + fn else 0.0
        per_class[kind.value] = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return sum(per_class.values()) / len(per_class), per_class


def test_dev_set_macro_f1_is_at_least_0_9() -> None:
    rows = _load_dev()
    assert len(rows) == 60
    gold = [row["label"] for row in rows]
    predicted = [classify_record(row).kind.value for row in rows]
    macro, per_class = _macro_f1(gold, predicted)
    assert macro >= 0.9, per_class
