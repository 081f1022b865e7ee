"""stripe prices: the prices and products seen, the price a subscription bills, event notes

Revision ID: 0006_stripe_prices
Revises: 0005_stripe_event_ids
Create Date: 2026-11-25 12:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import lifecycle.models

revision: str = "0006_stripe_prices"
down_revision: str | Sequence[str] | None = "0005_stripe_event_ids"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "stripe_products",
        sa.Column("id", sa.String(length=255), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=True),
        sa.Column("metadata", sa.JSON(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("updated_at", lifecycle.models.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_stripe_products")),
    )
    op.create_table(
        "stripe_prices",
        sa.Column("id", sa.String(length=255), nullable=False),
        sa.Column("object", sa.String(length=8), nullable=False),
        sa.Column("product_id", sa.String(length=255), nullable=True),
        sa.Column("lookup_key", sa.String(length=255), nullable=True),
        sa.Column("nickname", sa.String(length=255), nullable=True),
        sa.Column("metadata", sa.JSON(), nullable=False),
        sa.Column("interval", sa.String(length=8), nullable=True),
        sa.Column("interval_count", sa.Integer(), nullable=False),
        sa.Column("unit_amount_cents", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("tier", sa.String(length=32), nullable=True),
        sa.Column("tier_source", sa.String(length=32), nullable=True),
        sa.Column("unmapped_seen", sa.Integer(), nullable=False),
        sa.Column("last_event_id", sa.String(length=255), nullable=True),
        sa.Column("first_seen_at", lifecycle.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("last_seen_at", lifecycle.models.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_stripe_prices")),
    )
    with op.batch_alter_table("subscriptions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("stripe_price_id", sa.String(length=255), nullable=True))
    with op.batch_alter_table("stripe_events", schema=None) as batch_op:
        batch_op.add_column(sa.Column("note", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("stripe_events", schema=None) as batch_op:
        batch_op.drop_column("note")
    with op.batch_alter_table("subscriptions", schema=None) as batch_op:
        batch_op.drop_column("stripe_price_id")
    op.drop_table("stripe_prices")
    op.drop_table("stripe_products")
