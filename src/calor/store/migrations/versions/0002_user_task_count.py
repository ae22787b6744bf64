"""users.task_count: the per-user task limit is checked in O(1), not by counting tasks

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28 19:40:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "users",
        sa.Column("task_count", sa.BigInteger(), nullable=False, server_default="0"),
    )
    op.execute(
        "UPDATE users SET task_count = (SELECT count(*) FROM tasks WHERE tasks.user_id = users.id)"
    )


def downgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.drop_column("task_count")
