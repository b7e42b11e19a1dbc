"""Why a vendor API refused or failed a probe, in an error class and plain words, with any key scrubbed.

The vendors' error bodies (OpenAI, Anthropic, Gemini) are read here and only here, so that "our key is
broken", "the vendor is failing" and "the response changed shape" are told apart in one place.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import httpx

from watcher import linear

if TYPE_CHECKING:  # annotations only: results imports this module
    from watcher.probes.results import ApiSpec, ProbeRun

_ERROR_BODY_BYTES = 64_000
_VENDOR_TEXT_CHARS = 200


# --------------------------------------------------------------------------- errors


class ProbeFailure(Exception):
    def __init__(self, error_class: str, message: str):
        super().__init__(message)
        self.error_class = error_class
        self.message = message


class Rejected(Exception):
    """A non-200 answer: its classified failure, and the vendor's text (for a retry decision)."""

    def __init__(self, failure: ProbeFailure, text: str):
        super().__init__(failure.message)
        self.failure = failure
        self.text = text


@dataclass(slots=True)
class _ErrorInfo:
    codes: frozenset[str]
    """Lower-cased error codes, types, statuses and reasons found in the body."""
    message: str
    request_id: str | None = None


_AUTH_CODES = frozenset(
    {
        "authentication_error",
        "permission_error",
        "invalid_api_key",
        "unauthenticated",
        "permission_denied",
        "api_key_invalid",
        "invalid_authentication",
    }
)
_RATE_CODES = frozenset(
    {"rate_limit_error", "rate_limit_exceeded", "resource_exhausted", "insufficient_quota"}
)
_MODEL_CODES = frozenset(
    {"model_not_found", "model_decommissioned", "model_deprecated", "model_retired", "model_not_available"}
)
_NOT_FOUND_CODES = frozenset({"not_found_error", "not_found", "model_not_found"})
_MODEL_GONE_WORDS = re.compile(
    r"\bmodels?\b.{0,100}?(?:does ?n[o']t exist|not exist|not found|deprecated|retired|decommissioned"
    r"|discontinued|no longer (?:available|supported|exists?))|\b(?:unknown|invalid) model\b",
    re.IGNORECASE,
)


async def rejection(api: ApiSpec, run: ProbeRun, resp: httpx.Response, *, about_model: bool) -> Rejected:
    """Read (a capped piece of) an error answer and say what it means."""
    raw = b""
    try:
        async for chunk in resp.aiter_bytes():
            raw += chunk
            if len(raw) >= _ERROR_BODY_BYTES:
                break
    except httpx.HTTPError:
        pass  # the status alone still says enough
    run.mark_end()
    info = _error_info(raw, api.key)
    if info.request_id and not run.request_id:
        run.request_id = info.request_id
    retry = resp.headers.get("retry-after")
    failure = _classify(api, run, resp.status_code, info, about_model=about_model, retry_after=retry)
    return Rejected(failure, info.message + " " + " ".join(sorted(info.codes)))


def in_stream_failure(api: ApiSpec, run: ProbeRun, obj: dict[str, Any]) -> ProbeFailure:
    info = _error_info(obj, api.key)
    if info.request_id and not run.request_id:
        run.request_id = info.request_id
    return _classify(api, run, None, info, about_model=True, retry_after=None)


