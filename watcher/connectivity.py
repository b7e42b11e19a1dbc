"""Is it them or us? The local network check that runs before a vendor is blamed (probes, HTTP checks).

A probe that cannot reach OpenAI says nothing about OpenAI when our own network
is down. Before the detectors count a failed probe, watcher fetches a few
independent control URLs (configurable: ``probes.control_urls``). Any HTTP answer
from any of them, even an error status, shows the network works; only when none
answers is the network down, and then probe failures are set aside instead of
counted against the vendors.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime

import httpx

from watcher.fetch import FetchError, fetch

_NETWORK_KINDS = {"network", "connect", "timeout", "tls"}


@dataclass(frozen=True, slots=True)
class Connectivity:
    ok: bool
    checked_at: datetime
    detail: str
    """Plain words: which control answered, or why none did."""


async def check_network(
    client: httpx.AsyncClient, urls: list[str], *, now: datetime, timeout: float = 5.0
) -> Connectivity:
    """Fetch every control URL at once; the network is up when any of them answers at all."""
    if not urls:
        return Connectivity(True, now, "no control URLs configured: network assumed up")

    async def one(url: str) -> tuple[str, str | None]:
        try:
            await fetch(client, url, timeout=timeout, max_bytes=64 * 1024)
        except FetchError as e:
            if e.kind in _NETWORK_KINDS:
                return url, e.message
        return url, None

    results = await asyncio.gather(*(one(u) for u in urls))
    answered = [u for u, err in results if err is None]
    if answered:
        return Connectivity(True, now, f"{_host(answered[0])} answers")
    reasons = "; ".join(f"{_host(u)}: {err}" for u, err in results)
    return Connectivity(False, now, f"none of {len(urls)} control hosts answers ({reasons})")


def _host(url: str) -> str:
    try:
        return httpx.URL(url).host or url
    except Exception:  # a malformed URL is reported as itself
        return url
