"""API clients for probes and canaries: three wire formats against a real local fake of each vendor.

Every failure ends in a ProbeResult with an error class that says whose fault it is;
the key never leaves the header it belongs in.
"""

from __future__ import annotations

import asyncio
import dataclasses
import socket
from datetime import UTC

import pytest
from llm_server import input_tokens_for

from watcher.fetch import make_client
from watcher.probes.clients import ERROR_CLASSES, ApiSpec, ProbeResult, _openai_body, chat, list_models

FORMATS = ["openai", "anthropic", "gemini"]
MODEL = {"openai": "gpt-4o-mini", "anthropic": "claude-3-5-haiku-20241022", "gemini": "gemini-2.0-flash"}
ANSWER = "Paris is the capital of France."  # 6 streamed pieces, 31 characters
PROMPT = "What is the capital of France? Answer in one sentence."


def spec(server, fmt: str, **kw) -> ApiSpec:
    headers = (("anthropic-version", "2023-06-01"),) if fmt == "anthropic" else ()
    args = {
        "vendor": fmt,
        "format": fmt,
        "base_url": server.base(fmt),
        "key": server.key(fmt),
        "headers": headers,
    }
    return ApiSpec(**{**args, **kw})


def run(coro_fn):
    async def go():
        async with make_client(user_agent="watcher-test") as client:
            return await coro_fn(client)

    return asyncio.run(go())


def models_of(api: ApiSpec, **kw) -> ProbeResult:
    return run(lambda c: list_models(c, api, **kw))


def chat_of(api: ApiSpec, model: str, prompt: str = PROMPT, **kw) -> ProbeResult:
    return run(lambda c: chat(c, api, model, prompt, **kw))


def all_text(result: ProbeResult) -> str:
    return repr(result) + " ".join(str(getattr(result, f.name)) for f in dataclasses.fields(result))


# ----------------------------------------------------------------------------- models lists


@pytest.mark.parametrize("fmt", FORMATS)
def test_models_list_is_parsed(llm_server, fmt):
    getattr(llm_server, fmt).models = ["alpha-1", "beta-2", "gamma-3"]
    res = models_of(spec(llm_server, fmt))
    assert res.ok, res.error
    assert res.models == ("alpha-1", "beta-2", "gamma-3")  # Gemini's "models/" prefix is gone
    assert res.kind == "models" and res.vendor == fmt and res.status == 200
    assert res.error_class is None and res.error is None and res.text is None and res.model is None
    assert res.started_at.tzinfo is UTC
    assert 0 < res.ttfb_s <= res.total_s


@pytest.mark.parametrize("fmt", ["anthropic", "gemini"])
def test_models_list_follows_pages(llm_server, fmt):
    getattr(llm_server, fmt).set(models=[f"m-{i}" for i in range(5)], page_size=2)
    res = models_of(spec(llm_server, fmt))
    assert res.models == ("m-0", "m-1", "m-2", "m-3", "m-4")
    assert len(llm_server.requests_for(fmt)) == 3


def test_a_dropped_model_is_missing_from_the_list(llm_server):
    api = spec(llm_server, "openai")
    assert "gpt-4o" in models_of(api).models
    llm_server.openai.models = ["gpt-4o-mini", "o3-mini"]
    assert models_of(api).models == ("gpt-4o-mini", "o3-mini")


def test_models_list_asks_for_big_pages(llm_server):
    models_of(spec(llm_server, "anthropic"))
    models_of(spec(llm_server, "gemini"))
    assert llm_server.requests_for("anthropic")[0].query == {"limit": "1000"}
    assert llm_server.requests_for("gemini")[0].query == {"pageSize": "1000"}


@pytest.mark.parametrize("mode", ["json", "shape", "html"])
@pytest.mark.parametrize("fmt", FORMATS)
def test_garbage_models_list_is_malformed(llm_server, fmt, mode):
    getattr(llm_server, fmt).malformed = mode
    res = models_of(spec(llm_server, fmt))
    assert not res.ok and res.error_class == "malformed", res.error
    assert res.status == 200 and res.models is None


