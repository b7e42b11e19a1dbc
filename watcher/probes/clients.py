"""API clients for the three wire formats that latency probes and canary prompts speak.

* ``openai``: OpenAI Chat Completions and everything compatible with it (Mistral,
  Groq, xAI, DeepSeek, Perplexity, Gemini's OpenAI layer). ``GET {base}/models``;
  ``POST {base}/chat/completions`` streamed as SSE ``data: {...}`` chunks ending in
  ``data: [DONE]``.
* ``anthropic``: the Messages API. ``GET {base}/models``; ``POST {base}/messages``
  streamed as named SSE events (``message_start`` … ``message_stop``, and ``error``
  events that can arrive after HTTP 200).
* ``gemini``: the Gemini Developer API. ``GET {base}/models``;
  ``POST {base}/models/{model}:streamGenerateContent?alt=sse``.

Neither function raises: every outcome is a :class:`ProbeResult` whose
``error_class`` (one of :data:`ERROR_CLASSES`) tells "our key is broken" from "the
vendor is failing" from "the response changed shape", with an ``error`` in plain
words. Guarantees, as in :mod:`watcher.fetch`: one deadline on the whole exchange
(a server that drips a byte a second cannot hold a probe past ``timeout``), a cap
on the decoded body (:data:`MAX_BYTES`), and the API key never appears in a
result, a repr, a log line or an error (it travels in a header, never in a URL).

Measurements (docs/detection.md 1.2 and 5.1): ``ttfb_s`` is the time to response
headers, ``ttft_s`` the time to the first non-empty *answer* text (reasoning and
thinking deltas do not count), ``total_s`` the time to the end of the answer, and
``tokens_per_s`` is ``output_tokens / (total_s - ttft_s)``. ``output_tokens`` is
the vendor's own count (OpenAI ``completion_tokens``, Anthropic ``output_tokens``,
Gemini ``candidatesTokenCount``) when it reports one, else ``len(text) / 4``.

For chat, ``ProbeResult.model`` is the model the API says answered (OpenAI
``model``, Anthropic ``message.model``, Gemini ``modelVersion``: often a dated
snapshot of the alias asked for), or the requested model when the API names none.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import socket
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal
from urllib.parse import quote

import httpx

from watcher import linear
from watcher.fetch import transport_error

log = logging.getLogger(__name__)

Format = Literal["openai", "anthropic", "gemini"]

MAX_BYTES = 1_000_000
"""Cap on the decoded body of one response (a models list page or a whole stream)."""

_ERROR_BODY_BYTES = 64_000
_VENDOR_TEXT_CHARS = 200
_MAX_PAGES = 20
_ANTHROPIC_VERSION = "2023-06-01"

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
"""``auth``: 401/403, our key is broken (not a vendor outage). ``rate_limited``: 429.
``vendor_error``: 5xx or an error inside a 200 stream. ``overloaded``: Anthropic 529
or an ``overloaded_error``. ``model_gone``: the model is unknown, retired or
deprecated. ``bad_request``: any other 4xx. ``malformed``: a body or stream we
cannot parse or that lacks the expected fields (the response changed shape).
``dns``/``connect``/``tls``/``network``/``timeout``: the exchange itself failed."""

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


# --------------------------------------------------------------------------- public API


async def list_models(client: httpx.AsyncClient, api: ApiSpec, *, timeout: float = 10) -> ProbeResult:
    """The vendor's model list (``GET {base}/models``), following pages; never raises."""
    run = _Run(api, "models")

    async def go() -> None:
        seen: dict[str, None] = {}
        params: dict[str, str] = {}
        if api.format == "anthropic":
            params["limit"] = "1000"  # the default page is 20 models
        elif api.format == "gemini":
            params["pageSize"] = "1000"  # the default page is 50 models
        for _ in range(_MAX_PAGES):
            body = await _get_json(client, api, run, _url(api, "/models"), params, timeout)
            ids, next_params = _parse_models_page(api.format, body)
            seen.update(dict.fromkeys(ids))
            if not next_params:
                break
            params = {**params, **next_params}
        run.models = tuple(seen)

    return await _guarded(run, api, timeout, go)


