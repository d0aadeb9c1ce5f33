"""Jobs remember which server replica runs them, and until when its claim holds.

Several ``serve`` replicas may share one PostgreSQL database. A replica claims a Queued job by
moving it to Running with ``jobs.claimed_by`` = its replica id and ``jobs.lease_expires_at`` =
now + ``--lease-seconds``; its dispatcher renews the lease while the job runs. A replica that
dies stops renewing, and any other replica puts the job back in the queue once the lease has
expired. Both columns are nullable (jobs of older releases have neither): a plain
``ADD COLUMN`` on SQLite and PostgreSQL alike.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Add ``jobs.claimed_by VARCHAR(200) NULL`` and ``jobs.lease_expires_at FLOAT NULL``."""
    op.add_column("jobs", sa.Column("claimed_by", sa.String(length=200), nullable=True))
    op.add_column("jobs", sa.Column("lease_expires_at", sa.Float(), nullable=True))


def downgrade() -> None:
    """Drop both columns (SQLite ≥ 3.35 or batch copy)."""
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("lease_expires_at")
        batch.drop_column("claimed_by")
