"""Persistence behind one small interface (:class:`~watcher.store.base.Store`)."""

from __future__ import annotations

from watcher.config import Settings
from watcher.store.base import SourceRecord, Store, StoredEvent, StoreError


def open_store(settings: Settings) -> Store:
    """The store the settings name: SQLite at ``storage.path`` (created on first run)."""
    from watcher.store.sqlite import SQLiteStore

    return SQLiteStore(settings.storage.path)


__all__ = ["SourceRecord", "Store", "StoreError", "StoredEvent", "open_store"]
