"""instances.slot_use indexed: every claim looks for idle pool slots

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-29 11:00:00
"""

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_instances_slot_use", "instances", ["slot_use"])


def downgrade() -> None:
    op.drop_index("ix_instances_slot_use", table_name="instances")