def _error_info(body: bytes | dict[str, Any], key: str | None) -> _ErrorInfo:
    obj: Any = body
    if isinstance(body, bytes):
        try:
            obj = json.loads(body)
        except (ValueError, RecursionError):
            return _ErrorInfo(frozenset(), excerpt(body, key))
    if isinstance(obj, list) and obj and isinstance(obj[0], dict):
        obj = obj[0]  # Google wraps errors in a list outside alt=sse
    if not isinstance(obj, dict):
        return _ErrorInfo(frozenset(), excerpt(json.dumps(obj)[:1000], key))
    codes: set[str] = set()
    err = obj.get("error")
    src = err if isinstance(err, dict) else obj
    for name in ("code", "type", "status"):
        value = src.get(name)
        if isinstance(value, str | int) and not isinstance(value, bool) and str(value) != "error":
            codes.add(str(value).lower())
    details = src.get("details")
    for detail in details if isinstance(details, list) else ():
        if isinstance(detail, dict) and isinstance(detail.get("reason"), str):
            codes.add(detail["reason"].lower())
    message: Any = src.get("message")
    if message is None and isinstance(err, str):
        message = err
    if message is None:
        message = src.get("detail")
    if message is None:
        message = obj
    text = message if isinstance(message, str) else json.dumps(message, ensure_ascii=False)[:2000]
    rid = obj.get("request_id")
    return _ErrorInfo(frozenset(codes), _clean(text, key), rid if isinstance(rid, str) else None)


def _classify(
    api: ApiSpec,
    run: ProbeRun,
    status: int | None,
    info: _ErrorInfo,
    *,
    about_model: bool,
    retry_after: str | None,
) -> ProbeFailure:
    codes, text = info.codes, info.message
    where = f"HTTP {status}" if status is not None else f"an error inside the HTTP {run.status} stream"
    extra = f", retry after {retry_after} s" if retry_after and status in (429, 503, 529) else ""
    said = f": {text}" if text else ""
    lowered = text.lower()

    def failure(error_class: str, lead: str) -> ProbeFailure:
        return ProbeFailure(error_class, f"{lead} ({where}{extra}){said}")

    if status in (401, 403) or codes & _AUTH_CODES or (status == 400 and "api key" in lowered):
        if not api.key:
            return failure("auth", f"{api.vendor} wants an API key and none is configured")
        return failure("auth", "our API key was rejected")
    if status == 529 or "overloaded_error" in codes or ((status or 500) >= 500 and "overloaded" in lowered):
        return failure("overloaded", f"{api.vendor} is overloaded")
    if status == 429 or codes & _RATE_CODES:
        return failure("rate_limited", f"{api.vendor} rate-limits us")
    if about_model:
        model = run.requested_model or "the model"
        if (
            codes & _MODEL_CODES
            or status == 410
            or (status == 404 and (codes & _NOT_FOUND_CODES or "model" in lowered))
            or _MODEL_GONE_WORDS.search(text)
        ):
            return failure("model_gone", f"model {model} is unknown, retired or deprecated at {api.vendor}")
    if status is None or status >= 500:
        return failure("vendor_error", f"{api.vendor} failed")
    if 400 <= status < 500:
        return failure("bad_request", f"{api.vendor} refused our request")
    return failure("vendor_error", f"{api.vendor} gave an unexpected answer")


_KEYLIKE = re.compile(r"\S*\*{3,}\S*|\b(?:sk|xai|gsk)[-_][-_A-Za-z0-9]{12,}|\bAIza[-_A-Za-z0-9]{20,}")
# Linear-time (watcher.linear): an error page of "<script" repeated took seconds with re.
_TAGS = linear.compile(r"(?is)<script\b.*?</script>|<style\b.*?</style>|<[^>]*>")


def _clean(text: str, key: str | None) -> str:
    """Vendor text made safe for an error message: no key, one line, at most 200 characters."""
    text = scrub(text, key)
    text = _KEYLIKE.sub("***", text)
    text = " ".join(text.split())
    if len(text) > _VENDOR_TEXT_CHARS:
        text = text[: _VENDOR_TEXT_CHARS - 1] + "…"
    return text


def scrub(text: str, key: str | None) -> str:
    for secret in {key or "", (key or "").strip()}:
        if len(secret) >= 8:  # shorter is no real key, and replacing it would garble words
            text = text.replace(secret, "***")
    return text


def excerpt(raw: bytes | str, key: str | None) -> str:
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
    text = text[:5000]
    if "<" in text and ">" in text:
        text = _TAGS.sub(" ", text)
    return _clean(text, key) or "(empty)"
