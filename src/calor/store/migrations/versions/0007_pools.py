"""Pools: the pools table, their slots (instances of a hidden task) and tasks on pools

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-29 10:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "pools",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("uuid", sa.String(36), nullable=False, unique=True),
        sa.Column("user_id", Id, sa.ForeignKey("users.id"), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("shortname", sa.String(255), nullable=False),
        sa.Column("profile", sa.String(128), nullable=False),
        sa.Column("state", sa.String(32), nullable=False),
        sa.Column("previous_state", sa.String(32), nullable=False),
        sa.Column("creation_date", sa.DateTime(), nullable=False),
        sa.Column("state_transition_time", sa.DateTime(), nullable=False),
        sa.Column("previous_state_transition_time", sa.DateTime(), nullable=False),
        sa.Column("last_modified", sa.DateTime(), nullable=False),
        sa.Column("end_date", sa.DateTime(), nullable=True),
        sa.Column("slots_task_id", Id, nullable=False),
        sa.Column("cores", sa.Integer(), nullable=False),
        sa.Column("elastic", sa.Boolean(), nullable=False),
        sa.Column("closing", sa.Boolean(), nullable=False),
        sa.Column("resize_period_sec", sa.Float(), nullable=False),
        sa.Column("resize_due", sa.DateTime(), nullable=True),
        sa.Column("active_policy", sa.String(255), nullable=True),
        sa.Column("completion_ttl_sec", sa.Float(), nullable=True),
        sa.Column("delete_due", sa.DateTime(), nullable=True),
        sa.Column("document", sa.JSON(), nullable=False),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_pools_user_id_id", "pools", ["user_id", "id"])
    op.create_index("ix_pools_user_shortname", "pools", ["user_id", "shortname"], unique=True)
    op.create_index("ix_pools_resize_due", "pools", ["resize_due"])
    op.create_index("ix_pools_delete_due", "pools", ["delete_due"])
    op.create_table(
        "pool_tags",
        sa.Column("pool_id", Id, sa.ForeignKey("pools.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("tag", sa.String(255), primary_key=True),
        sa.Column("user_id", Id, nullable=False),
    )
    op.create_index("ix_pool_tags_user_tag_pool", "pool_tags", ["user_id", "tag", "pool_id"])
    with op.batch_alter_table("tasks") as batch:
        batch.add_column(sa.Column("pool_id", Id, nullable=True))
        batch.add_column(sa.Column("slots_of", Id, nullable=True))
        batch.create_index("ix_tasks_pool_id", ["pool_id"])
    with op.batch_alter_table("instances") as batch:
        batch.add_column(sa.Column("slot_use", sa.String(8), nullable=True))
        batch.add_column(sa.Column("idle_since", sa.DateTime(), nullable=True))
        batch.add_column(sa.Column("slot_row_id", Id, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("instances") as batch:
        batch.drop_column("slot_row_id")
        batch.drop_column("idle_since")
        batch.drop_column("slot_use")
    with op.batch_alter_table("tasks") as batch:
        batch.drop_index("ix_tasks_pool_id")
        batch.drop_column("slots_of")
        batch.drop_column("pool_id")
    op.drop_index("ix_pool_tags_user_tag_pool", table_name="pool_tags")
    op.drop_table("pool_tags")
    for name in ("ix_pools_delete_due", "ix_pools_resize_due", "ix_pools_user_shortname"):
        op.drop_index(name, table_name="pools")
    op.drop_index("ix_pools_user_id_id", table_name="pools")
    op.drop_table("pools")
