"""Usage accounting: one row per ended instance attempt (usage_records), their sums per user,
task, pool and job (usage_totals), and the users' credit budgets (credit_budgets)

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-05 10:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "usage_records",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("user_id", Id, nullable=False),
        sa.Column("task_uuid", sa.String(36)),
        sa.Column("pool_uuid", sa.String(36)),
        sa.Column("job_uuid", sa.String(36)),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("instance_id", sa.Integer(), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("ended_at", sa.DateTime(), nullable=False),
        sa.Column("cores", sa.Float(), nullable=False),
        sa.Column("wall_time_sec", sa.Float(), nullable=False),
        sa.Column("cpu_time_sec", sa.Float(), nullable=False),
        sa.Column("core_seconds", sa.Float(), nullable=False),
        sa.Column("peak_memory_mb", sa.Integer(), nullable=False),
        sa.Column("energy_j", sa.Float(), nullable=False),
        sa.Column("energy_measured", sa.Boolean(), nullable=False),
        sa.Column("credits", sa.Float(), nullable=False),
    )
    op.create_index("ix_usage_records_ended_at", "usage_records", ["ended_at"])
    op.create_index("ix_usage_records_user_ended_at", "usage_records", ["user_id", "ended_at"])
    op.create_table(
        "usage_totals",
        sa.Column("scope", sa.String(8), primary_key=True),
        sa.Column("key", sa.String(36), primary_key=True),
        sa.Column("user_id", Id, nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("core_seconds", sa.Float(), nullable=False),
        sa.Column("cpu_time_sec", sa.Float(), nullable=False),
        sa.Column("wall_time_sec", sa.Float(), nullable=False),
        sa.Column("peak_memory_mb", sa.Integer(), nullable=False),
        sa.Column("energy_j", sa.Float(), nullable=False),
        sa.Column("measured_energy_j", sa.Float(), nullable=False),
        sa.Column("credits", sa.Float(), nullable=False),
    )
    op.create_table(
        "credit_budgets",
        sa.Column("user_id", Id, sa.ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("credits", sa.Float(), nullable=False),
        sa.Column("set_at", sa.DateTime(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("credit_budgets")
    op.drop_table("usage_totals")
    op.drop_index("ix_usage_records_user_ended_at", table_name="usage_records")
    op.drop_index("ix_usage_records_ended_at", table_name="usage_records")
    op.drop_table("usage_records")
