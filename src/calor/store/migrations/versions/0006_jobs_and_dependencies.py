"""Jobs, task dependencies, queue deadlines (maxTimeQueueSeconds) and auto-deletion

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-29 09:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "jobs",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("uuid", sa.String(36), nullable=False, unique=True),
        sa.Column("user_id", Id, sa.ForeignKey("users.id"), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("shortname", sa.String(255), nullable=False),
        sa.Column("pool_uuid", sa.String(36), nullable=True),
        sa.Column("state", sa.String(32), nullable=False),
        sa.Column("previous_state", sa.String(32), nullable=False),
        sa.Column("creation_date", sa.DateTime(), nullable=False),
        sa.Column("state_transition_time", sa.DateTime(), nullable=False),
        sa.Column("previous_state_transition_time", sa.DateTime(), nullable=False),
        sa.Column("last_modified", sa.DateTime(), nullable=False),
        sa.Column("end_date", sa.DateTime(), nullable=True),
        sa.Column("use_dependencies", sa.Boolean(), nullable=False),
        sa.Column("wall_due", sa.DateTime(), nullable=True),
        sa.Column("completion_ttl_sec", sa.Float(), nullable=True),
        sa.Column("delete_due", sa.DateTime(), nullable=True),
        sa.Column("document", sa.JSON(), nullable=False),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_jobs_user_id_id", "jobs", ["user_id", "id"])
    op.create_index("ix_jobs_user_shortname", "jobs", ["user_id", "shortname"], unique=True)
    op.create_index("ix_jobs_wall_due", "jobs", ["wall_due"])
    op.create_index("ix_jobs_delete_due", "jobs", ["delete_due"])
    op.create_table(
        "job_tags",
        sa.Column("job_id", Id, sa.ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("tag", sa.String(255), primary_key=True),
        sa.Column("user_id", Id, nullable=False),
    )
    op.create_index("ix_job_tags_user_tag_job", "job_tags", ["user_id", "tag", "job_id"])
    op.create_table(
        "task_dependencies",
        sa.Column("task_id", Id, sa.ForeignKey("tasks.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("depends_on_id", Id, primary_key=True),
        sa.Column("depends_on_uuid", sa.String(36), nullable=False),
        sa.Column("conditions", sa.JSON(), nullable=True),
        sa.Column("advanced", sa.Boolean(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
    )
    op.create_index("ix_task_dependencies_depends_on", "task_dependencies", ["depends_on_id"])
    with op.batch_alter_table("tasks") as batch:
        batch.add_column(sa.Column("job_id", Id, nullable=True))
        batch.add_column(sa.Column("dependency_state", sa.String(40), nullable=True))
        batch.add_column(sa.Column("max_queue_sec", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("queue_due", sa.DateTime(), nullable=True))
        batch.add_column(sa.Column("completion_ttl_sec", sa.Float(), nullable=True))
        batch.add_column(sa.Column("delete_due", sa.DateTime(), nullable=True))
        batch.create_index("ix_tasks_job_id_id", ["job_id", "id"])
        batch.create_index("ix_tasks_queue_due", ["queue_due"])
        batch.create_index("ix_tasks_delete_due", ["delete_due"])


def downgrade() -> None:
    with op.batch_alter_table("tasks") as batch:
        batch.drop_index("ix_tasks_delete_due")
        batch.drop_index("ix_tasks_queue_due")
        batch.drop_index("ix_tasks_job_id_id")
        batch.drop_column("delete_due")
        batch.drop_column("completion_ttl_sec")
        batch.drop_column("queue_due")
        batch.drop_column("max_queue_sec")
        batch.drop_column("dependency_state")
        batch.drop_column("job_id")
    op.drop_index("ix_task_dependencies_depends_on", table_name="task_dependencies")
    op.drop_table("task_dependencies")
    op.drop_index("ix_job_tags_user_tag_job", table_name="job_tags")
    op.drop_table("job_tags")
    for name in ("ix_jobs_delete_due", "ix_jobs_wall_due", "ix_jobs_user_shortname"):
        op.drop_index(name, table_name="jobs")
    op.drop_index("ix_jobs_user_id_id", table_name="jobs")
    op.drop_table("jobs")
