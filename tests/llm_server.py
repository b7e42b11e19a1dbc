"""A real HTTP server on 127.0.0.1 faking three LLM vendor APIs at once.

Wire formats (shapes from the vendors' public API references; see
shared/docs/status-sources.md §4-5 — synthetic, not captured payloads):

==========  ====================================================  ==========================
format      endpoints (under ``server.base(format)``)             key checked in
==========  ====================================================  ==========================
openai      GET /models, POST /chat/completions (SSE)              ``Authorization: Bearer``
anthropic   GET /models, POST /messages (SSE, named events)       ``x-api-key``
gemini      GET /models, POST /models/{m}:streamGenerateContent   ``x-goog-api-key`` (or ``?key=``)
==========  ====================================================  ==========================

``server.base("openai")`` is ``http://127.0.0.1:PORT/openai/v1``; anthropic is
``…/anthropic/v1``, gemini ``…/gemini/v1beta``. ``server.key(fmt)`` is the key it
accepts (a wrong key gets the vendor's own error: 401 for OpenAI and Anthropic,
400 ``API_KEY_INVALID`` for Gemini). Streams are really chunked and flushed event
by event, so TTFT < total is measurable.

Knobs, per format, on ``server.openai`` / ``server.anthropic`` / ``server.gemini``
(a :class:`FakeApi`; assign attributes or call ``.set(**knobs)``):

* ``models=[...]``: the model list; chatting to a model not in it is a 404 in the
  vendor's shape (``model_not_found`` / ``not_found_error`` / ``NOT_FOUND``).
* ``answer="4"`` or ``answer_fn=lambda prompt: ...``: the answer, streamed word by word.
* ``wrong_rate=0.3``, ``seed=0``, ``wrong_answer=None`` (str or fn(right)->str; by
  default a number is off by one, other text becomes "I don't know."): answer
  wrongly that fraction of the time, deterministic given the seed (``set(seed=…)``
  re-seeds). Every chat answer is logged in ``.answers`` as ``Answer(prompt, text, wrong)``.
* ``delay_first_token=s``, ``delay_between_tokens=s``: pauses inside the stream
  (headers and the stream's preamble go out first).
* ``fail_next(n, status=500, body=None, headers=None)``: the next n requests to this
  format (any endpoint) fail with that status and the vendor's error body for it
  (or ``body``: a dict is sent as JSON, str/bytes as is). 529 works too.
* ``hang=True``: read the request, never answer (until the server stops).
* ``drip=s``: send every body byte separately, ``s`` seconds apart (slowloris).
* ``malformed=True`` (= ``"json"``) / ``"shape"`` / ``"html"`` / ``"truncated"``: a 200
  with broken JSON in the stream, valid JSON of the wrong shape, an HTML page, or a
  stream that stops before its end marker. Models lists break the same way.
* ``stream_error="overloaded_error"``, ``stream_error_after=1``: after that many
  tokens, an error inside the 200 stream (Anthropic ``event: error``; OpenAI and
  Gemini ``data: {"error": …}``), then the stream ends.
* ``deprecation="@1767225600"``, ``sunset="Wed, 31 Dec 2026 23:59:59 GMT"``: headers
  on every answer.
* ``usage=True/False``: token usage in the stream (OpenAI only when
  ``stream_options.include_usage`` was asked for). Counts: input =
  ``input_tokens_for(prompt)`` (words + 3), output = number of streamed pieces.
* ``finish_reason``: the stream's stop reason (default stop / end_turn / STOP;
  e.g. ``"SAFETY"`` for Gemini).
* ``echo_model``: the model named in the answer (default: the one asked for).
* ``page_size``: page the models list (Anthropic ``has_more/last_id``, Gemini
  ``nextPageToken``; OpenAI never pages).
* ``key``: the key accepted.

Every request is recorded in ``server.requests`` (and ``server.openai.requests``…)
as ``Recorded(format, method, path, query, headers (lower-cased), json, raw, peer)``;
``peer`` is the client's port (equal for requests on one kept-alive connection).
``input_tokens_for(prompt)``, ``pieces_of(answer)`` and ``error_body(fmt, status)``
are importable for expectations.
"""