def test_models_endpoint_404_is_a_bad_request_not_a_gone_model(llm_server):
    llm_server.openai.fail_next(1, status=404, body={"error": {"message": "Invalid URL (GET /v1/modelz)"}})
    res = models_of(spec(llm_server, "openai"))
    assert res.error_class == "bad_request" and res.status == 404
    assert "Invalid URL (GET /v1/modelz)" in res.error


# ----------------------------------------------------------------------------- streamed chat


@pytest.mark.parametrize("fmt", FORMATS)
def test_streamed_chat_is_concatenated_and_timed(llm_server, fmt):
    getattr(llm_server, fmt).set(answer=ANSWER, delay_first_token=0.05, delay_between_tokens=0.02)
    res = chat_of(spec(llm_server, fmt), MODEL[fmt])
    assert res.ok, res.error
    assert res.text == ANSWER
    assert res.kind == "chat" and res.status == 200 and res.model == MODEL[fmt]
    assert res.ttfb_s < res.ttft_s < res.total_s
    assert res.ttft_s >= 0.05 and res.total_s - res.ttft_s >= 5 * 0.02 * 0.9
    assert res.input_tokens == input_tokens_for(PROMPT) == 13
    assert res.output_tokens == 6  # the vendor's count, not the estimate (8)
    assert res.tokens_per_s == pytest.approx(6 / (res.total_s - res.ttft_s))
    assert res.request_id and res.request_id.startswith("req_")


@pytest.mark.parametrize("fmt", FORMATS)
def test_tokens_are_estimated_when_usage_is_absent(llm_server, fmt):
    getattr(llm_server, fmt).set(answer=ANSWER, usage=False)
    res = chat_of(spec(llm_server, fmt), MODEL[fmt])
    assert res.ok, res.error
    assert res.output_tokens == 8  # round(31 / 4)
    assert res.input_tokens is None


def test_a_one_character_answer_counts_one_token(llm_server):
    llm_server.openai.usage = False
    res = chat_of(spec(llm_server, "openai"), "gpt-4o-mini", "What is 2+2?")
    assert res.text == "4" and res.output_tokens == 1


@pytest.mark.parametrize("fmt", FORMATS)
def test_the_answering_model_version_is_reported(llm_server, fmt):
    getattr(llm_server, fmt).echo_model = MODEL[fmt] + "-2025-01-01"
    res = chat_of(spec(llm_server, fmt), MODEL[fmt])
    assert res.model == MODEL[fmt] + "-2025-01-01"


def test_request_bodies_follow_each_wire_format(llm_server):
    for fmt in FORMATS:
        chat_of(spec(llm_server, fmt), MODEL[fmt], "2+2?", max_tokens=5, system="Answer with a number.")
    oa = llm_server.requests_for("openai")[0]
    assert (oa.method, oa.path) == ("POST", "/openai/v1/chat/completions")
    assert oa.json == {
        "model": "gpt-4o-mini",
        "messages": [
            {"role": "system", "content": "Answer with a number."},
            {"role": "user", "content": "2+2?"},
        ],
        "stream": True,
        "stream_options": {"include_usage": True},
        "max_tokens": 5,
        "temperature": 0.0,
    }
    assert oa.headers["accept"] == "text/event-stream"
    an = llm_server.requests_for("anthropic")[0]
    assert an.path == "/anthropic/v1/messages"
    assert an.json == {
        "model": MODEL["anthropic"],
        "max_tokens": 5,
        "messages": [{"role": "user", "content": "2+2?"}],
        "stream": True,
        "temperature": 0.0,
        "system": "Answer with a number.",
    }
    ge = llm_server.requests_for("gemini")[0]
    assert ge.path == "/gemini/v1beta/models/gemini-2.0-flash:streamGenerateContent"
    assert ge.query == {"alt": "sse"}
    assert ge.json == {
        "contents": [{"role": "user", "parts": [{"text": "2+2?"}]}],
        "generationConfig": {"maxOutputTokens": 5, "temperature": 0.0},
        "systemInstruction": {"parts": [{"text": "Answer with a number."}]},
    }


@pytest.mark.parametrize("fmt", FORMATS)
def test_probes_keep_their_connection_alive(llm_server, fmt):
    """The stream is read to its very end after the end marker, so the next probe reuses the connection."""
    api = spec(llm_server, fmt)

    async def two(client):
        return [await chat(client, api, MODEL[fmt], PROMPT), await list_models(client, api)]

    assert all(r.ok for r in run(two))
    first, second = llm_server.requests_for(fmt)
    assert first.peer == second.peer


