"""shipit's example app: a small FastAPI service with a PostgreSQL-backed counter,
a heartbeat worker and alembic migrations; shipit's README and end-to-end tests deploy it."""

__version__ = "0.1.0"