from __future__ import annotations

import json
import random
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

FORMATS = ("openai", "anthropic", "gemini")
_PREFIX = {"openai": "/openai/v1", "anthropic": "/anthropic/v1", "gemini": "/gemini/v1beta"}
_DEFAULT_MODELS = {
    "openai": ["gpt-4o-mini", "gpt-4o", "o3-mini"],
    "anthropic": ["claude-3-5-haiku-20241022", "claude-sonnet-4-20250514", "claude-opus-4-1-20250805"],
    "gemini": ["gemini-2.0-flash", "gemini-2.5-flash", "gemini-2.5-pro"],
}
_DEFAULT_KEYS = {
    "openai": "sk-test-openai-KEY-0123456789abcdef",
    "anthropic": "sk-ant-test-KEY-0123456789abcdef",
    "gemini": "AIzaTestGeminiKEY0123456789abcdefgh",
}
_FINISH = {"openai": "stop", "anthropic": "end_turn", "gemini": "STOP"}
_GOOGLE_STATUS = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}
_ANTHROPIC_TYPE = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    529: "overloaded_error",
}


def input_tokens_for(prompt: str) -> int:
    """The input-token count the fake reports for a prompt."""
    return len(prompt.split()) + 3


def pieces_of(text: str) -> list[str]:
    """How the fake splits an answer into streamed tokens (words with their trailing space)."""
    return re.findall(r"\s*\S+\s*", text) if text.strip() else ([text] if text else [])


@dataclass
class Recorded:
    format: str
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    json: Any
    raw: bytes
    peer: int = 0
    """The client's port: the same for requests that share a kept-alive connection."""


@dataclass
class Answer:
    prompt: str
    text: str
    wrong: bool


@dataclass
class _Failing:
    status: int
    body: Any
    headers: dict[str, str]


@dataclass
class FakeApi:
    """One fake vendor API; every public attribute is a knob (see the module docstring)."""

    format: str
    key: str = ""
    models: list[str] = field(default_factory=list)
    answer: str = "4"
    answer_fn: Callable[[str], str] | None = None
    wrong_rate: float = 0.0
    seed: int = 0
    wrong_answer: str | Callable[[str], str] | None = None
    delay_first_token: float = 0.0
    delay_between_tokens: float = 0.0
    hang: bool = False
    drip: float = 0.0
    malformed: bool | str = False
    stream_error: str | None = None
    stream_error_after: int = 1
    deprecation: str | None = None
    sunset: str | None = None
    usage: bool = True
    finish_reason: str | None = None
    echo_model: str | None = None
    page_size: int | None = None
    requests: list[Recorded] = field(default_factory=list)
    answers: list[Answer] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.key = self.key or _DEFAULT_KEYS[self.format]
        self.models = self.models or list(_DEFAULT_MODELS[self.format])
        self._lock = threading.Lock()
        self._rng = random.Random(self.seed)
        self._failing: list[_Failing] = []

    def set(self, **knobs: Any) -> FakeApi:
        for name, value in knobs.items():
            if name.startswith("_") or not hasattr(self, name):
                raise AttributeError(f"no knob {name!r}")
            setattr(self, name, value)
        if "seed" in knobs:
            self._rng = random.Random(self.seed)
        return self

    def fail_next(
        self, n: int = 1, status: int = 500, body: Any = None, headers: dict[str, str] | None = None
    ) -> FakeApi:
        with self._lock:
            self._failing.extend(_Failing(status, body, dict(headers or {})) for _ in range(n))
        return self

    # ------------------------------------------------------------------ internals

    def _take_failure(self) -> _Failing | None:
        with self._lock:
            return self._failing.pop(0) if self._failing else None

    def _choose_answer(self, prompt: str) -> Answer:
        right = self.answer_fn(prompt) if self.answer_fn else self.answer
        with self._lock:
            wrong = self.wrong_rate > 0 and self._rng.random() < self.wrong_rate
        text = right
        if wrong:
            if callable(self.wrong_answer):
                text = self.wrong_answer(right)
            elif isinstance(self.wrong_answer, str):
                text = self.wrong_answer
            else:
                text = str(int(right.strip()) + 1) if right.strip().lstrip("-").isdigit() else "I don't know."
        answer = Answer(prompt, text, wrong)
        with self._lock:
            self.answers.append(answer)
        return answer


