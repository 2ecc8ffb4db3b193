"""The SQLite schema of the Flask example, created idempotently (``python -m flask_app.schema``)."""

from __future__ import annotations

import os
import sqlite3

SCHEMA = "CREATE TABLE IF NOT EXISTS visits (id INTEGER PRIMARY KEY, release TEXT, at TEXT DEFAULT CURRENT_TIMESTAMP)"


def connect() -> sqlite3.Connection:
    """A connection to ``$FLASK_APP_DB`` (default ``app.db``) with the schema in place."""
    db = sqlite3.connect(os.environ.get("FLASK_APP_DB", "app.db"), timeout=10)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute(SCHEMA)
    return db


if __name__ == "__main__":
    connect().close()
    print("schema ok")
