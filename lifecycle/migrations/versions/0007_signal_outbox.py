"""signal outbox for customer workflows; back-off for the Stripe event sweeper

Revision ID: 0007_signal_outbox
Revises: 0006_stripe_prices
Create Date: 2026-12-01 22:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import lifecycle.models

revision: str = "0007_signal_outbox"
down_revision: str | Sequence[str] | None = "0006_stripe_prices"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "signal_outbox",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("event_id", sa.String(length=255), nullable=False),
        sa.Column("customer_id", sa.String(length=128), nullable=False),
        sa.Column("kind", sa.String(length=64), nullable=False),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.Column("start", sa.JSON(), nullable=True),
        sa.Column("created_at", lifecycle.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("delivered_at", lifecycle.models.UTCDateTime(timezone=True), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", lifecycle.models.UTCDateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_signal_outbox")),
        sa.UniqueConstraint("event_id", name=op.f("uq_signal_outbox_event_id")),
    )
    op.create_index(op.f("ix_signal_outbox_customer_id"), "signal_outbox", ["customer_id"], unique=False)
    op.create_index("ix_signal_outbox_pending", "signal_outbox", ["delivered_at", "next_attempt_at"], unique=False)
    with op.batch_alter_table("stripe_events", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("next_attempt_at", lifecycle.models.UTCDateTime(timezone=True), nullable=True)
        )


def downgrade() -> None:
    with op.batch_alter_table("stripe_events", schema=None) as batch_op:
        batch_op.drop_column("next_attempt_at")
    op.drop_index("ix_signal_outbox_pending", table_name="signal_outbox")
    op.drop_index(op.f("ix_signal_outbox_customer_id"), table_name="signal_outbox")
    op.drop_table("signal_outbox")
