"""Persistence behind one small interface (:class:`~watcher.store.base.Store`)."""

from __future__ import annotations

from watcher.config import Settings
from watcher.store.base import SourceRecord, StoredEvent, StoreError
from watcher.store.roles import Store


def open_store(settings: Settings, *, location: str | None = None) -> Store:
    """The store the settings name: PostgreSQL when ``storage.url`` is a ``postgresql://`` URL,
    else SQLite at ``storage.path`` (created on first run).

    ``location`` tags what this instance writes (observations, probe results, its own
    fetch state of each source) on PostgreSQL; default ``cluster.location``.
    """
    url = settings.storage.url
    if url:
        try:
            from watcher.store.postgres import PostgresStore, is_postgres_url, redact_url
        except ImportError as e:
            raise StoreError(
                f"storage.url names a PostgreSQL database but its driver is missing ({e}): "
                "pip install 'watcher[postgres]' (psycopg[binary])"
            ) from None

        if not is_postgres_url(url):
            raise StoreError(f"storage.url {redact_url(url)!r} is not a postgresql:// URL")
        if location is None:
            from watcher.store.leader import identity

            location = identity(settings)[1]
        # a frozen leader's open transaction must end before its lease can (0.6 × the timeout)
        return PostgresStore(
            url, location=location, idle_transaction_timeout=0.3 * settings.cluster.failover_timeout
        )
    from watcher.store.sqlite import SQLiteStore

    return SQLiteStore(settings.storage.path)


__all__ = ["SourceRecord", "Store", "StoreError", "StoredEvent", "open_store"]
