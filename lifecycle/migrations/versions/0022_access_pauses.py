"""access_pauses: what a save offer's pause leaves of the customer's access (keep,
read_only, none) until it ends; the usage check and the entitlements read it

Revision ID: 0022_access_pauses
Revises: 0019_idempotency_keys
Create Date: 2026-12-07 17:05:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import lifecycle.models

revision: str = "0022_access_pauses"
down_revision: str | Sequence[str] | None = "0020_dunning_end_action"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "access_pauses",
        sa.Column("customer_id", sa.String(length=128), nullable=False),
        sa.Column("offer_id", sa.String(length=64), nullable=False),
        sa.Column("access", sa.String(length=16), nullable=False),
        sa.Column("paused_at", lifecycle.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("resumes_at", lifecycle.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("ended_at", lifecycle.models.UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("customer_id", name=op.f("pk_access_pauses")),
    )


def downgrade() -> None:
    op.drop_table("access_pauses")
