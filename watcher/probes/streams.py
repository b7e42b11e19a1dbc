"""Server-sent events and the three streamed answer formats (OpenAI, Anthropic, Gemini) read from them.

Each handler turns its format's events into answer text, token counts and the model that answered,
and raises a classified failure on an in-stream error; the clients only feed it bytes.
"""

from __future__ import annotations

import json
from typing import Any

from watcher.probes.failures import ProbeFailure, excerpt, in_stream_failure
from watcher.probes.results import ApiSpec, ProbeRun

# --------------------------------------------------------------------------- SSE


class SSEParser:
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
            raise ProbeFailure("malformed", "the answer stream is not valid UTF-8") from None
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
        raise ProbeFailure("malformed", f"{what} is not JSON: {excerpt(data, key)}") from None
    if not isinstance(obj, dict):
        raise ProbeFailure("malformed", f"{what} is JSON but not an object: {excerpt(data, key)}")
    return obj


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


class StreamHandler:
    """Turns one format's stream events into text, usage and a verdict."""

    def on_event(self, name: str, data: str, run: ProbeRun, api: ApiSpec) -> bool:
        """Take one event; True when the stream is complete."""
        raise NotImplementedError

    def finish(self) -> None:
        """Raise malformed when the stream ended without completing the answer."""


class OpenAIStream(StreamHandler):
    def __init__(self) -> None:
        self.done = False
        self.finished = False

    def on_event(self, name: str, data: str, run: ProbeRun, api: ApiSpec) -> bool:
        if data.strip() == "[DONE]":
            self.done = True
            return True
        obj = _json_object(data, "a stream chunk", api.key)
        if obj.get("error"):
            raise in_stream_failure(api, run, obj)
        if isinstance(obj.get("model"), str) and obj["model"]:
            run.resolved_model = obj["model"]
        usage = obj.get("usage")
        if isinstance(usage, dict):
            run.input_tokens = _int(usage.get("prompt_tokens"))
            run.usage_output = _int(usage.get("completion_tokens"))
        choices = obj.get("choices")
        if choices is None and not isinstance(usage, dict):
            raise ProbeFailure(
                "malformed", f"a stream chunk has neither choices nor usage: {excerpt(data, api.key)}"
            )
        if choices is not None and not isinstance(choices, list):
            raise ProbeFailure(
                "malformed", f"a stream chunk's choices is not a list: {excerpt(data, api.key)}"
            )
        for choice in choices or ():
            if not isinstance(choice, dict) or choice.get("index", 0) != 0:
                continue
            delta = choice.get("delta")
            if delta is not None and not isinstance(delta, dict):
                raise ProbeFailure(
                    "malformed", f"a stream chunk's delta is not an object: {excerpt(data, api.key)}"
                )
            content = (delta or {}).get("content")
            if isinstance(content, str):
                run.add_text(content)
            elif content is not None:
                raise ProbeFailure(
                    "malformed", f"a stream chunk's content is not text: {excerpt(data, api.key)}"
                )
            if choice.get("finish_reason"):
                self.finished = True
        return False

    def finish(self) -> None:
        if not (self.done or self.finished):
            raise ProbeFailure(
                "malformed", "the stream ended before the answer did (no finish_reason, no [DONE])"
            )


class AnthropicStream(StreamHandler):
    def __init__(self) -> None:
        self.started = False
        self.stopped = False

    def on_event(self, name: str, data: str, run: ProbeRun, api: ApiSpec) -> bool:
        obj = _json_object(data, f"the {name} event", api.key)
        kind = obj.get("type") if isinstance(obj.get("type"), str) else name
        if kind == "error" or name == "error":
            raise in_stream_failure(api, run, obj)
        if kind == "message_start":
            message = obj.get("message")
            if not isinstance(message, dict):
                raise ProbeFailure("malformed", f"message_start without a message: {excerpt(data, api.key)}")
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
                raise ProbeFailure(
                    "malformed", f"content_block_delta without a delta: {excerpt(data, api.key)}"
                )
            if delta.get("type", "text_delta") == "text_delta":
                text = delta.get("text")
                if not isinstance(text, str):
                    raise ProbeFailure("malformed", f"a text_delta without text: {excerpt(data, api.key)}")
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
            raise ProbeFailure("malformed", "the stream has no message_start event")
        if not self.stopped:
            raise ProbeFailure("malformed", "the stream ended before message_stop")


class GeminiStream(StreamHandler):
    def __init__(self) -> None:
        self.finished = False

    def on_event(self, name: str, data: str, run: ProbeRun, api: ApiSpec) -> bool:
        obj = _json_object(data, "a stream chunk", api.key)
        if obj.get("error"):
            raise in_stream_failure(api, run, obj)
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
                raise ProbeFailure(
                    "malformed",
                    f"a stream chunk has no candidates or usageMetadata: {excerpt(data, api.key)}",
                )
            return False
        if not isinstance(candidates, list):
            raise ProbeFailure(
                "malformed", f"a stream chunk's candidates is not a list: {excerpt(data, api.key)}"
            )
        if candidates:
            first = candidates[0]
            if not isinstance(first, dict):
                raise ProbeFailure("malformed", f"a candidate is not an object: {excerpt(data, api.key)}")
            content = first.get("content")
            parts = content.get("parts") if isinstance(content, dict) else None
            if content is not None and not isinstance(content, dict):
                raise ProbeFailure(
                    "malformed", f"a candidate's content is not an object: {excerpt(data, api.key)}"
                )
            if parts is not None and not isinstance(parts, list):
                raise ProbeFailure(
                    "malformed", f"a candidate's parts is not a list: {excerpt(data, api.key)}"
                )
            for part in parts or ():
                if isinstance(part, dict) and not part.get("thought") and isinstance(part.get("text"), str):
                    run.add_text(part["text"])
            if first.get("finishReason"):
                self.finished = True  # STOP, MAX_TOKENS, SAFETY…: all answers
        return False

    def finish(self) -> None:
        if not self.finished:
            raise ProbeFailure("malformed", "the stream ended without a finishReason")
