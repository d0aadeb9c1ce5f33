"""Jobs remember when a private job's results were handed out (they are served once only).

``jobs.private`` already exists since 0001 (``BOOLEAN NOT NULL``); this revision adds
``jobs.results_consumed_at``: NULL until the results of a ``private: true`` job are first read,
then the time (float seconds since the epoch) they were, after which the service answers them no
more. Nullable, so rows of older jobs need no value: a plain ``ADD COLUMN`` on SQLite and
PostgreSQL alike.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Add ``jobs.results_consumed_at FLOAT NULL``."""
    op.add_column("jobs", sa.Column("results_consumed_at", sa.Float(), nullable=True))


def downgrade() -> None:
    """Drop ``jobs.results_consumed_at`` (SQLite ≥ 3.35 or batch copy)."""
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("results_consumed_at")
