"""users.running_task_count dropped: the engine counts a user's running tasks when a limit can
bind (an indexed count), and the counter's row lock could deadlock a submission with the engine

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-29 12:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # in place (SQLite >= 3.35 and PostgreSQL): a batch copy of users would trip the foreign
    # keys that point at it
    op.execute("ALTER TABLE users DROP COLUMN running_task_count")


def downgrade() -> None:
    op.add_column(
        "users",
        sa.Column("running_task_count", sa.BigInteger(), nullable=False, server_default="0"),
    )
