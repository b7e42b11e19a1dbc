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

This module drives the exchanges (requests, deadlines, body caps, paging); what a probe asks and
measures is in :mod:`watcher.probes.results`, the streamed formats in :mod:`watcher.probes.streams`,
and the reading of vendors' errors in :mod:`watcher.probes.failures`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
from collections.abc import AsyncIterator, Callable
from typing import Any
from urllib.parse import quote

import httpx

from watcher.fetch import transport_error
from watcher.probes.failures import ProbeFailure, Rejected, excerpt, rejection
from watcher.probes.results import ERROR_CLASSES, MAX_BYTES, ApiSpec, Format, ProbeResult, ProbeRun
from watcher.probes.streams import AnthropicStream, GeminiStream, OpenAIStream, SSEParser, StreamHandler

__all__ = ["ERROR_CLASSES", "MAX_BYTES", "ApiSpec", "Format", "ProbeResult", "chat", "list_models"]

log = logging.getLogger(__name__)
"""Cap on the decoded body of one response (a models list page or a whole stream)."""
_MAX_PAGES = 20
_ANTHROPIC_VERSION = "2023-06-01"
"""``auth``: 401/403, our key is broken (not a vendor outage). ``rate_limited``: 429.
``vendor_error``: 5xx or an error inside a 200 stream. ``overloaded``: Anthropic 529
or an ``overloaded_error``. ``model_gone``: the model is unknown, retired or
deprecated. ``bad_request``: any other 4xx. ``malformed``: a body or stream we
cannot parse or that lacks the expected fields (the response changed shape).
``dns``/``connect``/``tls``/``network``/``timeout``: the exchange itself failed."""


# --------------------------------------------------------------------------- public API


async def list_models(client: httpx.AsyncClient, api: ApiSpec, *, timeout: float = 10) -> ProbeResult:
    """The vendor's model list (``GET {base}/models``), following pages; never raises."""
    run = ProbeRun(api, "models")

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
    run = ProbeRun(api, "chat", model)
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
            except Rejected as r:
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
) -> tuple[str, dict[str, Any], StreamHandler]:
    if api.format == "openai":
        return (
            _url(api, "/chat/completions"),
            _openai_body(api, model, prompt, max_tokens, temperature, system, stream_options),
            OpenAIStream(),
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
        return _url(api, "/messages"), body, AnthropicStream()
    if api.format == "gemini":
        name = model.removeprefix("models/")
        config: dict[str, Any] = {"maxOutputTokens": max_tokens}
        if temperature is not None:
            config["temperature"] = temperature
        body = {"contents": [{"role": "user", "parts": [{"text": prompt}]}], "generationConfig": config}
        if system:
            body["systemInstruction"] = {"parts": [{"text": system}]}
        url = _url(api, f"/models/{quote(name, safe='-._~')}:streamGenerateContent?alt=sse")
        return url, body, GeminiStream()
    raise ProbeFailure(
        "bad_request", f"unknown API format {api.format!r} (expected openai, anthropic or gemini)"
    )


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
    client: httpx.AsyncClient, api: ApiSpec, run: ProbeRun, url: str, params: dict[str, str], timeout: float
) -> Any:
    headers = _headers(api, "application/json")
    async with client.stream(
        "GET", url, params=params, headers=headers, timeout=httpx.Timeout(timeout)
    ) as resp:
        run.saw_response(resp)
        if resp.status_code != 200:
            raise (await rejection(api, run, resp, about_model=False)).failure
        raw = bytearray()
        async for chunk in resp.aiter_bytes():
            raw += chunk
            if len(raw) > MAX_BYTES:
                raise ProbeFailure("malformed", f"the models list exceeds the {MAX_BYTES:,}-byte cap")
        run.mark_end()
    try:
        return json.loads(raw)
    except (ValueError, RecursionError):
        raise ProbeFailure(
            "malformed",
            f"the models list is not JSON ({_content_type(resp)}): {excerpt(bytes(raw), api.key)}",
        ) from None


async def _stream(
    client: httpx.AsyncClient,
    api: ApiSpec,
    run: ProbeRun,
    url: str,
    body: dict[str, Any],
    handler: StreamHandler,
    timeout: float,
    *,
    about_model: bool,
) -> None:
    headers = _headers(api, "text/event-stream")
    async with client.stream("POST", url, json=body, headers=headers, timeout=httpx.Timeout(timeout)) as resp:
        run.saw_response(resp)
        if resp.status_code != 200:
            raise await rejection(api, run, resp, about_model=about_model)
        parser = SSEParser()
        size = 0
        events = 0
        done = False
        chunks = resp.aiter_bytes()
        async for chunk in chunks:
            size += len(chunk)
            if size > MAX_BYTES:
                raise ProbeFailure("malformed", f"the answer stream exceeds the {MAX_BYTES:,}-byte cap")
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
            raise ProbeFailure(
                "malformed",
                f"HTTP 200 without any event-stream data ({_content_type(resp)}): "
                f"{excerpt(parser.raw_start, api.key)}",
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


# --------------------------------------------------------------------------- models lists


def _parse_models_page(fmt: str, body: Any) -> tuple[list[str], dict[str, str]]:
    if not isinstance(body, dict):
        raise ProbeFailure("malformed", f"the models list is a JSON {type(body).__name__}, not an object")
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
        raise ProbeFailure("malformed", f"the models list has no {expected!r} array (keys: {keys})")
    ids = [
        item[field].removeprefix(prefix)
        for item in items
        if isinstance(item, dict) and isinstance(item.get(field), str) and item[field]
    ]
    if items and not ids:
        raise ProbeFailure("malformed", f"no entry of the models list has a {field!r}")
    nxt: dict[str, str] = {}
    if fmt == "anthropic" and body.get("has_more") is True and isinstance(body.get("last_id"), str):
        nxt = {"after_id": body["last_id"]}
    elif fmt == "gemini" and isinstance(body.get("nextPageToken"), str) and body["nextPageToken"]:
        nxt = {"pageToken": body["nextPageToken"]}
    return ids, nxt


def _has_gaierror(exc: BaseException) -> bool:
    cause: BaseException | None = exc
    for _ in range(10):
        if cause is None:
            return False
        if isinstance(cause, socket.gaierror):
            return True
        cause = cause.__cause__ or cause.__context__
    return False


async def _guarded(run: ProbeRun, api: ApiSpec, timeout: float, go: Callable[[], Any]) -> ProbeResult:
    """Run ``go`` under one deadline and turn every way it can fail into a ProbeResult."""
    if api.format not in ("openai", "anthropic", "gemini"):
        return run.result(
            "bad_request", f"unknown API format {api.format!r} (expected openai, anthropic or gemini)"
        )
    try:
        async with asyncio.timeout(timeout):
            await go()
    except ProbeFailure as f:
        return run.result(f.error_class, f.message)
    except Rejected as r:
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
