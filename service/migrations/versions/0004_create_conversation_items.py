"""Create conversation_items (a session's conversation, keyed by session and seq)
and user_sessions.last_item_seq (the highest seq each session gave).

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

UTC_DATETIME = sa.DateTime(timezone=True)
JSON_DOCUMENT = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade():
    op.add_column("user_sessions", sa.Column("last_item_seq", sa.BigInteger(), server_default="0", nullable=False))
    op.create_table(
        "conversation_items",
        sa.Column("user_session_uuid", sa.Uuid(), nullable=False),
        sa.Column("seq", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("type", sa.String(length=64), nullable=False),
        sa.Column("role", sa.String(length=64), nullable=True),
        sa.Column("content", JSON_DOCUMENT, nullable=False),
        sa.Column("created_at", UTC_DATETIME, nullable=False),
        sa.ForeignKeyConstraint(
            ["user_session_uuid"],
            ["user_sessions.uuid"],
            name=op.f("fk_conversation_items_user_session_uuid_user_sessions"),
            ondelete="CASCADE",
        ),
        # The key every query of items walks: one session's items in seq order.
        sa.PrimaryKeyConstraint("user_session_uuid", "seq", name=op.f("pk_conversation_items")),
        sa.UniqueConstraint("id", name=op.f("uq_conversation_items_id")),
    )


def downgrade():
    op.drop_table("conversation_items")
    # A plain ALTER TABLE … DROP COLUMN (SQLite 3.35+ too): a batch copy of the
    # table would lose the expression index SQLite cannot reflect.
    op.drop_column("user_sessions", "last_item_seq")
