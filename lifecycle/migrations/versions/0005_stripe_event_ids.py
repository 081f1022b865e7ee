"""stripe events: ids up to 255 characters (Stripe's limit), types up to 100

Revision ID: 0005_stripe_event_ids
Revises: 0004_email
Create Date: 2026-11-25 12:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005_stripe_event_ids"
down_revision: str | Sequence[str] | None = "0004_email"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("stripe_events", schema=None) as batch_op:
        batch_op.alter_column("id", existing_type=sa.String(length=64), type_=sa.String(length=255))
        batch_op.alter_column("type", existing_type=sa.String(length=64), type_=sa.String(length=100))
    with op.batch_alter_table("subscription_changes", schema=None) as batch_op:
        batch_op.alter_column(
            "source_event_id", existing_type=sa.String(length=64), type_=sa.String(length=255)
        )


def downgrade() -> None:
    with op.batch_alter_table("subscription_changes", schema=None) as batch_op:
        batch_op.alter_column(
            "source_event_id", existing_type=sa.String(length=255), type_=sa.String(length=64)
        )
    with op.batch_alter_table("stripe_events", schema=None) as batch_op:
        batch_op.alter_column("type", existing_type=sa.String(length=100), type_=sa.String(length=64))
        batch_op.alter_column("id", existing_type=sa.String(length=255), type_=sa.String(length=64))
