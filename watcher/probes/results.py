"""What a probe of a vendor API asks and what it measured: :class:`ApiSpec`, :class:`ProbeResult`,
the error classes, and the running tally of one exchange.

Apart from the clients so that the error classification and the stream parsers, which fill the tally,
do not import the clients that drive them.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

import httpx

from watcher.probes.failures import ProbeFailure, scrub

Format = Literal["openai", "anthropic", "gemini"]

MAX_BYTES = 1_000_000

ERROR_CLASSES = (
    "timeout",
    "connect",
    "dns",
    "tls",
    "network",
    "auth",
    "rate_limited",
    "vendor_error",
    "overloaded",
    "model_gone",
    "bad_request",
    "malformed",
)

_SECRET_HEADERS = frozenset({"authorization", "x-api-key", "x-goog-api-key", "api-key", "cookie"})


@dataclass(frozen=True, slots=True)
class ApiSpec:
    """Where and how to reach one vendor's API. ``key`` is a secret: never shown by repr."""

    vendor: str
    format: Format
    base_url: str
    key: str | None = None
    headers: tuple[tuple[str, str], ...] = ()

    def __repr__(self) -> str:
        key = "'***'" if self.key else repr(self.key)
        headers = tuple((k, "***" if k.lower() in _SECRET_HEADERS else v) for k, v in self.headers)
        return (
            f"ApiSpec(vendor={self.vendor!r}, format={self.format!r}, base_url={self.base_url!r}, "
            f"key={key}, headers={headers!r})"
        )


@dataclass(frozen=True, slots=True)
class ProbeResult:
    vendor: str
    kind: Literal["models", "chat"]
    started_at: datetime
    ok: bool
    model: str | None = None
    status: int | None = None
    error_class: str | None = None
    error: str | None = None
    ttfb_s: float | None = None
    ttft_s: float | None = None
    total_s: float | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    tokens_per_s: float | None = None
    text: str | None = None
    models: tuple[str, ...] | None = None
    deprecation: str | None = None
    sunset: str | None = None
    request_id: str | None = None


# --------------------------------------------------------------------------- bookkeeping


class ProbeRun:
    """What one probe has measured so far, so that a failure at any point still reports it."""

    def __init__(self, api: ApiSpec, kind: Literal["models", "chat"], model: str | None = None):
        self.api = api
        self.kind = kind
        self.requested_model = model
        self.resolved_model: str | None = None
        self.started_at = datetime.now(UTC)
        self.t0 = time.perf_counter()
        self.status: int | None = None
        self.ttfb: float | None = None
        self.ttft: float | None = None
        self.total: float | None = None
        self.parts: list[str] = []
        self.input_tokens: int | None = None
        self.usage_output: int | None = None
        self.models: tuple[str, ...] | None = None
        self.deprecation: str | None = None
        self.sunset: str | None = None
        self.request_id: str | None = None

    def elapsed(self) -> float:
        return time.perf_counter() - self.t0

    def restart(self) -> None:
        """A second attempt (after a refused option): time the exchange that answers."""
        self.t0 = time.perf_counter()
        self.ttfb = self.ttft = self.total = None
        self.parts.clear()
        self.input_tokens = self.usage_output = None

    def saw_response(self, resp: httpx.Response) -> None:
        self.status = resp.status_code
        if self.ttfb is None:
            self.ttfb = self.elapsed()
        h = resp.headers
        self.deprecation = h.get("deprecation") or self.deprecation
        self.sunset = h.get("sunset") or self.sunset
        self.request_id = h.get("x-request-id") or h.get("request-id") or self.request_id

    def add_text(self, text: str) -> None:
        if not text:
            return
        if self.ttft is None:
            self.ttft = self.elapsed()
        if sum(map(len, self.parts)) + len(text) > MAX_BYTES:
            raise ProbeFailure("malformed", f"the answer exceeds {MAX_BYTES:,} characters")
        self.parts.append(text)

    def mark_end(self) -> None:
        self.total = self.elapsed()

    def result(self, error_class: str | None = None, error: str | None = None) -> ProbeResult:
        ok = error_class is None
        total = self.total if ok and self.total is not None else self.elapsed()
        text = "".join(self.parts) if self.kind == "chat" else None
        output = self.usage_output
        if self.kind == "chat" and output is None and (ok or text):
            output = max(1, round(len(text or "") / 4)) if text else 0
        rate = None
        if ok and output and self.ttft is not None and total - self.ttft > 0:
            rate = output / (total - self.ttft)
        if error is not None:
            error = scrub(error, self.api.key)
        return ProbeResult(
            vendor=self.api.vendor,
            kind=self.kind,
            started_at=self.started_at,
            ok=ok,
            model=(self.resolved_model or self.requested_model) if self.kind == "chat" else None,
            status=self.status,
            error_class=error_class,
            error=error,
            ttfb_s=self.ttfb,
            ttft_s=self.ttft,
            total_s=total,
            input_tokens=self.input_tokens,
            output_tokens=output,
            tokens_per_s=rate,
            text=text if self.kind == "chat" and (ok or text) else None,
            models=self.models if ok else None,
            deprecation=self.deprecation,
            sunset=self.sunset,
            request_id=self.request_id,
        )
