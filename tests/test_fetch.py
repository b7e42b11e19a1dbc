"""The one fetch: every hostile or broken server ends in a clear FetchError, never a hang."""

from __future__ import annotations

import asyncio
import socket

import pytest

from watcher.fetch import FetchError, fetch, make_client


def get(url: str, *, timeout: float = 3.0, max_bytes: int = 1_000_000, etag: str | None = None):
    async def go():
        async with make_client(user_agent="test") as client:
            return await fetch(client, url, timeout=timeout, max_bytes=max_bytes, etag=etag)

    return asyncio.run(go())


def error_of(url: str, **kw) -> FetchError:
    with pytest.raises(FetchError) as info:
        get(url, **kw)
    return info.value


def test_plain_document_is_returned_with_its_validators(vendor_server):
    vendor_server.set("/a.json", b'{"ok": true}')
    res = get(vendor_server.url("/a.json"))
    assert res.status == 200 and res.body == b'{"ok": true}'
    assert res.etag
    again = get(vendor_server.url("/a.json"), etag=res.etag)
    assert again.not_modified and again.body == b""


def test_gzip_body_is_decoded(vendor_server):
    vendor_server.set("/g.json", b'{"x": 1}' * 100, gzip=True)
    assert get(vendor_server.url("/g.json")).body == b'{"x": 1}' * 100


def test_gzip_bomb_is_capped_on_decoded_bytes(vendor_server):
    bomb = b"\0" * 50_000_000  # compresses to ~50 KB
    vendor_server.set("/bomb.json", bomb, gzip=True, etag=False)
    err = error_of(vendor_server.url("/bomb.json"), max_bytes=5_000_000)
    assert err.kind == "too_large"
    assert "decoded" in err.message


def test_oversized_body_is_refused(vendor_server):
    vendor_server.set("/big.html", b"<p>x</p>" * 700_000, content_type="text/html", etag=False)  # 5.6 MB
    err = error_of(vendor_server.url("/big.html"), max_bytes=5_000_000)
    assert err.kind == "too_large"


def test_hanging_server_times_out(vendor_server):
    vendor_server.set("/hang", b"{}", delay=5)
    err = error_of(vendor_server.url("/hang"), timeout=0.5)
    assert err.kind == "timeout"
    assert "0.5 s" in err.message


def test_one_byte_per_second_server_cannot_hold_the_poll(vendor_server):
    vendor_server.set("/drip", b"x" * 100, drip=0.2)
    err = error_of(vendor_server.url("/drip"), timeout=1.0)
    assert err.kind == "timeout"


def test_error_status_is_reported_with_retry_after(vendor_server):
    vendor_server.set(
        "/r", b"slow down", status=429, headers={"Retry-After": "30"}, content_type="text/plain"
    )
    err = error_of(vendor_server.url("/r"))
    assert err.kind == "http" and err.status == 429
    assert "HTTP 429" in err.message and "retry after 30 s" in err.message


def test_redirect_loop_is_bounded(vendor_server):
    vendor_server.set("/loop", b"", status=302, headers={"Location": "/loop"})
    err = error_of(vendor_server.url("/loop"))
    assert err.kind == "redirects"


def test_redirect_is_followed_and_final_url_kept(vendor_server):
    vendor_server.set("/old", b"", status=301, headers={"Location": "/new"})
    vendor_server.set("/new", b"{}")
    res = get(vendor_server.url("/old"))
    assert res.body == b"{}" and res.url.endswith("/new")


def test_refused_connection_is_not_called_a_network_outage():
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    err = error_of(f"http://127.0.0.1:{port}/x")
    assert err.kind == "connect"
    assert "refused" in err.message


def test_dns_failure_is_a_network_error(monkeypatch):
    """No DNS at all (the network edge is replaced, nothing inside the program)."""

    def no_dns(*args, **kwargs):
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", no_dns)
    err = error_of("https://status.example-vendor.test/api/v2/summary.json")
    assert err.kind == "network"
    assert err.message.startswith("DNS cannot resolve status.example-vendor.test")


def test_no_route_is_reported_as_network_unreachable(monkeypatch):
    import errno

    real = socket.socket.connect

    def unreachable(self, addr):
        if addr and addr[0] == "127.0.0.1" and addr[1] == 9:
            raise OSError(errno.ENETUNREACH, "Network is unreachable")
        return real(self, addr)

    monkeypatch.setattr(socket.socket, "connect", unreachable)
    err = error_of("http://127.0.0.1:9/x")
    assert err.kind == "network"
    assert "network unreachable" in err.message


def test_tls_failure_is_reported_as_tls(vendor_server):
    """https:// to a server that speaks plain HTTP: the handshake fails, and says so."""
    vendor_server.set("/a.json", b"{}")
    err = error_of(f"https://127.0.0.1:{vendor_server.port}/a.json")
    assert err.kind == "tls", err.message
    assert "TLS error with 127.0.0.1" in err.message