def error_body(fmt: str, status: int, message: str | None = None, *, model: str | None = None) -> dict:
    """The vendor's own error body for a status (shapes from status-sources.md §5.2)."""
    if fmt == "openai":
        code, etype = {
            401: ("invalid_api_key", "invalid_request_error"),
            404: ("model_not_found", "invalid_request_error"),
            429: ("rate_limit_exceeded", "requests"),
        }.get(status, (None, "server_error" if status >= 500 else "invalid_request_error"))
        default = {
            401: "Incorrect API key provided: sk-test-********************cdef. You can find your API key at https://platform.openai.com/account/api-keys.",
            404: f"The model `{model}` does not exist or you do not have access to it.",
            429: "Rate limit reached for requests. Please try again in 1s.",
        }.get(
            status,
            "The server had an error while processing your request. Sorry about that!"
            if status >= 500
            else "Invalid request.",
        )
        return {"error": {"message": message or default, "type": etype, "param": None, "code": code}}
    if fmt == "anthropic":
        etype = _ANTHROPIC_TYPE.get(status, "api_error" if status >= 500 else "invalid_request_error")
        default = {
            401: "invalid x-api-key",
            404: f"model: {model}",
            429: "Number of requests has exceeded your rate limit.",
            529: "Overloaded",
        }.get(status, "Internal server error" if status >= 500 else "Invalid request")
        return {
            "type": "error",
            "error": {"type": etype, "message": message or default},
            "request_id": "req_011CTestErrorRequestId",
        }
    gstatus = _GOOGLE_STATUS.get(status, "INTERNAL" if status >= 500 else "FAILED_PRECONDITION")
    default = {
        401: "Request had invalid authentication credentials.",
        404: f"models/{model} is not found for API version v1beta, or is not supported for generateContent.",
        429: "Resource has been exhausted (e.g. check quota).",
        503: "The model is overloaded. Please try again later.",
    }.get(
        status,
        "An internal error has occurred. Please retry or report in https://developers.generativeai.google/guide/troubleshooting"
        if status >= 500
        else "Request contains an invalid argument.",
    )
    return {"error": {"code": status, "message": message or default, "status": gstatus}}


def _bad_key_body(fmt: str) -> tuple[int, dict]:
    if fmt == "gemini":
        return 400, {
            "error": {
                "code": 400,
                "message": "API key not valid. Please pass a valid API key.",
                "status": "INVALID_ARGUMENT",
                "details": [
                    {
                        "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                        "reason": "API_KEY_INVALID",
                        "domain": "googleapis.com",
                    }
                ],
            }
        }
    return 401, error_body(fmt, 401)


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request, client_address):  # a client hanging up mid-answer is normal here
        import sys

        if not isinstance(sys.exc_info()[1], ConnectionError | TimeoutError):
            super().handle_error(request, client_address)