async def chat(
    client: httpx.AsyncClient,
    api: ApiSpec,
    model: str,
    prompt: str,
    *,
    max_tokens: int = 16,
    temperature: float | None = 0.0,
    timeout: float = 30,
    system: str | None = None,
) -> ProbeResult:
    """One streamed chat turn; never raises.

    ``temperature=None`` leaves the field out (OpenAI reasoning models reject any
    value but their default).
    """
    run = _Run(api, "chat", model)
    drop_stream_options = False

    async def go() -> None:
        nonlocal drop_stream_options
        while True:
            url, body, handler = _chat_request(
                api, model, prompt, max_tokens, temperature, system, not drop_stream_options
            )
            try:
                await _stream(client, api, run, url, body, handler, timeout, about_model=True)
                return
            except _Rejected as r:
                # An OpenAI-compatible API that refuses stream_options (Mistral does: 422
                # extra_forbidden) is asked once more without it; usage is then estimated.
                if (
                    api.format == "openai"
                    and not drop_stream_options
                    and r.failure.error_class == "bad_request"
                    and "stream_options" in r.text
                ):
                    drop_stream_options = True
                    run.restart()
                    continue
                raise r.failure from None

    return await _guarded(run, api, timeout, go)


# --------------------------------------------------------------------------- requests


def _url(api: ApiSpec, path: str) -> str:
    return api.base_url.rstrip("/") + path


def _headers(api: ApiSpec, accept: str) -> httpx.Headers:
    headers = httpx.Headers({"Accept": accept})
    if api.format == "anthropic":
        headers["anthropic-version"] = _ANTHROPIC_VERSION
    key = (api.key or "").strip()  # a key file's trailing newline is not part of the key
    if key:
        if api.format == "openai":
            headers["Authorization"] = f"Bearer {key}"
        elif api.format == "anthropic":
            headers["x-api-key"] = key
        elif api.format == "gemini":
            headers["x-goog-api-key"] = key  # never ?key=: URLs end up in logs
    for name, value in api.headers:
        headers[name] = value
    return headers


def _host(api: ApiSpec) -> str:
    try:
        return httpx.URL(api.base_url).host.lower()
    except Exception:
        return ""


def _chat_request(
    api: ApiSpec,
    model: str,
    prompt: str,
    max_tokens: int,
    temperature: float | None,
    system: str | None,
    stream_options: bool,
) -> tuple[str, dict[str, Any], _Handler]:
    if api.format == "openai":
        return (
            _url(api, "/chat/completions"),
            _openai_body(api, model, prompt, max_tokens, temperature, system, stream_options),
            _OpenAIStream(),
        )
    if api.format == "anthropic":
        body: dict[str, Any] = {
            "model": model,
            "max_tokens": max_tokens,
            "messages": [{"role": "user", "content": prompt}],
            "stream": True,
        }
        if temperature is not None:
            body["temperature"] = temperature
        if system:
            body["system"] = system
        return _url(api, "/messages"), body, _AnthropicStream()
    if api.format == "gemini":
        name = model.removeprefix("models/")
        config: dict[str, Any] = {"maxOutputTokens": max_tokens}
        if temperature is not None:
            config["temperature"] = temperature
        body = {"contents": [{"role": "user", "parts": [{"text": prompt}]}], "generationConfig": config}
        if system:
            body["systemInstruction"] = {"parts": [{"text": system}]}
        url = _url(api, f"/models/{quote(name, safe='-._~')}:streamGenerateContent?alt=sse")
        return url, body, _GeminiStream()
    raise _Failure("bad_request", f"unknown API format {api.format!r} (expected openai, anthropic or gemini)")


def _openai_body(
    api: ApiSpec,
    model: str,
    prompt: str,
    max_tokens: int,
    temperature: float | None,
    system: str | None,
    stream_options: bool = True,
) -> dict[str, Any]:
    host = _host(api)
    messages = [{"role": "system", "content": system}] if system else []
    messages.append({"role": "user", "content": prompt})
    body: dict[str, Any] = {"model": model, "messages": messages, "stream": True}
    # Mistral rejects stream_options and max_completion_tokens (422 extra_forbidden) and
    # reports usage anyway; OpenAI's reasoning models reject max_tokens.
    if stream_options and not host.endswith("mistral.ai"):
        body["stream_options"] = {"include_usage": True}
    body["max_completion_tokens" if host.endswith("openai.com") else "max_tokens"] = max_tokens
    if temperature is not None:
        body["temperature"] = temperature
    return body


# --------------------------------------------------------------------------- one exchange


