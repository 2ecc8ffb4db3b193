"""Database access shared by the web app, the worker and the alembic environment.

The schema itself is owned by the alembic revisions in ``migrations/``; the tables
below only describe it for queries and are never created from here.
"""

from __future__ import annotations

import os
import socket
from datetime import datetime, timezone
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine, make_url

metadata = sa.MetaData()

#: One row (id 1) holding the number of ``GET /`` requests served.
visits = sa.Table(
    "visits",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("count", sa.BigInteger, nullable=False),
)

#: Heartbeats written by ``python -m example_app.worker``.
jobs = sa.Table(
    "jobs",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("hostname", sa.String(255), nullable=False),
    sa.Column("release", sa.String(255), nullable=False),
    sa.Column("pid", sa.Integer, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
)

#: Seconds to wait for a PostgreSQL connection before giving up (health checks must not hang).
CONNECT_TIMEOUT = 3


class DatabaseNotConfigured(RuntimeError):
    """Raised when ``DATABASE_URL`` is not set."""


def database_url() -> str:
    """Return the SQLAlchemy URL from ``DATABASE_URL``.

    A bare ``postgresql://`` (or ``postgres://``) URL is mapped to the psycopg 3
    driver, the only PostgreSQL driver the app ships.
    """
    raw = os.environ.get("DATABASE_URL", "").strip()
    if not raw:
        raise DatabaseNotConfigured("DATABASE_URL is not set")
    url = make_url(raw)
    if url.drivername in ("postgresql", "postgres"):
        url = url.set(drivername="postgresql+psycopg")
    return url.render_as_string(hide_password=False)


_engine: Engine | None = None


def get_engine() -> Engine:
    """Return the process-wide engine for ``DATABASE_URL``, creating it on first use.

    If ``DATABASE_URL`` changed since the engine was made (tests do that), the old
    engine is disposed of and a new one is created.
    """
    global _engine
    url = database_url()
    if _engine is not None and _engine.url.render_as_string(hide_password=False) == url:
        return _engine
    dispose_engine()
    _engine = make_engine(url, pool_pre_ping=True)
    return _engine


def make_engine(url: str, **kwargs: Any) -> Engine:
    """Create an engine for ``url``; PostgreSQL connections time out after ``CONNECT_TIMEOUT`` s."""
    if make_url(url).get_backend_name() == "postgresql":
        kwargs.setdefault("connect_args", {}).setdefault("connect_timeout", CONNECT_TIMEOUT)
    return sa.create_engine(url, **kwargs)


def dispose_engine() -> None:
    """Close the engine's pooled connections and forget it; the next use creates a new one."""
    global _engine
    if _engine is not None:
        _engine.dispose()
        _engine = None


def release_id() -> str:
    """Return the release id shipit puts in ``SHIPIT_RELEASE`` (``"dev"`` outside shipit)."""
    return os.environ.get("SHIPIT_RELEASE", "").strip() or "dev"


def hostname() -> str:
    """Return this host's name."""
    return socket.gethostname()


def utcnow() -> datetime:
    """Return the current time, timezone-aware in UTC."""
    return datetime.now(timezone.utc)
