"""dunning: each run's record kept (run_id) and the end action's failing Stripe call

A second dunning for the same invoice (the same workflow id) keeps its own ``dunning_runs``
row and ``dunning_cases`` rows (keyed by the run's first-execution run id; "" for runs begun
before); ``end_action_error`` / ``end_action_failing_since`` say the end action's Stripe call
is still failing (retried with backoff).

Revision ID: 0020_dunning_end_action
Revises: 0019_idempotency_keys
Create Date: 2026-12-07 16:50:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import lifecycle.models

revision: str = "0020_dunning_end_action"
down_revision: str | Sequence[str] | None = "0019_idempotency_keys"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("dunning_runs") as batch:
        batch.add_column(sa.Column("run_id", sa.String(length=64), nullable=False, server_default=""))
        batch.add_column(sa.Column("end_action_error", sa.Text(), nullable=True))
        batch.add_column(sa.Column("end_action_failing_since", lifecycle.models.UTCDateTime(timezone=True),
                                   nullable=True))
        batch.drop_constraint("pk_dunning_runs", type_="primary")
        batch.create_primary_key("pk_dunning_runs", ["workflow_id", "run_id"])
    with op.batch_alter_table("dunning_cases") as batch:
        batch.add_column(sa.Column("run_id", sa.String(length=64), nullable=False, server_default=""))
        batch.drop_constraint("uq_dunning_cases_invoice_id", type_="unique")
        batch.create_unique_constraint("uq_dunning_cases_invoice_id", ["invoice_id", "run_id"])


def downgrade() -> None:
    # Before 0020 a workflow id (an invoice) had one run and one case: keep only the latest
    # run's rows (the latest started, per workflow id; the latest case, per invoice), or the
    # old keys cannot be restored once a second dunning of the same invoice exists.
    op.execute(sa.text(
        "DELETE FROM dunning_runs WHERE EXISTS (SELECT 1 FROM dunning_runs AS later"
        " WHERE later.workflow_id = dunning_runs.workflow_id"
        " AND (later.started_at > dunning_runs.started_at"
        " OR (later.started_at = dunning_runs.started_at AND later.run_id > dunning_runs.run_id)))"
    ))
    op.execute(sa.text(
        "DELETE FROM dunning_cases WHERE EXISTS (SELECT 1 FROM dunning_cases AS later"
        " WHERE later.invoice_id = dunning_cases.invoice_id AND later.id > dunning_cases.id)"
    ))
    with op.batch_alter_table("dunning_cases") as batch:
        batch.drop_constraint("uq_dunning_cases_invoice_id", type_="unique")
        batch.create_unique_constraint("uq_dunning_cases_invoice_id", ["invoice_id"])
        batch.drop_column("run_id")
    with op.batch_alter_table("dunning_runs") as batch:
        batch.drop_constraint("pk_dunning_runs", type_="primary")
        batch.create_primary_key("pk_dunning_runs", ["workflow_id"])
        batch.drop_column("end_action_failing_since")
        batch.drop_column("end_action_error")
        batch.drop_column("run_id")
