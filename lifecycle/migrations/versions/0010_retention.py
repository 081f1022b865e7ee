"""retention: cancellation requests, save offers, reactivations

Revision ID: 0010_retention
Revises: 0009_card_expiry
Create Date: 2026-12-02 17:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import lifecycle.models

revision: str = "0010_retention"
down_revision: str | Sequence[str] | None = "0009_card_expiry"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UTC = lifecycle.models.UTCDateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "cancellation_requests",
        sa.Column("request_id", sa.String(length=128), nullable=False),
        sa.Column("customer_id", sa.String(length=128), nullable=False),
        sa.Column("reason", sa.String(length=32), nullable=True),
        sa.Column("comment", sa.Text(), nullable=True),
        sa.Column("at_once", sa.Boolean(), nullable=False),
        sa.Column("requested_at", UTC, nullable=False),
        sa.Column("outcome", sa.String(length=32), nullable=False),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.Column("offer_id", sa.String(length=64), nullable=True),
        sa.Column("decided_at", UTC, nullable=True),
        sa.PrimaryKeyConstraint("request_id", name=op.f("pk_cancellation_requests")),
    )
    op.create_index(
        op.f("ix_cancellation_requests_customer_id"), "cancellation_requests", ["customer_id"], unique=False
    )
    op.create_table(
        "save_offers",
        sa.Column("offer_id", sa.String(length=64), nullable=False),
        sa.Column("customer_id", sa.String(length=128), nullable=False),
        sa.Column("request_id", sa.String(length=128), nullable=False),
        sa.Column("reason", sa.String(length=32), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("months", sa.Integer(), nullable=False),
        sa.Column("percent_off", sa.Numeric(precision=5, scale=2, asdecimal=False), nullable=False),
        sa.Column("plan", sa.String(length=32), nullable=True),
        sa.Column("made_at", UTC, nullable=False),
        sa.Column("expires_at", UTC, nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("decided_at", UTC, nullable=True),
        sa.PrimaryKeyConstraint("offer_id", name=op.f("pk_save_offers")),
    )
    op.create_index(op.f("ix_save_offers_customer_id"), "save_offers", ["customer_id"], unique=False)
    op.create_table(
        "reactivations",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("key", sa.String(length=255), nullable=False),
        sa.Column("customer_id", sa.String(length=128), nullable=False),
        sa.Column("reactivated_at", UTC, nullable=False),
        sa.Column("plan", sa.String(length=32), nullable=False),
        sa.Column("interval", sa.String(length=8), nullable=False),
        sa.Column("mrr_cents", sa.Integer(), nullable=False),
        sa.Column("from_stage", sa.String(length=32), nullable=False),
        sa.Column("winback", sa.Integer(), nullable=False),
        sa.Column("coupon_id", sa.String(length=64), nullable=True),
        sa.Column("percent_off", sa.Numeric(precision=5, scale=2, asdecimal=False), nullable=False),
        sa.Column("duration_months", sa.Integer(), nullable=False),
        sa.Column("stripe_subscription_id", sa.String(length=64), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reactivations")),
        sa.UniqueConstraint("key", name=op.f("uq_reactivations_key")),
    )
    op.create_index(op.f("ix_reactivations_customer_id"), "reactivations", ["customer_id"], unique=False)
    op.create_index(op.f("ix_reactivations_reactivated_at"), "reactivations", ["reactivated_at"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_reactivations_reactivated_at"), table_name="reactivations")
    op.drop_index(op.f("ix_reactivations_customer_id"), table_name="reactivations")
    op.drop_table("reactivations")
    op.drop_index(op.f("ix_save_offers_customer_id"), table_name="save_offers")
    op.drop_table("save_offers")
    op.drop_index(op.f("ix_cancellation_requests_customer_id"), table_name="cancellation_requests")
    op.drop_table("cancellation_requests")