def test_temperature_none_is_left_out(llm_server):
    for fmt in FORMATS:
        chat_of(spec(llm_server, fmt), MODEL[fmt], temperature=None)
    assert "temperature" not in llm_server.requests_for("openai")[0].json
    assert "temperature" not in llm_server.requests_for("anthropic")[0].json
    assert "temperature" not in llm_server.requests_for("gemini")[0].json["generationConfig"]


def test_openai_and_mistral_get_the_token_limit_they_accept():
    body = _openai_body(
        ApiSpec("openai", "openai", "https://api.openai.com/v1"), "o3-mini", "hi", 16, None, None
    )
    assert body["max_completion_tokens"] == 16 and "max_tokens" not in body
    assert body["stream_options"] == {"include_usage": True}
    body = _openai_body(ApiSpec("mistral", "openai", "https://api.mistral.ai/v1"), "m", "hi", 16, 0.0, None)
    assert body["max_tokens"] == 16 and "max_completion_tokens" not in body
    assert "stream_options" not in body  # Mistral answers 422 extra_forbidden to it
    body = _openai_body(ApiSpec("groq", "openai", "https://api.groq.com/openai/v1"), "m", "hi", 16, 0.0, None)
    assert body["max_tokens"] == 16 and body["stream_options"] == {"include_usage": True}


def test_an_api_refusing_stream_options_is_asked_again_without_it(llm_server):
    mistral_422 = {
        "object": "error",
        "message": {
            "detail": [
                {
                    "type": "extra_forbidden",
                    "loc": ["body", "stream_options", "include_usage"],
                    "msg": "Extra inputs are not permitted",
                    "input": True,
                }
            ]
        },
        "type": "invalid_request_error",
        "param": None,
        "code": None,
    }
    llm_server.openai.set(answer=ANSWER).fail_next(1, status=422, body=mistral_422)
    res = chat_of(spec(llm_server, "openai"), "gpt-4o-mini")
    assert res.ok, res.error
    assert res.text == ANSWER and res.output_tokens == 8  # no usage without stream_options: estimated
    first, second = llm_server.requests_for("openai")
    assert "stream_options" in first.json and "stream_options" not in second.json


@pytest.mark.parametrize("fmt", FORMATS)
def test_canary_answers_come_from_answer_fn(llm_server, fmt):
    getattr(llm_server, fmt).answer_fn = lambda p: "4" if "2+2" in p else "unsure"
    api = spec(llm_server, fmt)
    assert chat_of(api, MODEL[fmt], "What is 2+2?").text == "4"
    assert chat_of(api, MODEL[fmt], "What is 3+3?").text == "unsure"


def test_wrong_answers_follow_the_seeded_rate(llm_server):
    llm_server.gemini.set(answer="4", wrong_rate=0.3, seed=7)
    api = spec(llm_server, "gemini")

    async def many(client):
        return [await chat(client, api, "gemini-2.0-flash", "What is 2+2?") for _ in range(30)]

    texts = [r.text for r in run(many)]
    wrong = [a.wrong for a in llm_server.gemini.answers]
    assert texts == ["5" if w else "4" for w in wrong]
    assert 3 <= sum(wrong) <= 16
    llm_server.gemini.answers.clear()
    llm_server.gemini.set(seed=7)
    run(many)
    assert [a.wrong for a in llm_server.gemini.answers] == wrong  # same seed, same pattern


def test_gemini_safety_stop_is_an_answer_with_the_text_so_far(llm_server):
    llm_server.gemini.set(answer="Here is", finish_reason="SAFETY")
    res = chat_of(spec(llm_server, "gemini"), "gemini-2.0-flash")
    assert res.ok and res.text == "Here is" and res.error_class is None


def test_gemini_model_given_with_its_prefix_is_requested_once(llm_server):
    res = chat_of(spec(llm_server, "gemini"), "models/gemini-2.0-flash")
    assert res.ok, res.error
    assert llm_server.requests_for("gemini")[0].path.endswith(
        "/models/gemini-2.0-flash:streamGenerateContent"
    )