class LlmServer:
    def __init__(self) -> None:
        self.apis = {fmt: FakeApi(fmt) for fmt in FORMATS}
        self.requests: list[Recorded] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._ids = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # each SSE event leaves at once, as from a real API

            def log_message(self, *args):  # keep test output quiet
                pass

            def do_GET(self):
                outer._handle(self, "GET")

            def do_POST(self):
                outer._handle(self, "POST")

        self.httpd = _QuietServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True
        )

    # ------------------------------------------------------------------ public

    @property
    def openai(self) -> FakeApi:
        return self.apis["openai"]

    @property
    def anthropic(self) -> FakeApi:
        return self.apis["anthropic"]

    @property
    def gemini(self) -> FakeApi:
        return self.apis["gemini"]

    def base(self, fmt: str) -> str:
        return f"http://127.0.0.1:{self.port}{_PREFIX[fmt]}"

    def key(self, fmt: str) -> str:
        return self.apis[fmt].key

    def requests_for(self, fmt: str) -> list[Recorded]:
        return list(self.apis[fmt].requests)

    def start(self) -> LlmServer:
        self.thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        self.httpd.shutdown()
        self.httpd.server_close()

    # ------------------------------------------------------------------ handling

    def _next_id(self) -> int:
        with self._lock:
            self._ids += 1
            return self._ids

    def _handle(self, h: BaseHTTPRequestHandler, method: str) -> None:
        split = urlsplit(h.path)
        query = {k: v[0] for k, v in parse_qs(split.query).items()}
        fmt = next((f for f, p in _PREFIX.items() if split.path.startswith(p + "/") or split.path == p), None)
        length = int(h.headers.get("Content-Length") or 0)
        raw = h.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        rec = Recorded(
            fmt or "",
            method,
            split.path,
            query,
            {k.lower(): v for k, v in h.headers.items()},
            body,
            raw,
            h.client_address[1],
        )
        with self._lock:
            self.requests.append(rec)
        out = _Out(h)
        try:
            if fmt is None:
                return out.send(404, b"<html><body>not found</body></html>", "text/html")
            api = self.apis[fmt]
            with api._lock:
                api.requests.append(rec)
            path = split.path[len(_PREFIX[fmt]) :]
            if api.hang:
                self._stopping.wait(60)
                return out.close()
            extra = {}
            if api.deprecation:
                extra["Deprecation"] = api.deprecation
            if api.sunset:
                extra["Sunset"] = api.sunset
            rid = f"req_{self._next_id():06d}"
            extra["request-id" if fmt == "anthropic" else "x-request-id"] = rid
            failing = api._take_failure()
            if failing:
                payload = failing.body
                if payload is None:
                    payload = error_body(
                        fmt,
                        failing.status,
                        model=_model_of(fmt, path, body),
                    )
                data = json.dumps(payload).encode() if isinstance(payload, dict | list) else _b(payload)
                ctype = "application/json" if isinstance(payload, dict | list) else "text/plain"
                return out.send(failing.status, data, ctype, {**extra, **failing.headers}, api.drip)
            if not self._key_ok(fmt, api, rec):
                status, err = _bad_key_body(fmt)
                return out.send(status, json.dumps(err).encode(), "application/json", extra)
            if method == "GET" and path == "/models":
                return self._models(out, api, query, extra)
            if method == "POST" and fmt == "openai" and path == "/chat/completions":
                return self._chat(
                    out, api, body, body.get("model") if isinstance(body, dict) else None, extra
                )
            if method == "POST" and fmt == "anthropic" and path == "/messages":
                return self._chat(
                    out, api, body, body.get("model") if isinstance(body, dict) else None, extra
                )
            m = re.fullmatch(r"/models/([^/:]+):streamGenerateContent", path)
            if method == "POST" and fmt == "gemini" and m:
                if query.get("alt") != "sse":
                    err = error_body(
                        "gemini", 400, "this fake serves streamGenerateContent only with alt=sse"
                    )
                    return out.send(400, json.dumps(err).encode(), "application/json", extra)
                return self._chat(out, api, body, m.group(1), extra)
            if fmt == "openai":
                err = {
                    "error": {
                        "message": f"Invalid URL ({method} {split.path})",
                        "type": "invalid_request_error",
                        "param": None,
                        "code": None,
                    }
                }
                return out.send(404, json.dumps(err).encode(), "application/json", extra)
            return out.send(404, b"<html><body>404 Not Found</body></html>", "text/html", extra)
        except (BrokenPipeError, ConnectionResetError):
            pass

    @staticmethod
    def _key_ok(fmt: str, api: FakeApi, rec: Recorded) -> bool:
        if fmt == "openai":
            return rec.headers.get("authorization") == f"Bearer {api.key}"
        if fmt == "anthropic":
            return rec.headers.get("x-api-key") == api.key
        return api.key in (rec.headers.get("x-goog-api-key"), rec.query.get("key"))

    def _models(self, out: _Out, api: FakeApi, query: dict[str, str], extra: dict[str, str]) -> None:
        fmt = api.format
        if api.malformed:
            mode = "json" if api.malformed is True else api.malformed
            if mode == "html":
                return out.send(
                    200, b"<!DOCTYPE html><html><body>Sign in</body></html>", "text/html", extra, api.drip
                )
            data = b'{"data": [{"id": "gpt-' if mode != "shape" else b'{"items": [{"model": "x"}]}'
            return out.send(200, data, "application/json", extra, api.drip)
        models = list(api.models)
        more, cursor = False, None
        if api.page_size and fmt in ("anthropic", "gemini"):
            start = 0
            if fmt == "anthropic" and query.get("after_id") in models:
                start = models.index(query["after_id"]) + 1
            elif fmt == "gemini" and query.get("pageToken", "").isdigit():
                start = int(query["pageToken"])
            page = models[start : start + api.page_size]
            more = start + api.page_size < len(models)
            cursor = str(start + api.page_size)
            models = page
        if fmt == "openai":
            doc: dict[str, Any] = {
                "object": "list",
                "data": [
                    {"id": m, "object": "model", "created": 1715367049, "owned_by": "system"} for m in models
                ],
            }
        elif fmt == "anthropic":
            doc = {
                "data": [
                    {
                        "type": "model",
                        "id": m,
                        "display_name": m.title(),
                        "created_at": "2025-02-19T00:00:00Z",
                    }
                    for m in models
                ],
                "has_more": more,
                "first_id": models[0] if models else None,
                "last_id": models[-1] if models else None,
            }
        else:
            doc = {
                "models": [
                    {
                        "name": f"models/{m}",
                        "version": "001",
                        "displayName": m,
                        "inputTokenLimit": 1048576,
                        "outputTokenLimit": 8192,
                        "supportedGenerationMethods": ["generateContent", "countTokens"],
                    }
                    for m in models
                ]
            }
            if more:
                doc["nextPageToken"] = cursor
        out.send(200, json.dumps(doc).encode(), "application/json", extra, api.drip)

    def _chat(self, out: _Out, api: FakeApi, body: Any, model: str | None, extra: dict[str, str]) -> None:
        fmt = api.format
        if not isinstance(body, dict):
            err = error_body(fmt, 400, "the request body is not a JSON object")
            return out.send(400, json.dumps(err).encode(), "application/json", extra)
        if model not in api.models:
            err = error_body(fmt, 404, model=model)
            return out.send(404, json.dumps(err).encode(), "application/json", extra)
        prompt = _prompt_of(fmt, body)
        answer = api._choose_answer(prompt)
        pieces = pieces_of(answer.text)
        echo = api.echo_model or model
        finish = api.finish_reason or _FINISH[fmt]
        n_in, n_out = input_tokens_for(prompt), len(pieces)
        usage = api.usage and (
            fmt != "openai" or bool((body.get("stream_options") or {}).get("include_usage"))
        )
        mode = ("json" if api.malformed is True else api.malformed) or None

        out.start_stream(200, "text/event-stream", {**extra, "Cache-Control": "no-cache"}, api.drip)
        if mode == "html":
            out.chunk(b"<!DOCTYPE html><html><body><h1>Service Unavailable</h1></body></html>")
            return out.end()
        if mode == "json":
            out.chunk(b'data: {"choices": [{"delta": {"content": "4"\n\ndata: <html>oops</html>\n\n')
            return out.end()
        if mode == "shape":
            shape = {
                "openai": {"result": answer.text},
                "anthropic": {"type": "message_start", "msg": {}},
                "gemini": {"output": answer.text},
            }[fmt]
            event = "event: message_start\n" if fmt == "anthropic" else ""
            out.chunk(f"{event}data: {json.dumps(shape)}\n\n".encode())
            return out.end()

        sse = _Sse(fmt, out, echo, n_in)
        sse.preamble(usage)
        for i, piece in enumerate(pieces):
            if api.stream_error and i == api.stream_error_after:
                sse.error(api.stream_error)
                return out.end()
            time.sleep(api.delay_first_token if i == 0 else api.delay_between_tokens)
            sse.token(piece, usage, n_out=i + 1)
        if api.stream_error and api.stream_error_after >= len(pieces):
            sse.error(api.stream_error)
            return out.end()
        if mode == "truncated":
            return out.end()
        sse.finish(finish, usage, n_out)
        out.end()


