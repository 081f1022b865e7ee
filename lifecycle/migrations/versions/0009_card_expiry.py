"""the default card on the billing mirror (pre-dunning): stripe_payment_methods, customer_cards

Revision ID: 0009_card_expiry
Revises: 0008_dunning
Create Date: 2026-12-02 16:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import lifecycle.models

revision: str = "0009_card_expiry"
down_revision: str | Sequence[str] | None = "0008_dunning"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "stripe_payment_methods",
        sa.Column("stripe_payment_method_id", sa.String(length=64), nullable=False),
        sa.Column("stripe_customer_id", sa.String(length=64), nullable=True),
        sa.Column("brand", sa.String(length=32), nullable=False),
        sa.Column("last4", sa.String(length=4), nullable=False),
        sa.Column("exp_month", sa.Integer(), nullable=False),
        sa.Column("exp_year", sa.Integer(), nullable=False),
        sa.Column("stripe_version_ts", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", lifecycle.models.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("stripe_payment_method_id", name=op.f("pk_stripe_payment_methods")),
    )
    op.create_index(
        op.f("ix_stripe_payment_methods_stripe_customer_id"), "stripe_payment_methods",
        ["stripe_customer_id"], unique=False,
    )
    op.create_table(
        "customer_cards",
        sa.Column("customer_id", sa.String(length=128), nullable=False),
        sa.Column("stripe_payment_method_id", sa.String(length=64), nullable=True),
        sa.Column("brand", sa.String(length=32), nullable=False),
        sa.Column("last4", sa.String(length=4), nullable=False),
        sa.Column("exp_month", sa.Integer(), nullable=False),
        sa.Column("exp_year", sa.Integer(), nullable=False),
        sa.Column("stripe_version_ts", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", lifecycle.models.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("customer_id", name=op.f("pk_customer_cards")),
    )
    op.create_index(
        op.f("ix_customer_cards_stripe_payment_method_id"), "customer_cards",
        ["stripe_payment_method_id"], unique=False,
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_customer_cards_stripe_payment_method_id"), table_name="customer_cards")
    op.drop_table("customer_cards")
    op.drop_index(op.f("ix_stripe_payment_methods_stripe_customer_id"), table_name="stripe_payment_methods")
    op.drop_table("stripe_payment_methods")
