"""The store on one SQLite file: the embedded default, nothing to set up (see :mod:`watcher.store.lite`)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from watcher.store.lite import SQLite
from watcher.store.schema import SCHEMA_VERSION
from watcher.store.stores import SQLStore


class SQLiteStore(SQLStore):
    """:class:`~watcher.store.stores.SQLStore` on the file at ``path`` (created on first use), or ``:memory:``."""

    def __init__(self, path: Path | str):
        super().__init__(SQLite(path))

    @property
    def conn(self) -> sqlite3.Connection:
        """The store's one connection (tests and benchmarks that fill a database fast)."""
        conn: sqlite3.Connection = self._conn
        return conn


__all__ = ["SCHEMA_VERSION", "SQLiteStore"]
