"""The local network check: any answer from any control host means our network works."""

from __future__ import annotations

import asyncio
import socket
from datetime import UTC, datetime

from watcher.connectivity import check_network
from watcher.fetch import make_client

NOW = datetime(2026, 10, 7, 13, 0, tzinfo=UTC)


def closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/"


def check(urls, timeout=2.0):
    async def go():
        async with make_client(user_agent="test") as client:
            return await check_network(client, urls, now=NOW, timeout=timeout)

    return asyncio.run(go())


def test_one_answering_control_host_is_enough(vendor_server):
    vendor_server.set("/generate_204", b"", status=204)
    got = check([closed_port_url(), vendor_server.url("/generate_204")])
    assert got.ok
    assert "127.0.0.1 answers" in got.detail


def test_an_error_status_still_proves_the_network_works(vendor_server):
    vendor_server.set("/down", b"oops", status=503)
    assert check([vendor_server.url("/down")]).ok


def test_no_control_host_answering_means_our_network_is_down(vendor_server):
    vendor_server.set("/hang", b"", delay=10)
    got = check([closed_port_url(), vendor_server.url("/hang")], timeout=0.5)
    assert not got.ok
    assert "none of 2 control hosts answers" in got.detail
