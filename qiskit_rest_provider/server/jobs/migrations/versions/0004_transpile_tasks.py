"""Transpile tasks live in the store, queued with the jobs (they survive a restart).

``POST /transpile`` used to keep its tasks in the server process' memory and hand them straight to
the workers, past the job queue. This revision adds the ``transpile_tasks`` table: the dispatcher
serves its ``PENDING`` rows from the same fair queue as Queued jobs, claims a task by moving it to
``STARTED`` with a replica lease (as ``jobs.claimed_by`` / ``jobs.lease_expires_at``), and records
``SUCCESS``, ``FAILURE`` or ``CANCELLED`` once. A new table only: nothing of the older ones changes.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Create ``transpile_tasks`` and its indexes."""
    op.create_table(
        "transpile_tasks",
        sa.Column("seq", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("id", sa.String(40), nullable=False, unique=True),
        sa.Column("instance_id", sa.String(40), sa.ForeignKey("instances.id"), nullable=False),
        sa.Column("state", sa.String(20), nullable=False),
        sa.Column("backend", sa.String(200), nullable=True),
        sa.Column("request", sa.LargeBinary(), nullable=False),
        sa.Column("warnings", sa.Text(), nullable=False),
        sa.Column("num_circuits", sa.Integer(), nullable=False),
        sa.Column("time_limit", sa.Float(), nullable=False),
        sa.Column("created", sa.Float(), nullable=False),
        sa.Column("started_at", sa.Float(), nullable=True),
        sa.Column("finished_at", sa.Float(), nullable=True),
        sa.Column("result", sa.LargeBinary(), nullable=True),
        sa.Column("seconds", sa.Float(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("claimed_by", sa.String(200), nullable=True),
        sa.Column("lease_expires_at", sa.Float(), nullable=True),
    )
    op.create_index("ix_transpile_tasks_state", "transpile_tasks", ["state"])
    op.create_index(
        "ix_transpile_tasks_instance_created", "transpile_tasks", ["instance_id", "created"]
    )


def downgrade() -> None:
    """Drop the table (its tasks are lost)."""
    op.drop_index("ix_transpile_tasks_instance_created", table_name="transpile_tasks")
    op.drop_index("ix_transpile_tasks_state", table_name="transpile_tasks")
    op.drop_table("transpile_tasks")
