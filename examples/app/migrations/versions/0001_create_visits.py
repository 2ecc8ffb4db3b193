"""create the visits counter table

Revision ID: 0001_visits
Revises:
Create Date: 2025-01-01 00:00:00

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0001_visits"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Create ``visits`` with its single counter row (id 1) at 0."""
    visits = op.create_table(
        "visits",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("count", sa.BigInteger, nullable=False, server_default="0"),
    )
    op.bulk_insert(visits, [{"id": 1, "count": 0}])


def downgrade() -> None:
    """Drop ``visits``."""
    op.drop_table("visits")
