"""dunning: runs (state, suspension), cases (one per invoice), manual payments

Revision ID: 0008_dunning
Revises: 0007_signal_outbox
Create Date: 2026-12-02 16:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import lifecycle.models

revision: str = "0008_dunning"
down_revision: str | Sequence[str] | None = "0007_signal_outbox"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UTC = lifecycle.models.UTCDateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "dunning_runs",
        sa.Column("workflow_id", sa.String(length=255), nullable=False),
        sa.Column("customer_id", sa.String(length=128), nullable=False),
        sa.Column("state", sa.String(length=32), nullable=False),
        sa.Column("since", UTC, nullable=False),
        sa.Column("started_at", UTC, nullable=False),
        sa.Column("retry_mode", sa.String(length=16), nullable=False),
        sa.Column("suspended", sa.Boolean(), nullable=False),
        sa.Column("next_retry_at", UTC, nullable=True),
        sa.Column("next_step", sa.String(length=64), nullable=True),
        sa.Column("next_step_at", UTC, nullable=True),
        sa.Column("ended", sa.Boolean(), nullable=False),
        sa.Column("recovered_how", sa.String(length=32), nullable=True),
        sa.Column("suspended_once", sa.Boolean(), nullable=False),
        sa.Column("end_action", sa.String(length=32), nullable=True),
        sa.Column("updated_at", UTC, nullable=False),
        sa.PrimaryKeyConstraint("workflow_id", name=op.f("pk_dunning_runs")),
    )
    op.create_index(op.f("ix_dunning_runs_customer_id"), "dunning_runs", ["customer_id"], unique=False)
    op.create_index("ix_dunning_runs_suspended", "dunning_runs", ["customer_id", "suspended"], unique=False)
    op.create_table(
        "dunning_cases",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("invoice_id", sa.String(length=64), nullable=False),
        sa.Column("workflow_id", sa.String(length=255), nullable=False),
        sa.Column("customer_id", sa.String(length=128), nullable=False),
        sa.Column("amount_cents", sa.Integer(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("decline_code", sa.String(length=64), nullable=True),
        sa.Column("hard_decline", sa.Boolean(), nullable=False),
        sa.Column("failed_at", UTC, nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("how", sa.String(length=32), nullable=True),
        sa.Column("closed_at", UTC, nullable=True),
        sa.Column("updated_at", UTC, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dunning_cases")),
        sa.UniqueConstraint("invoice_id", name=op.f("uq_dunning_cases_invoice_id")),
    )
    op.create_index(op.f("ix_dunning_cases_workflow_id"), "dunning_cases", ["workflow_id"], unique=False)
    op.create_index(op.f("ix_dunning_cases_customer_id"), "dunning_cases", ["customer_id"], unique=False)
    op.create_index(op.f("ix_dunning_cases_failed_at"), "dunning_cases", ["failed_at"], unique=False)
    op.create_table(
        "manual_payments",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("invoice_id", sa.String(length=64), nullable=False),
        sa.Column("customer_id", sa.String(length=128), nullable=True),
        sa.Column("amount_cents", sa.Integer(), nullable=False),
        sa.Column("actor", sa.String(length=200), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("recorded_at", UTC, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_manual_payments")),
        sa.UniqueConstraint("invoice_id", name=op.f("uq_manual_payments_invoice_id")),
    )
    op.create_index(op.f("ix_manual_payments_customer_id"), "manual_payments", ["customer_id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_manual_payments_customer_id"), table_name="manual_payments")
    op.drop_table("manual_payments")
    op.drop_index(op.f("ix_dunning_cases_failed_at"), table_name="dunning_cases")
    op.drop_index(op.f("ix_dunning_cases_customer_id"), table_name="dunning_cases")
    op.drop_index(op.f("ix_dunning_cases_workflow_id"), table_name="dunning_cases")
    op.drop_table("dunning_cases")
    op.drop_index("ix_dunning_runs_suspended", table_name="dunning_runs")
    op.drop_index(op.f("ix_dunning_runs_customer_id"), table_name="dunning_runs")
    op.drop_table("dunning_runs")
