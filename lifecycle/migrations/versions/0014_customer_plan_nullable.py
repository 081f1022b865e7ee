"""customers.plan_code nullable: a customer first seen in Stripe on an unmapped price has no tier

Revision ID: 0014_customer_plan_nullable
Revises: 0013_webhooks
Create Date: 2026-12-02 17:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014_customer_plan_nullable"
down_revision: str | Sequence[str] | None = "0013_webhooks"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("customers") as batch:
        batch.alter_column("plan_code", existing_type=sa.String(length=32), nullable=True)


def downgrade() -> None:
    # a customer with no tier cannot be given one here: the default trial plan, as before
    op.execute("UPDATE customers SET plan_code = 'starter' WHERE plan_code IS NULL")
    with op.batch_alter_table("customers") as batch:
        batch.alter_column("plan_code", existing_type=sa.String(length=32), nullable=False)
