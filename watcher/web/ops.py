"""``/healthz`` and ``/metrics``: the two routes; the checks and the figures live apart.

The checks are :mod:`watcher.health` (the heartbeat runs them without the web
server); the figures are :mod:`watcher.web.prometheus`. The names callers used
from here are re-exported.
"""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from watcher.health import (
    DB_BUSY_TIMEOUT,
    DB_CHECK_DEADLINE,
    HEALTH_META_KEY,
    MIN_FREE_BYTES,
    DbCheck,
    Health,
    check_database,
    check_database_sync,
    check_health,
)
from watcher.web.context import WebContext
from watcher.web.prometheus import METRICS, StoreCollector, metrics_text

# -- routes -------------------------------------------------------------------------------------


def routes(ctx: WebContext) -> list[Route]:
    async def healthz(request: Request) -> Response:
        health = await check_health(ctx)
        return JSONResponse(
            health.body, status_code=200 if health.ok else 503, headers={"Cache-Control": "no-store"}
        )

    async def metrics(request: Request) -> Response:
        return Response(
            metrics_text(ctx), media_type=CONTENT_TYPE_LATEST, headers={"Cache-Control": "no-store"}
        )

    return [Route("/healthz", healthz, methods=["GET"]), Route("/metrics", metrics, methods=["GET"])]


__all__ = [
    "DB_BUSY_TIMEOUT",
    "DB_CHECK_DEADLINE",
    "HEALTH_META_KEY",
    "METRICS",
    "MIN_FREE_BYTES",
    "DbCheck",
    "Health",
    "StoreCollector",
    "check_database",
    "check_database_sync",
    "check_health",
    "metrics_text",
    "routes",
]
