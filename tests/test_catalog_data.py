"""Sanity checks on the built-in vendor catalog data (watcher/catalog/vendors.toml)."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest

from watcher.catalog.checks import HTTP_FIELDS

CATALOG = Path(__file__).resolve().parents[1] / "watcher" / "catalog" / "vendors.toml"

ID_RE = re.compile(r"^[a-z0-9_-]+$")

SOURCE_TYPES = {
    "statuspage",
    "statuspage_incidents",
    "statuspage_maintenances",
    "instatus",
    "betterstack",
    "gcp",
    "feed",
    "html",
    "http",
}
PLATFORMS = {
    "atlassian",
    "incident.io",
    "instatus",
    "betterstack",
    "google-cloud",
    "checkly",
    "flashduty",
    "custom",
    "unknown",
    "http-checks",
}
CONFIDENCES = {"verified", "third-party", "unverified"}
API_FORMATS = {"openai", "anthropic", "gemini", "other"}
PROBE_AUTHS = {"bearer", "x-api-key", "x-goog-api-key", "xi-api-key"}

VENDOR_KEYS = {
    "id",
    "name",
    "categories",
    "products",
    "status_page",
    "platform",
    "api_base",
    "api_format",
    "probe",
    "confidence",
    "notes",
    "sources",
    "comparison",
    "capabilities",
}
# Every http setting the config takes, except the API key's: a shipped catalog names no key of anyone's.
HTTP_KEYS = set(HTTP_FIELDS) - {"api_key_env", "api_key_header", "api_key_prefix"}
SOURCE_KEYS = {"id", "type", "url", "interval", "product_ids", "ignore_components", "html", "confidence"} | HTTP_KEYS

REQUIRED_IDS = {
    "openai",
    "anthropic",
    "google",
    "mistral",
    "cohere",
    "perplexity",
    "groq",
    "xai",
    "deepseek",
    "huggingface",
    "replicate",
    "elevenlabs",
    "stability",
    "hubspot",
    "jasper",
    "copyai",
    "writesonic",
    "notion",
    "canva",
    "aws_bedrock",
}
# Each of these must have a source, or a note explaining why it has none.
CORE_AI_IDS = [
    "openai",
    "anthropic",
    "google",
    "mistral",
    "cohere",
    "perplexity",
    "groq",
    "xai",
    "deepseek",
    "huggingface",
    "replicate",
    "elevenlabs",
    "stability",
    "hubspot",
]


def _load() -> list[dict[str, Any]]:
    with CATALOG.open("rb") as fh:
        data = tomllib.load(fh)
    assert set(data) == {"vendor"}, f"unexpected top-level keys: {set(data) - {'vendor'}}"
    vendors = data["vendor"]
    assert isinstance(vendors, list)
    return vendors


VENDORS = _load()
BY_ID = {v["id"]: v for v in VENDORS}


def _all_sources() -> list[tuple[str, dict[str, Any]]]:
    return [(v["id"], s) for v in VENDORS for s in v.get("sources", [])]


def _is_https(url: str) -> bool:
    parsed = urlparse(url)
    return parsed.scheme == "https" and bool(parsed.netloc)


def test_vendor_ids_unique_and_well_formed() -> None:
    ids = [v["id"] for v in VENDORS]
    assert len(ids) == len(set(ids)), "duplicate vendor ids"
    for vid in ids:
        assert ID_RE.fullmatch(vid), f"malformed vendor id {vid!r}"


def test_every_listed_vendor_present() -> None:
    assert len(VENDORS) >= 20
    missing = REQUIRED_IDS - BY_ID.keys()
    assert not missing, f"missing vendors: {sorted(missing)}"


@pytest.mark.parametrize("vendor", VENDORS, ids=lambda v: v["id"])
def test_vendor_fields(vendor: dict[str, Any]) -> None:
    unknown = set(vendor) - VENDOR_KEYS
    assert not unknown, f"unknown keys {unknown}"
    assert isinstance(vendor["name"], str) and vendor["name"].strip()
    cats = vendor.get("categories")
    assert cats and all(isinstance(c, str) and c == c.strip().lower() for c in cats), "categories pick alternatives"
    products = vendor.get("products", [])
    assert isinstance(products, list) and all(isinstance(p, str) and p for p in products)
    assert vendor["platform"] in PLATFORMS
    assert vendor["confidence"] in CONFIDENCES
    assert isinstance(vendor.get("notes", ""), str)
    if "status_page" in vendor:
        assert _is_https(vendor["status_page"]), vendor["status_page"]
    if "api_base" in vendor:
        assert _is_https(vendor["api_base"]), vendor["api_base"]
        assert not vendor["api_base"].endswith("/")
    if "api_format" in vendor:
        assert vendor["api_format"] in API_FORMATS
    if "probe" in vendor:
        probe = vendor["probe"]
        assert "api_base" in vendor, "a probe is relative to api_base"
        assert set(probe) == {"method", "path", "auth"}
        assert probe["method"] in {"GET", "HEAD", "POST"}
        assert probe["path"].startswith("/")
        assert probe["auth"] in PROBE_AUTHS


@pytest.mark.parametrize("vendor", VENDORS, ids=lambda v: v["id"])
def test_source_ids_unique_within_vendor(vendor: dict[str, Any]) -> None:
    sids = [s["id"] for s in vendor.get("sources", [])]
    assert len(sids) == len(set(sids)), f"duplicate source ids in {vendor['id']}: {sids}"
    for sid in sids:
        assert ID_RE.fullmatch(sid), f"malformed source id {sid!r}"


@pytest.mark.parametrize(
    ("vendor_id", "source"), _all_sources(), ids=[f"{vid}/{s['id']}" for vid, s in _all_sources()]
)
def test_source_fields(vendor_id: str, source: dict[str, Any]) -> None:
    unknown = set(source) - SOURCE_KEYS
    assert not unknown, f"{vendor_id}/{source['id']}: unknown keys {unknown}"
    assert source["type"] in SOURCE_TYPES, f"{vendor_id}/{source['id']}: bad type {source['type']!r}"
    assert _is_https(source["url"]), f"{vendor_id}/{source['id']}: not https: {source['url']}"
    if "interval" in source:
        assert isinstance(source["interval"], int) and not isinstance(source["interval"], bool)
        assert source["interval"] >= 30
    if source["type"] == "gcp":
        ids = source.get("product_ids")
        assert isinstance(ids, list) and ids, f"{vendor_id}/{source['id']}: gcp source needs product_ids"
        assert all(isinstance(i, str) and i for i in ids)
        assert len(ids) == len(set(ids))
    else:
        assert "product_ids" not in source, "product_ids only applies to gcp sources"
    if "ignore_components" in source:
        assert all(isinstance(c, str) for c in source["ignore_components"])
    if "html" in source:
        assert source["type"] == "html"
        assert isinstance(source["html"], dict)
    if "confidence" in source:
        assert source["confidence"] in CONFIDENCES
    if source["type"] == "http":
        assert source.get("confidence") in CONFIDENCES, "every http check says how sure we are of it"
    else:
        assert not (set(source) & HTTP_KEYS), "http settings only apply to http sources"


@pytest.mark.parametrize("vendor", VENDORS, ids=lambda v: v["id"])
def test_every_vendor_has_a_source_and_a_comparison_line(vendor: dict[str, Any]) -> None:
    assert vendor.get("sources"), f"{vendor['id']}: every catalog vendor is watched by at least one source"
    line = vendor.get("comparison")
    assert isinstance(line, dict) and set(line) == {"en", "fr"}, "one line in English and one in French"
    for text in line.values():
        assert 20 <= len(text) <= 140 and "\n" not in text, text


def test_catalog_http_checks_are_valid() -> None:
    from watcher.catalog import resolve
    from watcher.config import Settings

    checks = [s for v in resolve(Settings()) for s in v.sources if s.type == "http"]
    assert {s.vendor for s in checks} >= {"jasper", "copyai", "writesonic", "rytr", "midjourney", "canva", "notion"}
    assert all(s.check is not None and s.check.max_latency for s in checks)


def test_gemini_product_is_tracked() -> None:
    gcp = [s for s in BY_ID["google"].get("sources", []) if s["type"] == "gcp"]
    assert gcp, "google needs a gcp source"
    assert "Z0FZJAMvEB4j3NbCJs6B" in gcp[0]["product_ids"]  # Vertex Gemini API


@pytest.mark.parametrize("vendor_id", CORE_AI_IDS)
def test_core_vendor_has_source_or_explanation(vendor_id: str) -> None:
    vendor = BY_ID[vendor_id]
    if not vendor.get("sources"):
        assert vendor.get("notes", "").strip(), f"{vendor_id}: no sources and no note saying why"


def test_sourceless_vendors_are_explained() -> None:
    for vendor in VENDORS:
        if not vendor.get("sources"):
            assert vendor["confidence"] == "unverified", vendor["id"]
            assert vendor.get("notes", "").strip(), vendor["id"]


def test_incident_io_pages_have_no_maintenances_source() -> None:
    for vendor in VENDORS:
        if vendor["platform"] == "incident.io":
            types = {s["type"] for s in vendor.get("sources", [])}
            assert "statuspage_maintenances" not in types, f"{vendor['id']}: 404 on incident.io"


def test_source_urls_unique_within_vendor() -> None:
    for vendor in VENDORS:
        urls = [s["url"] for s in vendor.get("sources", [])]
        assert len(urls) == len(set(urls)), vendor["id"]


def test_azure_openai_if_present() -> None:
    vendor = BY_ID.get("azure_openai")
    if vendor is None:
        pytest.skip("azure_openai not in catalog")
    assert vendor.get("sources") or vendor.get("notes")
