"""The one HTTP fetch every source uses.

Why one function: every guarantee a source needs lives here, once: a deadline on
the whole exchange (a server that sends one byte a second cannot hold a poll
open), a cap on *decoded* bytes at every Content-Encoding layer (a gzip bomb, even
nested, is small on the wire), redirects followed but bounded and only to public
addresses, conditional requests (ETag / If-Modified-Since), and every
failure turned into a :class:`FetchError` with a plain-words message and a kind
that tells "our network is down" apart from "the vendor is failing".
"""

from __future__ import annotations

import asyncio
import errno
import ipaddress
import socket
import ssl
import zlib
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
    private_redirects: bool = False,
    method: str = "GET",
    headers: Mapping[str, str] | None = None,
    content: bytes | None = None,
    error_statuses: bool = False,
    want_cert: bool = False,
) -> FetchResult:
    """GET ``url``; returns the decoded body, or a 304 result with an empty body.

    Redirects are followed (at most the client's ``max_redirects``) to public addresses only,
    checked on the addresses each hop's host resolves to, unless ``url`` itself is on a private
    network (a self-hosted page, a test stand-in) or ``private_redirects`` is set: a vendor's page
    must not steer watcher to 169.254.169.254 or to another service on our own machine.

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
            request = _Request(method, content, error_statuses, want_cert)
            return await _follow(client, url, headers, timeout, max_bytes, private_redirects, request)
    except TimeoutError:
        raise FetchError("timeout", f"no complete answer within {timeout:g} s") from None
    except httpx.TimeoutException:
        raise FetchError("timeout", f"no complete answer within {timeout:g} s") from None
    except httpx.TooManyRedirects:
        raise FetchError("redirects", "too many redirects (a redirect loop?)") from None
    except httpx.DecodingError as e:
        raise FetchError("protocol", f"corrupt compressed body: {e}") from None
    except httpx.TransportError as e:
        raise transport_error(e, url) from None
    except httpx.InvalidURL as e:
        raise FetchError("protocol", f"invalid URL: {e}") from None


_REDIRECTS = (301, 302, 303, 307, 308)


@dataclass(frozen=True, slots=True)
class _Request:
    """What an HTTP check asks beyond a plain GET of a status document."""

    method: str = "GET"
    content: bytes | None = None
    error_statuses: bool = False
    want_cert: bool = False

    def after_redirect(self, status: int) -> _Request:
        """307 and 308 repeat the request as it was; the others turn it into a GET without a body."""
        if status in (307, 308) or self.method == "GET":
            return self
        return _Request("GET", None, self.error_statuses, self.want_cert)


async def _follow(
    client: httpx.AsyncClient,
    url: str,
    headers: dict[str, str],
    timeout: float,
    max_bytes: int,
    private_redirects: bool,
    request: _Request = _Request(),
) -> FetchResult:
    allow_private: bool | None = True if private_redirects else None  # decided at the first redirect
    for _ in range(client.max_redirects + 1):
        result = await _get(client, url, headers, timeout, max_bytes, request)
        if isinstance(result, FetchResult):
            return result
        target, status = result
        request = request.after_redirect(status)
        if target.scheme not in ("http", "https"):
            raise FetchError("redirects", f"refusing a redirect to a {target.scheme or 'relative'} URL")
        if allow_private is None:
            allow_private = bool(await _private_addresses(httpx.URL(url)))
        if not allow_private:
            private = await _private_addresses(target)
            if private:
                raise FetchError(
                    "redirects",
                    f"refusing the redirect from {httpx.URL(url).host} to {target.host} ({private[0]}): "
                    "a loopback, private or link-local address. watcher follows redirects to public "
                    "addresses only, unless the configured URL is itself private "
                    "(or poll.private_redirects = true)",
                )
        url = str(target)
    raise FetchError("redirects", "too many redirects (a redirect loop?)")


def _non_public(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return not ip.is_global or ip.is_multicast


async def _private_addresses(url: httpx.URL) -> list[str]:
    """The non-public addresses ``url``'s host resolves to (empty when all are public)."""
    host = url.host
    try:
        return [host] if _non_public(ipaddress.ip_address(host)) else []
    except ValueError:
        pass
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as e:
        raise FetchError("network", f"DNS cannot resolve {host} ({e.strerror})") from None
    found = []
    for info in infos:
        addr = str(info[4][0]).split("%", 1)[0]
        if _non_public(ipaddress.ip_address(addr)) and addr not in found:
            found.append(addr)
    return found


