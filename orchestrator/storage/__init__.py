"""Durable storage of runs, requests and their traces (SQLite by default, PostgreSQL by URL)."""

from signoria.orchestrator.storage.store import StorageError, Store, default_db_url

__all__ = ["StorageError", "Store", "default_db_url"]