async def _get_json(
    client: httpx.AsyncClient, api: ApiSpec, run: _Run, url: str, params: dict[str, str], timeout: float
) -> Any:
    headers = _headers(api, "application/json")
    async with client.stream(
        "GET", url, params=params, headers=headers, timeout=httpx.Timeout(timeout)
    ) as resp:
        run.saw_response(resp)
        if resp.status_code != 200:
            raise (await _rejection(api, run, resp, about_model=False)).failure
        raw = bytearray()
        async for chunk in resp.aiter_bytes():
            raw += chunk
            if len(raw) > MAX_BYTES:
                raise _Failure("malformed", f"the models list exceeds the {MAX_BYTES:,}-byte cap")
        run.mark_end()
    try:
        return json.loads(raw)
    except (ValueError, RecursionError):
        raise _Failure(
            "malformed",
            f"the models list is not JSON ({_content_type(resp)}): {_excerpt(bytes(raw), api.key)}",
        ) from None


async def _stream(
    client: httpx.AsyncClient,
    api: ApiSpec,
    run: _Run,
    url: str,
    body: dict[str, Any],
    handler: _Handler,
    timeout: float,
    *,
    about_model: bool,
) -> None:
    headers = _headers(api, "text/event-stream")
    async with client.stream("POST", url, json=body, headers=headers, timeout=httpx.Timeout(timeout)) as resp:
        run.saw_response(resp)
        if resp.status_code != 200:
            raise await _rejection(api, run, resp, about_model=about_model)
        parser = _SSEParser()
        size = 0
        events = 0
        done = False
        chunks = resp.aiter_bytes()
        async for chunk in chunks:
            size += len(chunk)
            if size > MAX_BYTES:
                raise _Failure("malformed", f"the answer stream exceeds the {MAX_BYTES:,}-byte cap")
            for name, data in parser.feed(chunk):
                events += 1
                if handler.on_event(name, data, run, api):
                    done = True
                    break
            if done:
                break
        if not done:
            for name, data in parser.close():
                events += 1
                if handler.on_event(name, data, run, api):
                    break
        run.mark_end()
        if done:
            await _drain(chunks, MAX_BYTES - size)
        if events == 0:
            raise _Failure(
                "malformed",
                f"HTTP 200 without any event-stream data ({_content_type(resp)}): "
                f"{_excerpt(parser.raw_start, api.key)}",
            )
        handler.finish()


async def _drain(chunks: AsyncIterator[bytes], budget: int) -> None:
    """Read what follows the end marker (normally just the end of the chunked body), so the
    connection can be reused; a server that stalls or chatters there costs at most 0.2 s."""
    try:
        async with asyncio.timeout(0.2):
            async for chunk in chunks:
                budget -= len(chunk)
                if budget < 0:
                    return
    except (TimeoutError, httpx.HTTPError):
        pass


def _content_type(resp: httpx.Response) -> str:
    return (resp.headers.get("content-type") or "no content type").split(";")[0].strip()


# --------------------------------------------------------------------------- SSE


class _SSEParser:
    """Incremental ``text/event-stream`` parser: yields ``(event name, data)`` per event.

    Lines end in LF or CRLF (a lone CR is not treated as a line end); ``:`` lines are
    comments; several ``data:`` lines join with newlines; other fields are ignored.
    An event still open when the stream ends is dispatched too (lenient).
    """

    def __init__(self) -> None:
        self._buf = b""
        self._event: str | None = None
        self._data: list[str] = []
        self.raw_start = b""

    def feed(self, chunk: bytes) -> list[tuple[str, str]]:
        if len(self.raw_start) < 300:
            self.raw_start += chunk[: 300 - len(self.raw_start)]
        lines = (self._buf + chunk).split(b"\n")
        self._buf = lines.pop()
        out: list[tuple[str, str]] = []
        for line in lines:
            self._line(line, out)
        return out

    def close(self) -> list[tuple[str, str]]:
        out: list[tuple[str, str]] = []
        if self._buf:
            self._line(self._buf, out)
            self._buf = b""
        self._line(b"", out)
        return out

    def _line(self, raw: bytes, out: list[tuple[str, str]]) -> None:
        if raw.endswith(b"\r"):
            raw = raw[:-1]
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise _Failure("malformed", "the answer stream is not valid UTF-8") from None
        if not line:
            if self._data:
                out.append((self._event or "message", "\n".join(self._data)))
            self._event, self._data = None, []
            return
        if line.startswith(":"):
            return
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event = value


