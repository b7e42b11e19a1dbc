"""What every web module needs from the running daemon, in one plain value.

The board, the JSON API, metrics and health each export ``routes(ctx)``; the
daemon builds one :class:`WebContext` and hands it to all of them, so no module
reaches into the daemon itself.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any


@dataclass(slots=True)
class WebContext:
    settings: Any
    """:class:`watcher.config.Settings`."""
    store: Any
    """The :class:`watcher.store.base.Store` (SQLite today)."""
    vendors: list
    """The watched :class:`watcher.catalog.VendorSpec` list."""
    engine: Any = None
    """The :class:`watcher.alerts.engine.AlertEngine`: acknowledge, mute."""
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    runtime: dict[str, Any] = field(default_factory=dict)
    """Live facts the daemon keeps up to date: ``scheduler_running`` (bool), ``polls`` (int),
    ``deliverer`` (the Deliverer, for outbox figures), ``probes`` (the ProbeService or None)."""
