"""users.running_task_count: maxRunningTask is checked by the engine without counting tasks

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-29 11:30:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

RUNNING = (
    "'PartiallyDispatched', 'FullyDispatched', 'PartiallyExecuting', 'FullyExecuting', "
    "'UploadingResults'"
)


def upgrade() -> None:
    op.add_column(
        "users",
        sa.Column("running_task_count", sa.BigInteger(), nullable=False, server_default="0"),
    )
    op.execute(
        "UPDATE users SET running_task_count = (SELECT count(*) FROM tasks "
        f"WHERE tasks.user_id = users.id AND tasks.state IN ({RUNNING}) "
        "AND tasks.slots_of IS NULL)"
    )


def downgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.drop_column("running_task_count")
