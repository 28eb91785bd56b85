"""Create user_sessions with the indexes listing needs.

Revision ID: 0001
Revises:
Create Date: 2026-11-27
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

UTC_DATETIME = sa.DateTime(timezone=True)
JSON_DOCUMENT = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade():
    op.create_table(
        "user_sessions",
        sa.Column("uuid", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=True),
        sa.Column("email", sa.String(length=254), nullable=True),
        sa.Column("ip_address", sa.String(length=45), nullable=True),
        sa.Column("consent_user_data", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("metadata", JSON_DOCUMENT, server_default="{}", nullable=False),
        sa.Column("is_email_verified", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("verification_code_hash", sa.String(length=64), nullable=True),
        sa.Column("verification_attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("max_verification_attempts", sa.Integer(), server_default="3", nullable=False),
        sa.Column("verification_expires_at", UTC_DATETIME, nullable=True),
        sa.Column("resend_attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("max_resend_attempts", sa.Integer(), server_default="3", nullable=False),
        sa.Column("last_resend_at", UTC_DATETIME, nullable=True),
        sa.Column("created_at", UTC_DATETIME, server_default=sa.func.now(), nullable=False),
        sa.Column("updated_at", UTC_DATETIME, server_default=sa.func.now(), nullable=False),
        sa.Column("completed_at", UTC_DATETIME, nullable=True),
        sa.Column("expires_at", UTC_DATETIME, nullable=True),
        sa.Column("deleted_at", UTC_DATETIME, nullable=True),
        sa.Column("version", sa.Integer(), server_default="1", nullable=False),
        sa.PrimaryKeyConstraint("uuid", name=op.f("pk_user_sessions")),
    )
    op.create_index("ix_user_sessions_created_at_uuid", "user_sessions", ["created_at", "uuid"])
    op.create_index("ix_user_sessions_updated_at_uuid", "user_sessions", ["updated_at", "uuid"])
    op.create_index("ix_user_sessions_lower_email", "user_sessions", [sa.text("lower(email)")])


def downgrade():
    op.drop_index("ix_user_sessions_lower_email", table_name="user_sessions")
    op.drop_index("ix_user_sessions_updated_at_uuid", table_name="user_sessions")
    op.drop_index("ix_user_sessions_created_at_uuid", table_name="user_sessions")
    op.drop_table("user_sessions")
