"""idempotency_keys: a retried ops call that moves money (Idempotency-Key) acts once

Revision ID: 0019_idempotency_keys
Revises: 0014_customer_plan_nullable
Create Date: 2026-12-07 10:45:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import lifecycle.models

revision: str = "0019_idempotency_keys"
down_revision: str | Sequence[str] | None = "0014_customer_plan_nullable"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "idempotency_keys",
        sa.Column("route", sa.String(length=200), nullable=False),
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("actor", sa.String(length=200), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=True),
        sa.Column("answer", sa.JSON(), nullable=True),
        sa.Column("created_at", lifecycle.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("finished_at", lifecycle.models.UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("route", "key", name=op.f("pk_idempotency_keys")),
    )


def downgrade() -> None:
    op.drop_table("idempotency_keys")
