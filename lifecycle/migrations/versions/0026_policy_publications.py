"""policy_publications: each publication of a policy version; the latest version is the one
published by the highest id (a database-assigned order, not the publisher's clock)

Revision ID: 0026_policy_publications
Revises: 0025_payment_method_of_payments
Create Date: 2026-12-07 18:15:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import lifecycle.models

revision: str = "0026_policy_publications"
down_revision: str | Sequence[str] | None = "0025_payment_method_of_payments"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "policy_publications",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("version_id", sa.Integer(), nullable=False),
        sa.Column("published_at", lifecycle.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("published_by", sa.String(length=200), nullable=False),
        sa.ForeignKeyConstraint(
            ["version_id"], ["policy_versions.id"],
            name=op.f("fk_policy_publications_version_id_policy_versions"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_policy_publications")),
    )
    op.create_index(op.f("ix_policy_publications_version_id"), "policy_publications", ["version_id"], unique=False)
    # the versions published so far, in the order they were (their clocks: all there was)
    op.execute(
        "INSERT INTO policy_publications (version_id, published_at, published_by) "
        "SELECT id, published_at, published_by FROM policy_versions ORDER BY published_at, id"
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_policy_publications_version_id"), table_name="policy_publications")
    op.drop_table("policy_publications")
