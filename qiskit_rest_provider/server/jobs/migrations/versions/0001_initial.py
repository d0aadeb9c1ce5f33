"""The schema of qiskit-rest-provider 0.1.0, exactly as its ``create_all`` made it.

Databases made by 0.1.0 carry no ``alembic_version`` table: the store checks their tables and
columns against this revision, stamps them 0001 and upgrades from there. So this file must keep
reproducing that schema byte for byte (constraint names left to the database, as then);
``test/unit/test_store_migrations_unit.py`` compares it with the DDL captured from 0.1.0.

Revision ID: 0001
Revises:
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Create the six tables of 0.1.0 (users, instances, tokens, sessions, jobs)."""
    op.create_table(
        "instances",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("hgp", sa.String(200), nullable=False, unique=True),
        sa.Column("crn", sa.String(300), nullable=False, unique=True),
        sa.Column("created", sa.Float(), nullable=False),
    )
    op.create_table(
        "users",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("created", sa.Float(), nullable=False),
    )
    op.create_table(
        "api_tokens",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("user_id", sa.String(40), sa.ForeignKey("users.id"), nullable=False),
        sa.Column("instance_id", sa.String(40), sa.ForeignKey("instances.id"), nullable=False),
        sa.Column("salt", sa.String(64), nullable=False),
        sa.Column("hash", sa.String(128), nullable=False),
        sa.Column("created", sa.Float(), nullable=False),
        sa.Column("revoked", sa.Boolean(), nullable=False),
    )
    op.create_table(
        "jobs",
        sa.Column("seq", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("id", sa.String(40), nullable=False, unique=True),
        sa.Column("instance_id", sa.String(40), sa.ForeignKey("instances.id"), nullable=False),
        sa.Column("user_id", sa.String(40), nullable=False),
        sa.Column("backend", sa.String(200), nullable=False),
        sa.Column("program_id", sa.String(40), nullable=False),
        sa.Column("params", sa.LargeBinary(), nullable=False),
        sa.Column("state", sa.String(20), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("reason_code", sa.Integer(), nullable=True),
        sa.Column("tags", sa.Text(), nullable=False),
        sa.Column("session_id", sa.String(40), nullable=True),
        sa.Column("log_level", sa.String(20), nullable=True),
        sa.Column("cost", sa.Integer(), nullable=True),
        sa.Column("private", sa.Boolean(), nullable=False),
        sa.Column("created", sa.Float(), nullable=False),
        sa.Column("running_at", sa.Float(), nullable=True),
        sa.Column("finished_at", sa.Float(), nullable=True),
        sa.Column("logs", sa.Text(), nullable=False),
        sa.Column("result", sa.LargeBinary(), nullable=True),
        sa.Column("result_file", sa.String(300), nullable=True),
        sa.Column("metrics", sa.Text(), nullable=True),
        sa.Column("idempotency_key", sa.String(200), nullable=True),
        sa.Column("usage_seconds", sa.Float(), nullable=False),
        sa.Column("quantum_seconds", sa.Float(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.UniqueConstraint("instance_id", "idempotency_key", name="uq_jobs_idempotency"),
    )
    op.create_index("ix_jobs_session_id", "jobs", ["session_id"])
    op.create_index("ix_jobs_state", "jobs", ["state"])
    op.create_index("ix_jobs_instance_created", "jobs", ["instance_id", "created"])
    op.create_table(
        "sessions",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("instance_id", sa.String(40), sa.ForeignKey("instances.id"), nullable=False),
        sa.Column("user_id", sa.String(40), nullable=False),
        sa.Column("backend", sa.String(200), nullable=False),
        sa.Column("mode", sa.String(20), nullable=False),
        sa.Column("max_ttl", sa.Integer(), nullable=False),
        sa.Column("interactive_ttl", sa.Integer(), nullable=False),
        sa.Column("accepting_jobs", sa.Boolean(), nullable=False),
        sa.Column("closed", sa.Boolean(), nullable=False),
        sa.Column("state_reason", sa.String(500), nullable=True),
        sa.Column("created", sa.Float(), nullable=False),
        sa.Column("activated_at", sa.Float(), nullable=True),
        sa.Column("closed_at", sa.Float(), nullable=True),
        sa.Column("last_job_started", sa.Float(), nullable=True),
        sa.Column("last_job_completed", sa.Float(), nullable=True),
    )
    op.create_index("ix_sessions_instance_id", "sessions", ["instance_id"])
    op.create_table(
        "access_tokens",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("kind", sa.String(10), nullable=False),
        sa.Column("api_token_id", sa.String(40), sa.ForeignKey("api_tokens.id"), nullable=False),
        sa.Column("salt", sa.String(64), nullable=True),
        sa.Column("hash", sa.String(128), nullable=True),
        sa.Column("created", sa.Float(), nullable=False),
        sa.Column("expires", sa.Float(), nullable=False),
        sa.Column("revoked", sa.Boolean(), nullable=False),
    )


def downgrade() -> None:
    """Drop everything (children first)."""
    op.drop_table("access_tokens")
    op.drop_index("ix_sessions_instance_id", table_name="sessions")
    op.drop_table("sessions")
    op.drop_index("ix_jobs_instance_created", table_name="jobs")
    op.drop_index("ix_jobs_state", table_name="jobs")
    op.drop_index("ix_jobs_session_id", table_name="jobs")
    op.drop_table("jobs")
    op.drop_table("api_tokens")
    op.drop_table("users")
    op.drop_table("instances")
