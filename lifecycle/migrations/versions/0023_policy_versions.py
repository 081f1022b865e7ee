"""policy_versions: published versions of the campaign policy and the tier catalog

Revision ID: 0023_policy_versions
Revises: 0019_idempotency_keys
Create Date: 2026-12-07 16:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import lifecycle.models

revision: str = "0023_policy_versions"
down_revision: str | Sequence[str] | None = "0022_access_pauses"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "policy_versions",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("content_hash", sa.String(length=64), nullable=False),
        sa.Column("content", sa.JSON(), nullable=False),
        sa.Column("published_at", lifecycle.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("published_by", sa.String(length=200), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_policy_versions")),
        sa.UniqueConstraint("content_hash", name=op.f("uq_policy_versions_content_hash")),
    )
    op.create_index(op.f("ix_policy_versions_published_at"), "policy_versions", ["published_at"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_policy_versions_published_at"), table_name="policy_versions")
    op.drop_table("policy_versions")
