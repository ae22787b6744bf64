"""tasks.cores and pools.cores hold shares of a core: the slots of a pool node split by
multiSlotsSettings.slotsPerNode share the node's cores (3 slots of a 1-core node: a third each)

Revision ID: 0013
Revises: 0011
Create Date: 2026-12-04 15:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # SQLite keeps a non-integral number in an INTEGER column as a REAL (type affinity), so
    # only PostgreSQL's column changes; a batch copy of tasks in SQLite would trip the
    # foreign keys that point at it
    if op.get_bind().dialect.name == "postgresql":
        for table in ("tasks", "pools"):
            op.alter_column(table, "cores", type_=sa.Float(), existing_nullable=False)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for table in ("tasks", "pools"):
            op.alter_column(
                table,
                "cores",
                type_=sa.Integer(),
                existing_nullable=False,
                postgresql_using="ceil(cores)::integer",
            )
