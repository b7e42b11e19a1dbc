"""The one HTTP fetch every source uses.

Why one function: every guarantee a source needs lives here, once: a deadline on
the whole exchange (a server that sends one byte a second cannot hold a poll
open), a cap on *decoded* bytes (a gzip bomb is small on the wire), redirects
followed but bounded, conditional requests (ETag / If-Modified-Since), and every
failure turned into a :class:`FetchError` with a plain-words message and a kind
that tells "our network is down" apart from "the vendor is failing".
"""

from __future__ import annotations

import asyncio
import errno
import socket
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

import httpx


class FetchError(Exception):
    """A fetch that produced no usable document.

    ``kind`` is one of: ``network`` (DNS or routing failed: either our network is
    down or this one host's name is gone; :mod:`watcher.status` tells which by
    whether any other source answers), ``connect`` (the host refused or reset), ``timeout``, ``tls``,
    ``http`` (an error status), ``too_large``, ``redirects``, ``protocol``.
    """

    def __init__(self, kind: str, message: str, status: int | None = None):
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.status = status


@dataclass(frozen=True, slots=True)
class FetchResult:
    status: int
    body: bytes
    url: str
    etag: str | None = None
    last_modified: str | None = None
    content_type: str | None = None
    cert_not_after: datetime | None = None
    """With ``want_cert``: when the server's TLS certificate expires (None over plain HTTP)."""

    @property
    def not_modified(self) -> bool:
        return self.status == 304


def make_client(*, user_agent: str, max_redirects: int = 5, max_connections: int = 100) -> httpx.AsyncClient:
    """The shared client: HTTP keep-alive across polls, redirects followed, our User-Agent."""
    return httpx.AsyncClient(
        follow_redirects=True,
        max_redirects=max_redirects,
        headers={"User-Agent": user_agent, "Accept-Encoding": "gzip, deflate"},
        limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections),
        timeout=httpx.Timeout(30.0),
        trust_env=False,
    )


async def fetch(
    client: httpx.AsyncClient,
    url: str,
    *,
    timeout: float,
    max_bytes: int,
    etag: str | None = None,
    last_modified: str | None = None,
    method: str = "GET",
    headers: Mapping[str, str] | None = None,
    content: bytes | None = None,
    error_statuses: bool = False,
    want_cert: bool = False,
) -> FetchResult:
    """GET ``url``; returns the decoded body, or a 304 result with an empty body.

    Raises FetchError for anything else. Never hangs past ``timeout`` seconds.

    HTTP checks (``watcher.httpchecks``) also choose the ``method``, add ``headers`` and a
    request body, ask for error statuses to be returned as results with their body
    (``error_statuses``: a 503 is what they measure, not a failure to fetch) and for the
    expiry date of the server's certificate (``want_cert``).
    """
    headers = {
        "Accept": "application/json, application/rss+xml, application/atom+xml, text/html;q=0.8, */*;q=0.5",
        **(headers or {}),
    }
    if etag:
        headers["If-None-Match"] = etag
    if last_modified:
        headers["If-Modified-Since"] = last_modified
    try:
        async with asyncio.timeout(timeout):
            return await _get(
                client, url, headers, timeout, max_bytes, method, content, error_statuses, want_cert
            )
    except TimeoutError:
        raise FetchError("timeout", f"no complete answer within {timeout:g} s") from None
    except httpx.TimeoutException:
        raise FetchError("timeout", f"no complete answer within {timeout:g} s") from None
    except httpx.TooManyRedirects:
        raise FetchError("redirects", "too many redirects (a redirect loop?)") from None
    except httpx.DecodingError as e:
        raise FetchError("protocol", f"corrupt compressed body: {e}") from None
    except httpx.TransportError as e:
        raise _transport_error(e, url) from None
    except httpx.InvalidURL as e:
        raise FetchError("protocol", f"invalid URL: {e}") from None