def _json_object(data: str, what: str, key: str | None) -> dict[str, Any]:
    try:
        obj = json.loads(data)
    except (ValueError, RecursionError):
        raise _Failure("malformed", f"{what} is not JSON: {_excerpt(data, key)}") from None
    if not isinstance(obj, dict):
        raise _Failure("malformed", f"{what} is JSON but not an object: {_excerpt(data, key)}")
    return obj


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


class _Handler:
    """Turns one format's stream events into text, usage and a verdict."""

    def on_event(self, name: str, data: str, run: _Run, api: ApiSpec) -> bool:
        """Take one event; True when the stream is complete."""
        raise NotImplementedError

    def finish(self) -> None:
        """Raise malformed when the stream ended without completing the answer."""


class _OpenAIStream(_Handler):
    def __init__(self) -> None:
        self.done = False
        self.finished = False

    def on_event(self, name: str, data: str, run: _Run, api: ApiSpec) -> bool:
        if data.strip() == "[DONE]":
            self.done = True
            return True
        obj = _json_object(data, "a stream chunk", api.key)
        if obj.get("error"):
            raise _in_stream_failure(api, run, obj)
        if isinstance(obj.get("model"), str) and obj["model"]:
            run.resolved_model = obj["model"]
        usage = obj.get("usage")
        if isinstance(usage, dict):
            run.input_tokens = _int(usage.get("prompt_tokens"))
            run.usage_output = _int(usage.get("completion_tokens"))
        choices = obj.get("choices")
        if choices is None and not isinstance(usage, dict):
            raise _Failure(
                "malformed", f"a stream chunk has neither choices nor usage: {_excerpt(data, api.key)}"
            )
        if choices is not None and not isinstance(choices, list):
            raise _Failure("malformed", f"a stream chunk's choices is not a list: {_excerpt(data, api.key)}")
        for choice in choices or ():
            if not isinstance(choice, dict) or choice.get("index", 0) != 0:
                continue
            delta = choice.get("delta")
            if delta is not None and not isinstance(delta, dict):
                raise _Failure(
                    "malformed", f"a stream chunk's delta is not an object: {_excerpt(data, api.key)}"
                )
            content = (delta or {}).get("content")
            if isinstance(content, str):
                run.add_text(content)
            elif content is not None:
                raise _Failure(
                    "malformed", f"a stream chunk's content is not text: {_excerpt(data, api.key)}"
                )
            if choice.get("finish_reason"):
                self.finished = True
        return False

    def finish(self) -> None:
        if not (self.done or self.finished):
            raise _Failure(
                "malformed", "the stream ended before the answer did (no finish_reason, no [DONE])"
            )


class _AnthropicStream(_Handler):
    def __init__(self) -> None:
        self.started = False
        self.stopped = False

    def on_event(self, name: str, data: str, run: _Run, api: ApiSpec) -> bool:
        obj = _json_object(data, f"the {name} event", api.key)
        kind = obj.get("type") if isinstance(obj.get("type"), str) else name
        if kind == "error" or name == "error":
            raise _in_stream_failure(api, run, obj)
        if kind == "message_start":
            message = obj.get("message")
            if not isinstance(message, dict):
                raise _Failure("malformed", f"message_start without a message: {_excerpt(data, api.key)}")
            self.started = True
            if isinstance(message.get("model"), str) and message["model"]:
                run.resolved_model = message["model"]
            usage = message.get("usage")
            if isinstance(usage, dict):
                run.input_tokens = _int(usage.get("input_tokens"))
                run.usage_output = _int(usage.get("output_tokens"))
        elif kind == "content_block_delta":
            delta = obj.get("delta")
            if not isinstance(delta, dict):
                raise _Failure("malformed", f"content_block_delta without a delta: {_excerpt(data, api.key)}")
            if delta.get("type", "text_delta") == "text_delta":
                text = delta.get("text")
                if not isinstance(text, str):
                    raise _Failure("malformed", f"a text_delta without text: {_excerpt(data, api.key)}")
                run.add_text(text)
        elif kind == "message_delta":
            usage = obj.get("usage")
            if isinstance(usage, dict) and _int(usage.get("output_tokens")) is not None:
                run.usage_output = _int(usage.get("output_tokens"))
            if isinstance(usage, dict) and _int(usage.get("input_tokens")) is not None:
                run.input_tokens = _int(usage.get("input_tokens"))
        elif kind == "message_stop":
            self.stopped = True
            return True
        # ping, content_block_start/stop and event types added later are ignored.
        return False

    def finish(self) -> None:
        if not self.started:
            raise _Failure("malformed", "the stream has no message_start event")
        if not self.stopped:
            raise _Failure("malformed", "the stream ended before message_stop")


