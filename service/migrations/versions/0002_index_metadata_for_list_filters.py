"""Index metadata for the list filter metadata.KEY=VALUE (PostgreSQL only).

A GIN index with jsonb_path_ops serves JSONB containment (metadata @> '{"k": "v"}'),
so a selective metadata filter reads only the matching rows. SQLite has no such
index; it evaluates the filter with its JSON functions.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27
"""

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def _on_postgresql():
    return op.get_bind().dialect.name == "postgresql"


def upgrade():
    if _on_postgresql():
        op.create_index(
            "ix_user_sessions_metadata",
            "user_sessions",
            ["metadata"],
            postgresql_using="gin",
            postgresql_ops={"metadata": "jsonb_path_ops"},
        )


def downgrade():
    if _on_postgresql():
        op.drop_index("ix_user_sessions_metadata", table_name="user_sessions")
