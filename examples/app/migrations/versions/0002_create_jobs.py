"""create the jobs table for the worker's heartbeats

Revision ID: 0002_jobs
Revises: 0001_visits
Create Date: 2025-01-01 00:00:01

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0002_jobs"
down_revision: str | Sequence[str] | None = "0001_visits"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Create ``jobs`` (one row per worker heartbeat), indexed by time."""
    op.create_table(
        "jobs",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("hostname", sa.String(255), nullable=False),
        sa.Column("release", sa.String(255), nullable=False),
        sa.Column("pid", sa.Integer, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_jobs_created_at", "jobs", ["created_at"])


def downgrade() -> None:
    """Drop ``jobs``."""
    op.drop_index("ix_jobs_created_at", table_name="jobs")
    op.drop_table("jobs")