class _GeminiStream(_Handler):
    def __init__(self) -> None:
        self.finished = False

    def on_event(self, name: str, data: str, run: _Run, api: ApiSpec) -> bool:
        obj = _json_object(data, "a stream chunk", api.key)
        if obj.get("error"):
            raise _in_stream_failure(api, run, obj)
        if isinstance(obj.get("modelVersion"), str) and obj["modelVersion"]:
            run.resolved_model = obj["modelVersion"]
        usage = obj.get("usageMetadata")
        if isinstance(usage, dict):  # cumulative: the last chunk's counts win
            run.input_tokens = _int(usage.get("promptTokenCount"))
            run.usage_output = _int(usage.get("candidatesTokenCount"))
        feedback = obj.get("promptFeedback")
        if isinstance(feedback, dict) and feedback.get("blockReason"):
            self.finished = True  # the prompt was blocked: an answer, with no text
        candidates = obj.get("candidates")
        if candidates is None:
            if not isinstance(usage, dict) and not isinstance(feedback, dict):
                raise _Failure(
                    "malformed",
                    f"a stream chunk has no candidates or usageMetadata: {_excerpt(data, api.key)}",
                )
            return False
        if not isinstance(candidates, list):
            raise _Failure(
                "malformed", f"a stream chunk's candidates is not a list: {_excerpt(data, api.key)}"
            )
        if candidates:
            first = candidates[0]
            if not isinstance(first, dict):
                raise _Failure("malformed", f"a candidate is not an object: {_excerpt(data, api.key)}")
            content = first.get("content")
            parts = content.get("parts") if isinstance(content, dict) else None
            if content is not None and not isinstance(content, dict):
                raise _Failure(
                    "malformed", f"a candidate's content is not an object: {_excerpt(data, api.key)}"
                )
            if parts is not None and not isinstance(parts, list):
                raise _Failure("malformed", f"a candidate's parts is not a list: {_excerpt(data, api.key)}")
            for part in parts or ():
                if isinstance(part, dict) and not part.get("thought") and isinstance(part.get("text"), str):
                    run.add_text(part["text"])
            if first.get("finishReason"):
                self.finished = True  # STOP, MAX_TOKENS, SAFETY…: all answers
        return False

    def finish(self) -> None:
        if not self.finished:
            raise _Failure("malformed", "the stream ended without a finishReason")


# --------------------------------------------------------------------------- models lists


def _parse_models_page(fmt: str, body: Any) -> tuple[list[str], dict[str, str]]:
    if not isinstance(body, dict):
        raise _Failure("malformed", f"the models list is a JSON {type(body).__name__}, not an object")
    if fmt == "gemini":
        items = body.get("models")
        if items is None and not body:
            items = []  # Google APIs leave out empty lists
        field, prefix = "name", "models/"
    else:
        items, field, prefix = body.get("data"), "id", ""
    if not isinstance(items, list):
        keys = ", ".join(sorted(map(str, body))[:8]) or "none"
        expected = "models" if fmt == "gemini" else "data"
        raise _Failure("malformed", f"the models list has no {expected!r} array (keys: {keys})")
    ids = [
        item[field].removeprefix(prefix)
        for item in items
        if isinstance(item, dict) and isinstance(item.get(field), str) and item[field]
    ]
    if items and not ids:
        raise _Failure("malformed", f"no entry of the models list has a {field!r}")
    nxt: dict[str, str] = {}
    if fmt == "anthropic" and body.get("has_more") is True and isinstance(body.get("last_id"), str):
        nxt = {"after_id": body["last_id"]}
    elif fmt == "gemini" and isinstance(body.get("nextPageToken"), str) and body["nextPageToken"]:
        nxt = {"pageToken": body["nextPageToken"]}
    return ids, nxt


# --------------------------------------------------------------------------- errors


class _Failure(Exception):
    def __init__(self, error_class: str, message: str):
        super().__init__(message)
        self.error_class = error_class
        self.message = message


class _Rejected(Exception):
    """A non-200 answer: its classified failure, and the vendor's text (for a retry decision)."""

    def __init__(self, failure: _Failure, text: str):
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


async def _rejection(api: ApiSpec, run: _Run, resp: httpx.Response, *, about_model: bool) -> _Rejected:
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
    return _Rejected(failure, info.message + " " + " ".join(sorted(info.codes)))


