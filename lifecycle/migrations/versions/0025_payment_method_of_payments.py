"""payments.payment_method_id: the card each payment was attempted with (a card whose last
attempt on an invoice was a hard decline is not charged again)

Revision ID: 0025_payment_method_of_payments
Revises: 0019_idempotency_keys
Create Date: 2026-12-07 16:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0025_payment_method_of_payments"
down_revision: str | Sequence[str] | None = "0023_policy_versions"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("payments", schema=None) as batch_op:
        batch_op.add_column(sa.Column("payment_method_id", sa.String(length=255), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("payments", schema=None) as batch_op:
        batch_op.drop_column("payment_method_id")
