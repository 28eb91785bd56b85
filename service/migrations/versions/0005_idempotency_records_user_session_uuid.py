"""idempotency_records.user_session_uuid: the session a stored response carries.

Purge erases a session's stored idempotent responses (their bodies hold its
name, e-mail and metadata) by this column, indexed. Records already stored
get it from their path (/user-sessions/<uuid>/…) or, for a create, from the
Location header they replay.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03
"""

import uuid

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

PREFIX = "/user-sessions/"
BATCH = 1000

records = sa.table(
    "idempotency_records",
    sa.column("api_key_identity", sa.String()),
    sa.column("method", sa.String()),
    sa.column("path", sa.String()),
    sa.column("idempotency_key", sa.String()),
    sa.column("state", sa.String()),
    sa.column("response_headers", sa.JSON()),
    sa.column("user_session_uuid", sa.Uuid()),
)
KEY = ("api_key_identity", "method", "path", "idempotency_key")


def session_of(path, headers):
    """The session a stored response carries, as the service records it now."""
    for where in (path, (headers or {}).get("Location") or ""):
        if where.startswith(PREFIX):
            try:
                return uuid.UUID(where[len(PREFIX) :].split("/", 1)[0])
            except ValueError:
                pass
    return None


def upgrade():
    op.add_column("idempotency_records", sa.Column("user_session_uuid", sa.Uuid(), nullable=True))
    op.create_index("ix_idempotency_records_user_session_uuid", "idempotency_records", ["user_session_uuid"])
    bind = op.get_bind()
    rows = bind.execute(
        sa.select(*(records.c[name] for name in KEY), records.c.response_headers).where(records.c.state == "done")
    ).all()
    found = [
        {**{f"k_{name}": getattr(row, name) for name in KEY}, "found": user_session_uuid}
        for row in rows
        if (user_session_uuid := session_of(row.path, row.response_headers)) is not None
    ]
    statement = (
        records.update()
        .where(*(records.c[name] == sa.bindparam(f"k_{name}") for name in KEY))
        .values(user_session_uuid=sa.bindparam("found"))
    )
    for start in range(0, len(found), BATCH):
        bind.execute(statement, found[start : start + BATCH])


def downgrade():
    op.drop_index("ix_idempotency_records_user_session_uuid", table_name="idempotency_records")
    op.drop_column("idempotency_records", "user_session_uuid")