def _in_stream_failure(api: ApiSpec, run: _Run, obj: dict[str, Any]) -> _Failure:
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
            return _ErrorInfo(frozenset(), _excerpt(body, key))
    if isinstance(obj, list) and obj and isinstance(obj[0], dict):
        obj = obj[0]  # Google wraps errors in a list outside alt=sse
    if not isinstance(obj, dict):
        return _ErrorInfo(frozenset(), _excerpt(json.dumps(obj)[:1000], key))
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
    run: _Run,
    status: int | None,
    info: _ErrorInfo,
    *,
    about_model: bool,
    retry_after: str | None,
) -> _Failure:
    codes, text = info.codes, info.message
    where = f"HTTP {status}" if status is not None else f"an error inside the HTTP {run.status} stream"
    extra = f", retry after {retry_after} s" if retry_after and status in (429, 503, 529) else ""
    said = f": {text}" if text else ""
    lowered = text.lower()

    def failure(error_class: str, lead: str) -> _Failure:
        return _Failure(error_class, f"{lead} ({where}{extra}){said}")

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
    text = _scrub(text, key)
    text = _KEYLIKE.sub("***", text)
    text = " ".join(text.split())
    if len(text) > _VENDOR_TEXT_CHARS:
        text = text[: _VENDOR_TEXT_CHARS - 1] + "…"
    return text


def _scrub(text: str, key: str | None) -> str:
    for secret in {key or "", (key or "").strip()}:
        if len(secret) >= 8:  # shorter is no real key, and replacing it would garble words
            text = text.replace(secret, "***")
    return text


def _excerpt(raw: bytes | str, key: str | None) -> str:
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
    text = text[:5000]
    if "<" in text and ">" in text:
        text = _TAGS.sub(" ", text)
    return _clean(text, key) or "(empty)"


# --------------------------------------------------------------------------- bookkeeping


class _Run:
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
            raise _Failure("malformed", f"the answer exceeds {MAX_BYTES:,} characters")
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
            error = _scrub(error, self.api.key)
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


def _has_gaierror(exc: BaseException) -> bool:
    cause: BaseException | None = exc
    for _ in range(10):
        if cause is None:
            return False
        if isinstance(cause, socket.gaierror):
            return True
        cause = cause.__cause__ or cause.__context__
    return False


async def _guarded(run: _Run, api: ApiSpec, timeout: float, go: Callable[[], Any]) -> ProbeResult:
    """Run ``go`` under one deadline and turn every way it can fail into a ProbeResult."""
    if api.format not in ("openai", "anthropic", "gemini"):
        return run.result(
            "bad_request", f"unknown API format {api.format!r} (expected openai, anthropic or gemini)"
        )
    try:
        async with asyncio.timeout(timeout):
            await go()
    except _Failure as f:
        return run.result(f.error_class, f.message)
    except _Rejected as r:
        return run.result(r.failure.error_class, r.failure.message)
    except (TimeoutError, httpx.TimeoutException):
        what = (
            "no complete answer" if run.ttfb is None else f"HTTP {run.status} came, but not the whole answer,"
        )
        return run.result("timeout", f"{what} within {timeout:g} s")
    except (httpx.UnsupportedProtocol, httpx.InvalidURL):
        return run.result("bad_request", f"the API base URL {api.base_url!r} is not a usable http(s) URL")
    except httpx.LocalProtocolError:
        # Never repeat the exception text: it can quote a header value, i.e. the key.
        return run.result(
            "bad_request", "our request could not be sent (a header value, e.g. the key, is invalid)"
        )
    except UnicodeEncodeError:
        return run.result(
            "bad_request", "our request could not be sent (non-ASCII characters in the key or a header)"
        )
    except httpx.TooManyRedirects:
        return run.result("vendor_error", f"{api.vendor} redirects in a loop")
    except httpx.DecodingError:
        return run.result("malformed", "the answer's compression is corrupt")
    except httpx.TransportError as e:
        fe = transport_error(e, api.base_url)
        error_class = {"connect": "connect", "tls": "tls"}.get(fe.kind, "network")
        if fe.kind == "network" and _has_gaierror(e):
            error_class = "dns"
        return run.result(error_class, fe.message)
    except Exception as e:  # a probe never raises; a bug here must not stop the scheduler
        log.warning(
            "probe of %s (%s) failed unexpectedly: %s", api.vendor, run.kind, type(e).__name__, exc_info=True
        )
        return run.result("malformed", f"unexpected {type(e).__name__} while reading the answer")
    return run.result()
