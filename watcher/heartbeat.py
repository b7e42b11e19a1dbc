"""A ping to an external dead-man's switch, so someone learns when watcher itself dies.

Healthchecks-style (healthchecks.io, Uptime Kuma push monitors, Cronitor,
Better Stack heartbeats): watcher requests ``heartbeat.url`` every
``heartbeat.interval`` seconds while it is healthy and ``<url>/fail`` while it is
not (``/healthz`` would answer 503); the service alerts when the pings stop or a
``/fail`` arrives. A dead process, a dead host and a dead network all end in
silence, which the service turns into an alert.

:func:`beat` never raises: a failing ping service must not disturb watching.
The first failure is logged as a warning, the following ones only at debug level
until a ping succeeds again (logged once as well), so a long outage of the ping
service is two log lines, not one per minute.
"""

from __future__ import annotations

import logging
from urllib.parse import urlsplit, urlunsplit

import httpx

log = logging.getLogger("watcher.heartbeat")

TIMEOUT = 10.0
MAX_BODY = 10_000
_failing: dict[str, str] = {}
"""URL → the error last logged for it, while it fails (so each outage is logged once)."""


def fail_url(url: str) -> str:
    """``https://hc-ping.com/UUID`` → ``https://hc-ping.com/UUID/fail`` (the query string is kept)."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=parts.path.rstrip("/") + "/fail"))


def _shown(url: str) -> str:
    """The URL without its path: ping URLs carry their secret (the check's UUID or key) in the path."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname or '?'}" + (f":{parts.port}" if parts.port else "") + "/…"


async def beat(client: httpx.AsyncClient, settings, healthy: bool, *, detail: str = "") -> bool:
    """Ping the switch (``url`` when healthy, ``url/fail`` when not). True when the ping was accepted.

    ``detail`` (the reasons of an unhealthy check) is sent as a POST body, which
    healthchecks.io shows next to the ping; without it the ping is a GET.
    Does nothing (returns False) when ``heartbeat.url`` is not set.
    """
    base = settings.heartbeat.url
    if not base:
        return False
    url = base if healthy else fail_url(base)
    try:
        if detail:
            resp = await client.post(url, content=detail[:MAX_BODY].encode("utf-8"), timeout=TIMEOUT)
        else:
            resp = await client.get(url, timeout=TIMEOUT)
        if resp.status_code >= 400:
            raise _Refused(f"HTTP {resp.status_code}")
    except (httpx.HTTPError, _Refused, OSError) as e:
        _failed(base, f"{type(e).__name__}: {e}" if not isinstance(e, _Refused) else str(e))
        return False
    except Exception as e:  # never raise into the scheduler
        _failed(base, f"unexpected {type(e).__name__}: {e}")
        return False
    if base in _failing:
        del _failing[base]
        log.info("heartbeat: %s accepts pings again", _shown(base))
    return True


class _Refused(Exception):
    pass


def _failed(base: str, why: str) -> None:
    if base in _failing:
        log.debug("heartbeat to %s still failing: %s", _shown(base), why)
    else:
        log.warning(
            "heartbeat to %s failed: %s (check heartbeat.url; not logged again until it works)",
            _shown(base),
            why,
        )
    _failing[base] = why


def reset() -> None:
    """Forget logged failures (tests)."""
    _failing.clear()


async def beat_from_health(client: httpx.AsyncClient, ctx) -> bool:
    """The daemon's heartbeat job: run the ``/healthz`` checks, then ping with their verdict."""
    if not ctx.settings.heartbeat.url:
        return False
    from watcher.health import check_health

    try:
        health = await check_health(ctx)
    except Exception as e:  # a bug in a check is itself unhealthy, and must not stop the job
        log.exception("heartbeat: health check failed")
        return await beat(client, ctx.settings, False, detail=f"health check failed: {e!r}")
    return await beat(client, ctx.settings, health.ok, detail="; ".join(health.reasons))