def _model_of(fmt: str, path: str, body: Any) -> str | None:
    if fmt == "gemini":
        m = re.fullmatch(r"/models/([^/:]+):\w+", path)
        return m.group(1) if m else None
    return body.get("model") if isinstance(body, dict) else None


def _prompt_of(fmt: str, body: dict) -> str:
    try:
        if fmt == "gemini":
            return "".join(p.get("text", "") for p in body["contents"][-1]["parts"])
        content = body["messages"][-1]["content"]
        if isinstance(content, list):
            return "".join(b.get("text", "") for b in content if isinstance(b, dict))
        return str(content)
    except (KeyError, IndexError, TypeError, AttributeError):
        return ""


def _b(value: Any) -> bytes:
    return value if isinstance(value, bytes) else str(value).encode()


class _Sse:
    """Writes one format's stream events."""

    def __init__(self, fmt: str, out: _Out, model: str, n_in: int):
        self.fmt, self.out, self.model, self.n_in = fmt, out, model, n_in
        self.id = f"{int(time.time() * 1000):x}"

    def _data(self, obj: dict, event: str | None = None) -> None:
        head = f"event: {event}\n" if event else ""
        end = "\r\n\r\n" if self.fmt == "gemini" else "\n\n"
        self.out.chunk(f"{head}data: {json.dumps(obj, separators=(',', ':'))}{end}".encode())

    def _oa(self, choices: list, usage: Any = None) -> dict:
        return {
            "id": f"chatcmpl-{self.id}",
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": self.model,
            "system_fingerprint": "fp_test0001",
            "choices": choices,
            "usage": usage,
        }

    def preamble(self, usage: bool) -> None:
        if self.fmt == "openai":
            self._data(
                self._oa(
                    [
                        {
                            "index": 0,
                            "delta": {"role": "assistant", "content": ""},
                            "logprobs": None,
                            "finish_reason": None,
                        }
                    ]
                )
            )
        elif self.fmt == "anthropic":
            message = {
                "id": f"msg_{self.id}",
                "type": "message",
                "role": "assistant",
                "content": [],
                "model": self.model,
                "stop_reason": None,
                "stop_sequence": None,
            }
            if usage:
                message["usage"] = {"input_tokens": self.n_in, "output_tokens": 1}
            self._data({"type": "message_start", "message": message}, "message_start")
            self._data(
                {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
                "content_block_start",
            )
            self._data({"type": "ping"}, "ping")
        # Gemini has no preamble: its first chunk carries the first text.

    def token(self, piece: str, usage: bool, n_out: int) -> None:
        if self.fmt == "openai":
            self._data(
                self._oa([{"index": 0, "delta": {"content": piece}, "logprobs": None, "finish_reason": None}])
            )
        elif self.fmt == "anthropic":
            self._data(
                {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": piece}},
                "content_block_delta",
            )
        else:
            chunk: dict[str, Any] = {
                "candidates": [{"content": {"parts": [{"text": piece}], "role": "model"}, "index": 0}],
                "modelVersion": self.model,
                "responseId": self.id,
            }
            if usage:
                chunk["usageMetadata"] = {"promptTokenCount": self.n_in, "totalTokenCount": self.n_in}
            self._data(chunk)

    def finish(self, reason: str, usage: bool, n_out: int) -> None:
        if self.fmt == "openai":
            self._data(self._oa([{"index": 0, "delta": {}, "logprobs": None, "finish_reason": reason}]))
            if usage:
                self._data(
                    self._oa(
                        [],
                        {
                            "prompt_tokens": self.n_in,
                            "completion_tokens": n_out,
                            "total_tokens": self.n_in + n_out,
                        },
                    )
                )
            self.out.chunk(b"data: [DONE]\n\n")
        elif self.fmt == "anthropic":
            self._data({"type": "content_block_stop", "index": 0}, "content_block_stop")
            delta: dict[str, Any] = {
                "type": "message_delta",
                "delta": {"stop_reason": reason, "stop_sequence": None},
            }
            if usage:
                delta["usage"] = {"output_tokens": n_out}
            self._data(delta, "message_delta")
            self._data({"type": "message_stop"}, "message_stop")
        else:
            chunk: dict[str, Any] = {
                "candidates": [
                    {
                        "content": {"parts": [{"text": ""}], "role": "model"},
                        "finishReason": reason,
                        "index": 0,
                    }
                ],
                "modelVersion": self.model,
                "responseId": self.id,
            }
            if usage:
                chunk["usageMetadata"] = {
                    "promptTokenCount": self.n_in,
                    "candidatesTokenCount": n_out,
                    "totalTokenCount": self.n_in + n_out,
                }
            self._data(chunk)

    def error(self, etype: str) -> None:
        if self.fmt == "anthropic":
            self._data(
                {
                    "type": "error",
                    "error": {"type": etype, "message": "Overloaded" if "overloaded" in etype else etype},
                },
                "error",
            )
        elif self.fmt == "openai":
            self._data(
                {
                    "error": {
                        "message": f"The server had an error ({etype}).",
                        "type": etype,
                        "param": None,
                        "code": None,
                    }
                }
            )
        else:
            status = 503 if "overload" in etype else 500
            self._data(error_body("gemini", status))


class _Out:
    """Writes an answer: whole (Content-Length) or streamed (chunked, flushed per write)."""

    def __init__(self, h: BaseHTTPRequestHandler):
        self.h = h
        self.drip = 0.0

    def _head(self, status: int, ctype: str | None, headers: dict[str, str]) -> None:
        self.h.send_response(status, "Overloaded" if status == 529 else None)
        if ctype:
            self.h.send_header("Content-Type", ctype)
        for k, v in headers.items():
            self.h.send_header(k, v)

    def _write(self, data: bytes) -> None:
        if self.drip:
            for i in range(len(data)):
                self.h.wfile.write(data[i : i + 1])
                self.h.wfile.flush()
                time.sleep(self.drip)
        else:
            self.h.wfile.write(data)
            self.h.wfile.flush()

    def send(
        self,
        status: int,
        body: bytes,
        ctype: str | None,
        headers: dict[str, str] | None = None,
        drip: float = 0.0,
    ) -> None:
        self._head(status, ctype, headers or {})
        self.h.send_header("Content-Length", str(len(body)))
        self.h.end_headers()
        self.h.wfile.flush()
        self.drip = drip
        self._write(body)

    def start_stream(self, status: int, ctype: str, headers: dict[str, str], drip: float = 0.0) -> None:
        self._head(status, ctype, headers)
        self.h.send_header("Transfer-Encoding", "chunked")
        self.h.end_headers()
        self.h.wfile.flush()
        self.drip = drip

    def chunk(self, data: bytes) -> None:
        if not data:
            return
        if self.drip:  # one chunk per byte, so each byte really travels alone
            for i in range(len(data)):
                self.h.wfile.write(b"1\r\n" + data[i : i + 1] + b"\r\n")
                self.h.wfile.flush()
                time.sleep(self.drip)
            return
        self._write(f"{len(data):x}\r\n".encode() + data + b"\r\n")

    def end(self) -> None:
        self.drip = 0.0
        self._write(b"0\r\n\r\n")

    def close(self) -> None:
        self.h.close_connection = True