async def _get(
    client: httpx.AsyncClient,
    url: str,
    headers: dict[str, str],
    timeout: float,
    max_bytes: int,
    request: _Request = _Request(),
) -> FetchResult | tuple[httpx.URL, int]:
    """One request: the result, or the URL a redirect points to and the redirect's status."""
    per_op = httpx.Timeout(timeout)
    async with client.stream(
        request.method, url, headers=headers, content=request.content, timeout=per_op, follow_redirects=False
    ) as resp:
        cert = _cert_not_after(resp) if request.want_cert else None
        location = resp.headers.get("location")
        if resp.status_code in _REDIRECTS and location:
            try:
                return resp.url.join(location), resp.status_code
            except httpx.InvalidURL:
                raise FetchError("redirects", f"redirect to an invalid URL {location[:200]!r}") from None
        if resp.status_code == 304:
            # A 304 has no body, but its end must be read: a response closed before it was reached
            # closes the connection, and the next poll of the host paid a new one (TCP and TLS).
            async for _ in resp.aiter_raw():
                pass
            return FetchResult(
                304, b"", str(resp.url), resp.headers.get("etag"), resp.headers.get("last-modified")
            )
        if resp.status_code >= 300 and request.error_statuses:
            pass  # an HTTP check measures the status: read and returned below like any answer
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
        # Raw bytes, decoded here rather than by httpx: httpx decodes each chunk through every
        # Content-Encoding layer at once, so "gzip, gzip" turned 1.8 KB into gigabytes in memory
        # before any cap was checked. _Decoder checks the cap on each step's output.
        decoder = _Decoder(resp.headers.get("content-encoding", ""), max_bytes)
        raw = 0
        async for chunk in resp.aiter_raw():
            raw += len(chunk)
            if raw > max_bytes:
                raise FetchError("too_large", f"body exceeds the {max_bytes:,}-byte cap")
            decoder.feed(chunk)
        return FetchResult(
            status=resp.status_code,
            body=decoder.finish(),
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


MAX_ENCODINGS = 2
"""Content-Encoding layers accepted on one body; a third has no honest use and is refused."""
_CHUNK = 64 * 1024


class _Decoder:
    """Undo a body's Content-Encoding layers (gzip, deflate) incrementally, ``_CHUNK`` bytes of
    output at a time per layer, raising ``too_large`` as soon as the decoded size passes the cap.

    Memory stays within the cap plus one chunk per layer, whatever the ratio of each layer.
    Encodings we do not ask for (br, zstd, ...) are refused: we send ``gzip, deflate`` only.
    """

    def __init__(self, header: str, max_bytes: int) -> None:
        names = [n.strip().lower() for n in header.split(",") if n.strip()]
        names = [n for n in names if n != "identity"]
        if len(names) > MAX_ENCODINGS:
            raise FetchError(
                "protocol",
                f"refusing a body with {len(names)} Content-Encoding layers ({', '.join(names)}): "
                f"at most {MAX_ENCODINGS} are accepted (a nested compression bomb?)",
            )
        for n in names:
            if n not in ("gzip", "x-gzip", "deflate"):
                raise FetchError("protocol", f"unsupported Content-Encoding {n!r} (we accept gzip and deflate)")
        # Content-Encoding lists layers in the order they were applied: undo the last first.
        self.names = list(reversed(names))
        self.layers = [self._new(n) for n in self.names]
        self.raw_deflate_tried = [False] * len(self.names)
        self.max_bytes = max_bytes
        self.size = 0
        self.out: list[bytes] = []

    @staticmethod
    def _new(name: str):
        return zlib.decompressobj(zlib.MAX_WBITS if name == "deflate" else 16 + zlib.MAX_WBITS)

    def feed(self, data: bytes) -> None:
        try:
            self._push(0, data)
        except zlib.error as e:
            raise FetchError("protocol", f"corrupt compressed body: {e}") from None

    def finish(self) -> bytes:
        """Drain what each layer still holds, outermost first, and return the decoded body."""
        try:
            for i in range(len(self.layers)):
                self._push(i, b"")
        except zlib.error as e:
            raise FetchError("protocol", f"corrupt compressed body: {e}") from None
        return b"".join(self.out)

    def _emit(self, piece: bytes) -> None:
        self.size += len(piece)
        if self.size > self.max_bytes:
            raise FetchError("too_large", f"body exceeds the {self.max_bytes:,}-byte cap (decoded)")
        self.out.append(piece)

    def _push(self, i: int, data: bytes) -> None:
        """Give ``data`` to layer ``i`` and pass its output on, ``_CHUNK`` bytes at a time."""
        if i == len(self.layers):
            if data:
                self._emit(data)
            return
        while True:
            d = self.layers[i]
            try:
                piece = d.decompress(data, _CHUNK)
            except zlib.error:
                if self.names[i] != "deflate" or self.raw_deflate_tried[i]:
                    raise
                # "deflate" sent raw, without its zlib wrapper (common): read it as such.
                self.raw_deflate_tried[i] = True
                self.layers[i] = d = zlib.decompressobj(-zlib.MAX_WBITS)
                piece = d.decompress(data, _CHUNK)
            self.raw_deflate_tried[i] = True  # the first bytes decided the flavour
            data = d.unconsumed_tail
            if d.eof and d.unused_data and self.names[i] != "deflate":
                data = d.unused_data  # another gzip member follows
                self.layers[i] = self._new(self.names[i])
            if piece:
                self._push(i + 1, piece)
            if len(piece) < _CHUNK and not data:
                return


_UNREACHABLE = {errno.ENETUNREACH, errno.EHOSTUNREACH, errno.ENETDOWN, errno.EADDRNOTAVAIL}


def transport_error(exc: httpx.TransportError, url: str) -> FetchError:
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
