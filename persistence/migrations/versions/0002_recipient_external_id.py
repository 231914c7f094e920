"""recipients get an external_id, unique per kind and owner (what CSV imports match on)

Revision ID: 0002_recipient_external_id
Revises: 0001
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002_recipient_external_id"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLES = ("customers", "external_subjects")


def upgrade() -> None:
    for table in TABLES:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.add_column(sa.Column("external_id", sa.String(length=100), nullable=True))
            batch_op.create_index(
                f"uq_{table}_owner_external_id", ["owner_id", "external_id"], unique=True
            )
            batch_op.create_index(
                f"uq_{table}_unowned_external_id",
                ["external_id"],
                unique=True,
                postgresql_where=sa.text("owner_id IS NULL"),
                sqlite_where=sa.text("owner_id IS NULL"),
            )


def downgrade() -> None:
    for table in TABLES:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_index(f"uq_{table}_unowned_external_id")
            batch_op.drop_index(f"uq_{table}_owner_external_id")
            batch_op.drop_column("external_id")
