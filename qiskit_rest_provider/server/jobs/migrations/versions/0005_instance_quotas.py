"""Per-instance quotas: queued jobs, shots per day, seconds per day; each job's shot count.

``instance_quotas`` holds an instance's own limits (a missing row or a NULL column follows the
server's ``serve`` flags; ``-1`` is "no limit"). ``jobs.shots`` is what the daily shot quota
sums: the job's shots as admission counts them (shots x parameter sets over its PUBs). It is
nullable (jobs of older releases have none and count 0): a plain ``ADD COLUMN``.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Create ``instance_quotas``; add ``jobs.shots BIGINT NULL``."""
    op.create_table(
        "instance_quotas",
        sa.Column("instance_id", sa.String(length=40), nullable=False),
        sa.Column("max_queued_jobs", sa.Integer(), nullable=True),
        sa.Column("max_shots_per_day", sa.BigInteger(), nullable=True),
        sa.Column("max_seconds_per_day", sa.Float(), nullable=True),
        sa.Column("updated", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(["instance_id"], ["instances.id"]),
        sa.PrimaryKeyConstraint("instance_id"),
    )
    op.add_column("jobs", sa.Column("shots", sa.BigInteger(), nullable=True))


def downgrade() -> None:
    """Drop ``jobs.shots`` (SQLite ≥ 3.35 or batch copy) and ``instance_quotas``."""
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("shots")
    op.drop_table("instance_quotas")