# ----------------------------------------------------------------------------- the key


@pytest.mark.parametrize("fmt", FORMATS)
def test_key_travels_in_the_vendor_header_and_nowhere_else(llm_server, fmt):
    api = spec(llm_server, fmt)
    key = api.key
    results = [models_of(api), chat_of(api, MODEL[fmt])]
    getattr(llm_server, fmt).fail_next(1, status=401)
    results.append(chat_of(api, MODEL[fmt]))
    results.append(chat_of(api, "no-such-model"))
    for rec in llm_server.requests_for(fmt):
        if fmt == "openai":
            assert rec.headers["authorization"] == f"Bearer {key}"
        elif fmt == "anthropic":
            assert rec.headers["x-api-key"] == key and rec.headers["anthropic-version"] == "2023-06-01"
        else:
            assert rec.headers["x-goog-api-key"] == key
        assert key not in rec.path and key not in str(rec.query)
        assert key not in str(
            {
                k: v
                for k, v in rec.headers.items()
                if k not in ("authorization", "x-api-key", "x-goog-api-key")
            }
        )
    assert [r.ok for r in results] == [True, True, False, False]
    for res in results:
        assert key not in all_text(res)
    assert key not in repr(api) and key not in str(api)
    assert "'***'" in repr(api)


def test_a_vendor_echoing_the_key_in_an_error_is_scrubbed(llm_server):
    api = spec(llm_server, "openai")
    llm_server.openai.fail_next(1, status=401, body={"error": {"message": f"bad key {api.key} given"}})
    res = chat_of(api, "gpt-4o-mini")
    assert res.error_class == "auth"
    assert api.key not in res.error and "bad key *** given" in res.error


def test_a_key_file_newline_is_not_sent(llm_server):
    res = models_of(spec(llm_server, "anthropic", key=llm_server.key("anthropic") + "\n"))
    assert res.ok, res.error
    assert llm_server.requests_for("anthropic")[0].headers["x-api-key"] == llm_server.key("anthropic")


def test_a_key_with_a_bad_character_is_refused_without_quoting_it(llm_server):
    key = "sk-test-abc\x00def-0123456789"
    res = models_of(spec(llm_server, "openai", key=key))
    assert res.error_class == "bad_request" and "key" in res.error
    assert "abc" not in all_text(res)


def test_an_unknown_format_is_a_bad_request():
    res = models_of(ApiSpec("cohere", "other", "https://api.cohere.test", key="k"))  # type: ignore[arg-type]
    assert res.error_class == "bad_request" and res.error.startswith("unknown API format 'other'")


def test_secret_extra_headers_are_masked_in_repr():
    api = ApiSpec("x", "openai", "https://x.test/v1", key=None, headers=(("Authorization", "Bearer s3cret"),))
    assert "s3cret" not in repr(api) and "key=None" in repr(api)


# ----------------------------------------------------------------------------- HTTP errors


@pytest.mark.parametrize(
    ("status", "error_class"), [(401, "auth"), (403, "auth"), (429, "rate_limited"), (500, "vendor_error")]
)
@pytest.mark.parametrize("fmt", FORMATS)
def test_http_errors_are_classified(llm_server, fmt, status, error_class):
    getattr(llm_server, fmt).fail_next(2, status=status)
    api = spec(llm_server, fmt)
    for res in (chat_of(api, MODEL[fmt]), models_of(api)):
        assert not res.ok and res.error_class == error_class, res.error
        assert res.status == status and f"HTTP {status}" in res.error
        assert res.text in (None, "") and res.models is None


def test_auth_failure_says_it_is_our_key(llm_server):
    llm_server.anthropic.fail_next(1, status=401)
    res = chat_of(spec(llm_server, "anthropic"), MODEL["anthropic"])
    assert res.error.startswith("our API key was rejected (HTTP 401): invalid x-api-key")
    assert res.request_id  # from the request-id header


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_wrong_key_is_auth_even_where_the_vendor_answers_400(llm_server, fmt):
    res = chat_of(spec(llm_server, fmt, key="sk-wrong-wrong-wrong"), MODEL[fmt])
    assert res.error_class == "auth", res.error
    assert res.status == (400 if fmt == "gemini" else 401)
    assert "sk-wrong-wrong-wrong" not in all_text(res)


