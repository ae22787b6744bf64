"""Task files: instance transfer progress and results, periodic snapshot settings, snapshots

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-29 04:20:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    with op.batch_alter_table("instances") as batch:
        batch.add_column(
            sa.Column("transfer_progress", sa.Float(), nullable=False, server_default="0")
        )
        batch.add_column(sa.Column("results", sa.JSON(), nullable=True))
    with op.batch_alter_table("tasks") as batch:
        batch.add_column(
            sa.Column("snapshot_interval", sa.Integer(), nullable=False, server_default="0")
        )
        batch.add_column(sa.Column("snapshot_due", sa.DateTime(), nullable=True))
        batch.add_column(sa.Column("snapshot_config", sa.JSON(), nullable=True))
        batch.create_index("ix_tasks_snapshot_due", ["snapshot_due"])
    op.create_table(
        "snapshots",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("task_id", Id, sa.ForeignKey("tasks.id", ondelete="CASCADE"), nullable=False),
        sa.Column("trigger_date", sa.DateTime(), nullable=False),
        sa.Column("last_update", sa.DateTime(), nullable=False),
        sa.Column("config", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("pending", sa.Integer(), nullable=False),
        sa.Column("size_to_upload", sa.BigInteger(), nullable=False, server_default="0"),
        sa.Column("transferred_size", sa.BigInteger(), nullable=False, server_default="0"),
        sa.Column("error", sa.Text(), nullable=True),
    )
    op.create_index("ix_snapshots_task_id", "snapshots", ["task_id"])


def downgrade() -> None:
    op.drop_index("ix_snapshots_task_id", table_name="snapshots")
    op.drop_table("snapshots")
    with op.batch_alter_table("tasks") as batch:
        batch.drop_index("ix_tasks_snapshot_due")
        batch.drop_column("snapshot_config")
        batch.drop_column("snapshot_due")
        batch.drop_column("snapshot_interval")
    with op.batch_alter_table("instances") as batch:
        batch.drop_column("results")
        batch.drop_column("transfer_progress")
