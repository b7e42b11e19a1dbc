"""What an ``http`` source checks, validated once at start: status codes, words, patterns, JSON.

An HTTP check is how watcher watches a tool with no status API (Jasper, Copy.ai,
Midjourney...): it asks the tool's own app, login page or API, and judges the answer.
Everything here is pure and checked at start, so a typo in a pattern or a condition
stops watcher with the key named instead of failing every poll:

- regular expressions are RE2 (linear time: a vendor's page cannot make a pattern
  backtrack for minutes);
- a JSON condition is a tiny path-and-comparison language (``status.indicator == "none"``,
  ``data[0].id exists``, ``latency_ms < 500``), never ``eval``.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from typing import Any

import re2

from watcher.config import ConfigError

HTTP_FIELDS = (
    "method",
    "expect_status",
    "must_contain",
    "must_not_contain",
    "must_match",
    "must_not_match",
    "json_condition",
    "max_latency",
    "cert_expiry_days",
    "headers",
    "body",
    "api_key_env",
    "api_key_header",
    "api_key_prefix",
    "fail_after",
    "recover_after",
    "slow_after",
)
"""Settings only an ``http`` source takes."""

METHODS = ("GET", "HEAD", "POST")
_STATUS_CLASS = re.compile(r"^[1-5]xx$")
_HEADER_NAME = re.compile(r"^[A-Za-z0-9!#$%&'*+.^_`|~-]+$")
_RE2_OPTIONS = re2.Options()
_RE2_OPTIONS.log_errors = False  # the error is reported once, with the key; not also on stderr
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


# -- JSON conditions -----------------------------------------------------------------------------

_TOKEN = re.compile(
    r"""\s*(?:
        (?P<op>==|!=|<=|>=|<|>)
      | (?P<exists>exists\b)
      | (?P<path>(?:[A-Za-z_][\w-]*|\[\d+\])(?:\.[A-Za-z_][\w-]*|\[\d+\])*)
    )""",
    re.VERBOSE,
)
_SEGMENT = re.compile(r"\.?([A-Za-z_][\w-]*)|\[(\d+)\]")
_MISSING = object()


@dataclass(frozen=True, slots=True)
class JsonCondition:
    """``path op value`` over a JSON body, or ``path exists``. Paths: ``a.b[0].c``."""

    text: str
    path: tuple[str | int, ...]
    op: str
    value: Any = None

    def holds(self, data: Any) -> tuple[bool, str]:
        """Whether the condition holds, and in words what was found when it does not."""
        found = _walk(data, self.path)
        shown = ".".join(str(p) if isinstance(p, str) else f"[{p}]" for p in self.path).replace(".[", "[")
        if found is _MISSING:
            return False, f"{shown} is missing"
        if self.op == "exists":
            return True, ""
        if self.op in ("==", "!="):
            ok = (found == self.value) is (self.op == "==")
        else:
            if not isinstance(found, int | float) or isinstance(found, bool):
                return False, f"{shown} is {json.dumps(found)[:60]}, not a number"
            ok = {
                "<": found < self.value,
                "<=": found <= self.value,
                ">": found > self.value,
                ">=": found >= self.value,
            }[self.op]
        return ok, "" if ok else f"{shown} is {json.dumps(found)[:60]}"


def _walk(data: Any, path: tuple[str | int, ...]) -> Any:
    for part in path:
        if isinstance(part, int):
            if not isinstance(data, list) or part >= len(data):
                return _MISSING
            data = data[part]
        else:
            if not isinstance(data, dict) or part not in data:
                return _MISSING
            data = data[part]
    return data


def parse_condition(text: str) -> JsonCondition:
    """Read ``path op value``; raises ValueError with what is wrong."""
    m = _TOKEN.match(text)
    if not m or not m.group("path"):
        raise ValueError("must start with a path such as status.indicator or data[0].id")
    path = tuple(p if p else int(i) for p, i in _SEGMENT.findall(m.group("path")))
    rest = text[m.end() :]
    m2 = _TOKEN.match(rest)
    if m2 is None or not (m2.group("op") or m2.group("exists")):
        if rest.strip():
            raise ValueError(
                f"expected ==, !=, <, <=, >, >= or exists after the path, got {rest.strip()[:30]!r}"
            )
        return JsonCondition(text, path, "exists")
    if m2.group("exists"):
        if rest[m2.end() :].strip():
            raise ValueError("nothing may follow 'exists'")
        return JsonCondition(text, path, "exists")
    op = m2.group("op")
    raw = rest[m2.end() :].strip()
    try:
        value = json.loads(raw)
    except ValueError:
        raise ValueError(
            f'the value must be JSON: "text", a number, true, false or null (got {raw[:30]!r})'
        ) from None
    if op not in ("==", "!=") and (not isinstance(value, int | float) or isinstance(value, bool)):
        raise ValueError(f"{op} compares numbers only")
    return JsonCondition(text, path, op, value)


# -- the check -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class HttpCheck:
    """One HTTP check's settings, validated. The API key itself is read at each check, never kept."""

    method: str = "GET"
    expect_status: tuple[str, ...] = ("2xx", "3xx")
    must_contain: str | None = None
    must_not_contain: str | None = None
    must_match: Any = None
    """A compiled RE2 pattern."""
    must_not_match: Any = None
    json_conditions: tuple[JsonCondition, ...] = ()
    max_latency: float | None = None
    """Seconds; slower answers count towards a degradation."""
    cert_expiry_days: int = 14
    headers: tuple[tuple[str, str], ...] = ()
    body: str | None = None
    api_key_env: str | None = None
    api_key_header: str = "Authorization"
    api_key_prefix: str = "Bearer "
    fail_after: int = 3
    recover_after: int = 2
    slow_after: int = 3

    def status_expected(self, status: int) -> bool:
        return any(
            (s.endswith("xx") and status // 100 == int(s[0])) or s == str(status) for s in self.expect_status
        )

    def request_headers(self) -> dict[str, str]:
        """The headers to send, the API key (from the environment, now) included."""
        out = dict(self.headers)
        if self.api_key_env:
            key = os.environ.get(self.api_key_env)
            if key:
                out[self.api_key_header] = f"{self.api_key_prefix}{key}"
        return out


def build_check(
    raw: dict[str, Any], where: str, *, default_fail: int = 3, default_recover: int = 2
) -> HttpCheck:
    """An :class:`HttpCheck` from a source's merged settings; ConfigError names the bad key."""

    def bad(key: str, why: str) -> ConfigError:
        return ConfigError(f"{where}.{key}: {why}")

    method = str(raw.get("method") or "GET").upper()
    if method not in METHODS:
        raise bad("method", f"must be one of {', '.join(METHODS)} (got {raw.get('method')!r})")
    if method == "HEAD":
        body_keys = [
            k for k in ("must_contain", "must_not_contain", "must_match", "must_not_match", "json_condition")
        ]
        judged = [k for k in body_keys if raw.get(k) is not None]
        if judged:
            raise bad(judged[0], 'a HEAD request gets no body to look into: use method = "GET"')
    statuses = raw.get("expect_status")
    expect: tuple[str, ...] = ("2xx", "3xx")
    if statuses is not None:
        if not isinstance(statuses, list) or not statuses:
            raise bad("expect_status", 'must be a non-empty list such as [200, 204] or ["2xx"]')
        out = []
        for s in statuses:
            text = str(s).strip().lower()
            if isinstance(s, bool) or not (
                (text.isdigit() and 100 <= int(text) <= 599) or _STATUS_CLASS.match(text)
            ):
                raise bad(
                    "expect_status", f'{s!r} is not a status code (100 to 599) or a class such as "2xx"'
                )
            out.append(text)
        expect = tuple(out)
    patterns = {}
    for key in ("must_match", "must_not_match"):
        value = raw.get(key)
        if value is None:
            continue
        if not isinstance(value, str) or not value:
            raise bad(key, "must be a non-empty regular expression")
        try:
            patterns[key] = re2.compile(value, options=_RE2_OPTIONS)
        except re2.error as e:
            why = e.args[0].decode("utf-8", "replace") if e.args and isinstance(e.args[0], bytes) else str(e)
            raise bad(
                key, f"not a valid RE2 regular expression ({why}); RE2 has no backreferences or lookaround"
            ) from None
    for key in ("must_contain", "must_not_contain", "body"):
        if raw.get(key) is not None and (not isinstance(raw[key], str) or not raw[key]):
            raise bad(key, "must be non-empty text")
    conditions = raw.get("json_condition")
    if isinstance(conditions, str):
        conditions = [conditions]
    parsed = []
    for c in conditions or ():
        try:
            parsed.append(parse_condition(str(c)))
        except ValueError as e:
            raise bad("json_condition", f"{c!r}: {e}") from None
    max_latency = raw.get("max_latency")
    if max_latency is not None and (
        not isinstance(max_latency, int | float) or isinstance(max_latency, bool) or max_latency <= 0
    ):
        raise bad("max_latency", f"must be a number of seconds above 0 (got {max_latency!r})")
    ints = {}
    for key, default, low in (
        ("cert_expiry_days", 14, 0),
        ("fail_after", default_fail, 1),
        ("recover_after", default_recover, 1),
        ("slow_after", 3, 1),
    ):
        value = raw.get(key, default)
        if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= 365:
            raise bad(key, f"must be a whole number from {low} to 365 (got {value!r})")
        ints[key] = value
    headers = raw.get("headers") or {}
    if not isinstance(headers, dict):
        raise bad("headers", 'must be a table such as { "Accept-Language" = "en" }')
    for name, value in headers.items():
        if not _HEADER_NAME.match(str(name)) or not isinstance(value, str) or "\n" in value or "\r" in value:
            raise bad(f"headers.{name}", "must be a header name with a one-line text value")
        if str(name).lower() in ("authorization", "x-api-key", "api-key") or "token" in str(name).lower():
            raise bad(
                f"headers.{name}",
                "secrets do not go in the config file: use api_key_env (and api_key_header)",
            )
    env = raw.get("api_key_env")
    if env is not None:
        if not isinstance(env, str) or not _ENV_NAME.match(env):
            raise bad("api_key_env", f"must be the name of an environment variable (got {env!r})")
        if not os.environ.get(env):
            raise bad(
                "api_key_env",
                f"the environment variable {env} is not set (or empty): set it, or remove api_key_env",
            )
    header = raw.get("api_key_header", "Authorization")
    if not isinstance(header, str) or not _HEADER_NAME.match(header):
        raise bad("api_key_header", f"must be a header name (got {header!r})")
    prefix = raw.get("api_key_prefix", "Bearer ")
    if not isinstance(prefix, str):
        raise bad("api_key_prefix", 'must be text, such as "Bearer " or ""')
    return HttpCheck(
        method=method,
        expect_status=expect,
        must_contain=raw.get("must_contain"),
        must_not_contain=raw.get("must_not_contain"),
        must_match=patterns.get("must_match"),
        must_not_match=patterns.get("must_not_match"),
        json_conditions=tuple(parsed),
        max_latency=float(max_latency) if max_latency is not None else None,
        headers=tuple((str(k), v) for k, v in headers.items()),
        body=raw.get("body"),
        api_key_env=env,
        api_key_header=header,
        api_key_prefix=prefix,
        **ints,
    )