def test_a_missing_key_is_called_missing(llm_server):
    res = models_of(spec(llm_server, "openai", key=None))
    assert res.error_class == "auth" and "none is configured" in res.error
    assert "authorization" not in llm_server.requests_for("openai")[0].headers


def test_rate_limit_reports_retry_after(llm_server):
    llm_server.openai.fail_next(1, status=429, headers={"Retry-After": "20"})
    res = chat_of(spec(llm_server, "openai"), "gpt-4o-mini")
    assert res.error_class == "rate_limited"
    assert "(HTTP 429, retry after 20 s): Rate limit reached" in res.error


def test_anthropic_529_is_overloaded(llm_server):
    llm_server.anthropic.fail_next(1, status=529)
    res = chat_of(spec(llm_server, "anthropic"), MODEL["anthropic"])
    assert res.error_class == "overloaded" and res.status == 529
    assert res.error == "anthropic is overloaded (HTTP 529): Overloaded"


def test_anthropic_overloaded_error_mid_stream_is_overloaded(llm_server):
    llm_server.anthropic.set(answer=ANSWER, stream_error="overloaded_error", stream_error_after=2)
    res = chat_of(spec(llm_server, "anthropic"), MODEL["anthropic"])
    assert not res.ok and res.error_class == "overloaded", res.error
    assert res.status == 200 and "inside the HTTP 200 stream" in res.error
    assert res.text == "Paris is "  # what came before the error


@pytest.mark.parametrize("fmt", ["openai", "gemini"])
def test_an_error_inside_a_200_stream_is_a_vendor_failure(llm_server, fmt):
    getattr(llm_server, fmt).set(answer=ANSWER, stream_error="server_error", stream_error_after=1)
    res = chat_of(spec(llm_server, fmt), MODEL[fmt])
    assert res.error_class == "vendor_error" and res.status == 200, res.error


@pytest.mark.parametrize("fmt", FORMATS)
def test_an_unknown_model_is_gone(llm_server, fmt):
    getattr(llm_server, fmt).models = ["other-model"]
    res = chat_of(spec(llm_server, fmt), MODEL[fmt])
    assert res.error_class == "model_gone" and res.status == 404, res.error
    assert MODEL[fmt] in res.error


def test_openai_deprecated_model_wording_is_gone(llm_server):
    body = {
        "error": {
            "message": "The model `text-davinci-003` has been deprecated, learn more here: https://platform.openai.com/docs/deprecations",
            "type": "invalid_request_error",
            "param": None,
            "code": None,
        }
    }
    llm_server.openai.fail_next(1, status=400, body=body)
    res = chat_of(spec(llm_server, "openai"), "gpt-4o-mini")
    assert res.error_class == "model_gone" and res.status == 400


def test_a_deprecated_parameter_is_not_a_gone_model(llm_server):
    body = {
        "error": {
            "message": "max_tokens is deprecated for this model; use max_completion_tokens.",
            "code": None,
        }
    }
    llm_server.openai.fail_next(1, status=400, body=body)
    res = chat_of(spec(llm_server, "openai"), "gpt-4o-mini")
    assert res.error_class == "bad_request"


def test_a_wrong_chat_path_is_a_bad_request(llm_server):
    api = spec(llm_server, "openai", base_url=llm_server.base("openai") + "/nope")
    res = chat_of(api, "gpt-4o-mini")
    assert res.error_class == "bad_request" and res.status == 404, res.error


def test_long_vendor_text_is_cut_to_200_characters(llm_server):
    llm_server.openai.fail_next(1, status=400, body={"error": {"message": "x " * 1000}})
    res = chat_of(spec(llm_server, "openai"), "gpt-4o-mini")
    said = res.error.split("): ", 1)[1]
    assert len(said) == 200 and said.endswith("…")


def test_an_html_error_page_is_reported_as_text(llm_server):
    llm_server.gemini.fail_next(1, status=502, body="<html><body><h1>502 Bad Gateway</h1></body></html>")
    res = chat_of(spec(llm_server, "gemini"), "gemini-2.0-flash")
    assert res.error_class == "vendor_error" and res.error == "gemini failed (HTTP 502): 502 Bad Gateway"


