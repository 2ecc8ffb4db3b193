"""The example web app: ``uvicorn example_app.main:app --host 127.0.0.1 --port 8000``."""

from __future__ import annotations

import logging
import os
from datetime import datetime, timezone
from typing import Any

import sqlalchemy as sa
from fastapi import FastAPI, Query
from fastapi.responses import JSONResponse

from example_app import db

log = logging.getLogger("example_app")

app = FastAPI(title="shipit example app")


def _health_failure() -> str | None:
    """Return why this process is unhealthy, or None when it is healthy."""
    if os.environ.get("EXAMPLE_FAIL_HEALTH", "").strip() == "1":
        return "EXAMPLE_FAIL_HEALTH=1"
    try:
        with db.get_engine().connect() as conn:
            conn.execute(sa.text("SELECT 1"))
    except Exception as exc:  # any failure to reach the database makes us unhealthy
        log.warning("health check: database unreachable: %s", exc)
        first_line = (str(exc).strip().splitlines() or [""])[0]
        return f"database unreachable: {type(exc).__name__}: {first_line[:300]}"
    return None


def _iso_utc(when: datetime) -> str:
    """ISO 8601 in UTC; SQLite hands timestamps back without their timezone."""
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return when.astimezone(timezone.utc).isoformat()


@app.get("/health")
def health() -> JSONResponse:
    """200 when the database answers ``SELECT 1`` (and no failure is forced), 503 otherwise."""
    body: dict[str, Any] = {"status": "ok", "release": db.release_id(), "pid": os.getpid()}
    reason = _health_failure()
    if reason is not None:
        body.update(status="fail", reason=reason)
        return JSONResponse(body, status_code=503)
    return JSONResponse(body)


@app.get("/")
def index() -> dict[str, Any]:
    """Count this visit in the ``visits`` table and say which release and host served it."""
    with db.get_engine().begin() as conn:
        count = conn.execute(
            sa.update(db.visits)
            .where(db.visits.c.id == 1)
            .values(count=db.visits.c.count + 1)
            .returning(db.visits.c.count)
        ).scalar_one_or_none()
        if count is None:  # the seed row was deleted: start again
            conn.execute(sa.insert(db.visits).values(id=1, count=1))
            count = 1
    return {"app": "example", "release": db.release_id(), "hostname": db.hostname(), "visits": count}


@app.get("/jobs")
def jobs(limit: int = Query(20, ge=1, le=100)) -> dict[str, Any]:
    """Return the latest heartbeats written by the worker, newest first."""
    with db.get_engine().connect() as conn:
        rows = conn.execute(
            sa.select(db.jobs).order_by(db.jobs.c.id.desc()).limit(limit)
        ).mappings()
        items = [
            {
                "id": row["id"],
                "hostname": row["hostname"],
                "release": row["release"],
                "pid": row["pid"],
                "created_at": _iso_utc(row["created_at"]),
            }
            for row in rows
        ]
    return {"jobs": items}
