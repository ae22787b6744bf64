"""instances: AUTOINCREMENT on SQLite, so that a deleted instance's row id is never reused

Executors know attempts by row id; an event of a deleted task's attempt must not land on a new
instance that got the same id. PostgreSQL sequences never reuse ids already.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-29 05:00:00
"""

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    with op.batch_alter_table(
        "instances", recreate="always", table_kwargs={"sqlite_autoincrement": True}
    ):
        pass


def downgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    with op.batch_alter_table(
        "instances", recreate="always", table_kwargs={"sqlite_autoincrement": False}
    ):
        pass