async def _get(
    client: httpx.AsyncClient,
    url: str,
    headers: dict[str, str],
    timeout: float,
    max_bytes: int,
    method: str = "GET",
    content: bytes | None = None,
    error_statuses: bool = False,
    want_cert: bool = False,
) -> FetchResult:
    per_op = httpx.Timeout(timeout)
    async with client.stream(method, url, headers=headers, content=content, timeout=per_op) as resp:
        cert = _cert_not_after(resp) if want_cert else None
        if resp.status_code == 304:
            return FetchResult(
                304, b"", str(resp.url), resp.headers.get("etag"), resp.headers.get("last-modified")
            )
        if resp.status_code >= 300 and error_statuses:
            pass  # read and returned below like any answer
        elif resp.status_code >= 400:
            retry = resp.headers.get("retry-after")
            extra = f", retry after {retry} s" if retry and resp.status_code in (429, 503) else ""
            raise FetchError(
                "http",
                f"HTTP {resp.status_code} {resp.reason_phrase or ''}".rstrip() + extra,
                resp.status_code,
            )
        elif resp.status_code >= 300:
            raise FetchError("http", f"HTTP {resp.status_code} without a usable redirect", resp.status_code)
        declared = resp.headers.get("content-length")
        if (
            declared
            and declared.isdigit()
            and "content-encoding" not in resp.headers
            and int(declared) > max_bytes
        ):
            raise FetchError(
                "too_large", f"body of {int(declared):,} bytes exceeds the {max_bytes:,}-byte cap"
            )
        chunks: list[bytes] = []
        size = 0
        async for chunk in resp.aiter_bytes():  # decoded bytes: the cap applies after gunzip
            size += len(chunk)
            if size > max_bytes:
                raise FetchError("too_large", f"body exceeds the {max_bytes:,}-byte cap (decoded)")
            chunks.append(chunk)
        return FetchResult(
            status=resp.status_code,
            body=b"".join(chunks),
            url=str(resp.url),
            etag=resp.headers.get("etag"),
            last_modified=resp.headers.get("last-modified"),
            content_type=resp.headers.get("content-type"),
            cert_not_after=cert,
        )


def _cert_not_after(resp: httpx.Response) -> datetime | None:
    """The expiry of the certificate the server presented on this connection, if it was TLS."""
    stream = resp.extensions.get("network_stream")
    ssl_object = stream.get_extra_info("ssl_object") if stream is not None else None
    if ssl_object is None:
        return None
    try:
        cert = ssl_object.getpeercert()
        return datetime.fromtimestamp(ssl.cert_time_to_seconds(cert["notAfter"]), UTC) if cert else None
    except (KeyError, ValueError, OSError):
        return None


_UNREACHABLE = {errno.ENETUNREACH, errno.EHOSTUNREACH, errno.ENETDOWN, errno.EADDRNOTAVAIL}


def _transport_error(exc: httpx.TransportError, url: str) -> FetchError:
    """Say what went wrong in words an admin can act on, and whether it is our side."""
    host = httpx.URL(url).host
    cause: BaseException | None = exc
    seen = 0
    while cause is not None and seen < 10:
        if isinstance(cause, socket.gaierror):
            if cause.errno in (socket.EAI_NONAME, getattr(socket, "EAI_NODATA", -5)):
                return FetchError("network", f"DNS cannot resolve {host} ({cause.strerror})")
            return FetchError("network", f"DNS lookup of {host} failed ({cause.strerror})")
        if isinstance(cause, ssl.SSLError):
            return FetchError("tls", f"TLS error with {host}: {cause.reason or cause}")
        if isinstance(cause, ConnectionRefusedError):
            return FetchError("connect", f"connection refused by {host}")
        if isinstance(cause, ConnectionResetError):
            return FetchError("connect", f"connection reset by {host}")
        if isinstance(cause, OSError) and cause.errno in _UNREACHABLE:
            return FetchError("network", f"network unreachable: no route to {host} ({cause.strerror})")
        cause = cause.__cause__ or cause.__context__
        seen += 1
    text = str(exc) or type(exc).__name__
    if "certificate" in text.lower() or "ssl" in text.lower():
        return FetchError("tls", f"TLS error with {host}: {text}")
    if isinstance(exc, httpx.RemoteProtocolError):
        return FetchError("protocol", f"{host} broke the HTTP exchange: {text}")
    if isinstance(exc, httpx.ConnectError):
        return FetchError("connect", f"cannot connect to {host}: {text}")
    return FetchError("protocol", f"{host}: {text}")