# ----------------------------------------------------------------------------- broken streams


@pytest.mark.parametrize("mode", ["json", "shape", "html", "truncated"])
@pytest.mark.parametrize("fmt", FORMATS)
def test_garbage_stream_is_malformed(llm_server, fmt, mode):
    getattr(llm_server, fmt).set(answer=ANSWER, malformed=mode)
    res = chat_of(spec(llm_server, fmt), MODEL[fmt])
    assert not res.ok and res.error_class == "malformed", res.error
    assert res.status == 200


def test_an_oversized_stream_is_cut_off(llm_server):
    llm_server.openai.answer = "x" * 1_200_000
    res = chat_of(spec(llm_server, "openai"), "gpt-4o-mini")
    assert res.error_class == "malformed" and "1,000,000-byte cap" in res.error


# ----------------------------------------------------------------------------- the exchange itself


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_hanging_server_times_out(llm_server, fmt):
    getattr(llm_server, fmt).hang = True
    api = spec(llm_server, fmt)
    for res in (chat_of(api, MODEL[fmt], timeout=0.3), models_of(api, timeout=0.3)):
        assert res.error_class == "timeout" and res.status is None
        assert res.error == "no complete answer within 0.3 s"
        assert res.total_s < 3


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_dripping_stream_cannot_hold_the_probe_past_the_deadline(llm_server, fmt):
    """Each byte comes well within any per-read timeout; only the overall deadline stops it."""
    getattr(llm_server, fmt).set(answer=ANSWER, drip=0.02)
    res = chat_of(spec(llm_server, fmt), MODEL[fmt], timeout=0.5)
    assert res.error_class == "timeout", res.error
    assert res.status == 200 and res.ttfb_s is not None
    assert "HTTP 200 came, but not the whole answer, within 0.5 s" in res.error
    assert res.total_s < 3


def test_a_dripping_models_list_times_out(llm_server):
    llm_server.gemini.drip = 0.02
    res = models_of(spec(llm_server, "gemini"), timeout=0.5)
    assert res.error_class == "timeout" and res.status == 200


def test_a_refused_port_is_connect():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    res = models_of(ApiSpec("openai", "openai", f"http://127.0.0.1:{port}/v1", key="k"))
    assert res.error_class == "connect" and "refused" in res.error and res.status is None


def test_a_dns_failure_is_dns(monkeypatch):
    def no_dns(*args, **kwargs):
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", no_dns)
    res = chat_of(ApiSpec("anthropic", "anthropic", "https://api.anthropic.test/v1", key="k"), "claude")
    assert res.error_class == "dns" and res.error.startswith("DNS cannot resolve api.anthropic.test")


def test_a_tls_failure_is_tls(llm_server):
    api = spec(llm_server, "openai", base_url=llm_server.base("openai").replace("http://", "https://"))
    res = models_of(api)
    assert res.error_class == "tls", res.error


def test_an_unusable_base_url_is_a_bad_request():
    res = models_of(ApiSpec("x", "openai", "ftp://example.test/v1", key="k"))
    assert res.error_class == "bad_request" and "ftp://example.test/v1" in res.error


def test_every_error_class_is_a_known_one(llm_server):
    llm_server.openai.fail_next(1, status=418)
    res = chat_of(spec(llm_server, "openai"), "gpt-4o-mini")
    assert res.error_class == "bad_request" and res.error_class in ERROR_CLASSES


# ----------------------------------------------------------------------------- deprecation signals


@pytest.mark.parametrize("fmt", FORMATS)
def test_deprecation_and_sunset_headers_are_captured(llm_server, fmt):
    getattr(llm_server, fmt).set(deprecation="@1767225600", sunset="Wed, 31 Dec 2026 23:59:59 GMT")
    api = spec(llm_server, fmt)
    for res in (chat_of(api, MODEL[fmt]), models_of(api)):
        assert res.ok
        assert res.deprecation == "@1767225600"
        assert res.sunset == "Wed, 31 Dec 2026 23:59:59 GMT"


def test_plain_answers_have_no_deprecation(llm_server):
    res = chat_of(spec(llm_server, "openai"), "gpt-4o-mini")
    assert res.deprecation is None and res.sunset is None
