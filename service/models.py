"""The models: ``UserSession``, one row per session of the agent backend, its
read model ``UserSessionRow``; ``ConversationItem``, one row per item of a
session's conversation, and its read model ``ConversationItemRow``; and
``IdempotencyRecord``, one row per ``Idempotency-Key`` a client sent."""

from __future__ import annotations

import uuid as uuid_module
from datetime import datetime
from typing import Any, NamedTuple, Self

from sqlalchemy import (
    JSON,
    BigInteger,
    ColumnElement,
    ForeignKey,
    Index,
    LargeBinary,
    String,
    Uuid,
    and_,
    false,
    func,
    or_,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from service.database import Base, UTCDateTime, utcnow

# JSONB on PostgreSQL (indexable, containment queries), JSON text elsewhere.
JSONDocument = JSON().with_variant(JSONB(), "postgresql")

NAME_MAX_LENGTH = 200
EMAIL_MAX_LENGTH = 254
IP_ADDRESS_MAX_LENGTH = 45
DEFAULT_MAX_VERIFICATION_ATTEMPTS = 3
DEFAULT_MAX_RESEND_ATTEMPTS = 3


def only_on(dialect: str, index: Index) -> Index:
    """An index that exists on one kind of database only (in ``create_all`` and,
    through ``info["dialect"]``, in Alembic's autogenerate)."""
    index.info["dialect"] = dialect
    return index.ddl_if(dialect=dialect)


def is_live(deleted_at: datetime | None, expires_at: datetime | None, now: datetime) -> bool:
    """A session neither soft-deleted nor past its ``expires_at`` (``UserSession.live_clause`` in SQL)."""
    return deleted_at is None and (expires_at is None or expires_at > now)


def entity_tag(version: int) -> str:
    """A session's strong entity tag: its version in quotes (``"7"``)."""
    return f'"{version}"'


class UserSession(Base):
    """A session of the agent backend, with its e-mail verification state.

    ``version`` is SQLAlchemy's optimistic lock: every UPDATE checks the version
    it read and bumps it, so two concurrent writers can never both win.
    The verification code is kept only as a keyed hash that no schema exposes.
    """

    __tablename__ = "user_sessions"

    uuid: Mapped[uuid_module.UUID] = mapped_column(Uuid(), primary_key=True, default=uuid_module.uuid4)
    name: Mapped[str | None] = mapped_column(String(NAME_MAX_LENGTH))
    email: Mapped[str | None] = mapped_column(String(EMAIL_MAX_LENGTH))
    ip_address: Mapped[str | None] = mapped_column(String(IP_ADDRESS_MAX_LENGTH))
    consent_user_data: Mapped[bool] = mapped_column(default=False, server_default=false())
    metadata_: Mapped[dict[str, Any]] = mapped_column("metadata", JSONDocument, default=dict, server_default="{}")
    is_email_verified: Mapped[bool] = mapped_column(default=False, server_default=false())
    verification_code_hash: Mapped[str | None] = mapped_column(String(64))
    verification_attempts: Mapped[int] = mapped_column(default=0, server_default="0")
    max_verification_attempts: Mapped[int] = mapped_column(
        default=DEFAULT_MAX_VERIFICATION_ATTEMPTS, server_default=str(DEFAULT_MAX_VERIFICATION_ATTEMPTS)
    )
    verification_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    resend_attempts: Mapped[int] = mapped_column(default=0, server_default="0")
    max_resend_attempts: Mapped[int] = mapped_column(
        default=DEFAULT_MAX_RESEND_ATTEMPTS, server_default=str(DEFAULT_MAX_RESEND_ATTEMPTS)
    )
    last_resend_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, server_default=func.now())
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    version: Mapped[int] = mapped_column(server_default="1")
    # The highest ``seq`` this session's conversation ever gave (``ConversationItem``):
    # appends take the next ones by bumping it, which also locks the row. Not
    # part of any representation, and not a change of the session: writing it
    # bumps no ``version`` and invalidates no cached copy.
    last_item_seq: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")

    __mapper_args__ = {"version_id_col": version}
    __table_args__ = (
        Index("ix_user_sessions_created_at_uuid", "created_at", "uuid"),
        Index("ix_user_sessions_updated_at_uuid", "updated_at", "uuid"),
        Index("ix_user_sessions_lower_email", func.lower(email)),
        # Serves ``metadata @> {...}``, the list filter metadata.KEY=VALUE.
        only_on(
            "postgresql",
            Index(
                "ix_user_sessions_metadata",
                metadata_,
                postgresql_using="gin",
                postgresql_ops={"metadata": "jsonb_path_ops"},
            ),
        ),
    )

    def is_live(self, now: datetime) -> bool:
        """Neither soft-deleted nor past its ``expires_at``."""
        return is_live(self.deleted_at, self.expires_at, now)

    @classmethod
    def live_clause(cls, now: datetime | ColumnElement[datetime]) -> ColumnElement[bool]:
        """SQL twin of :meth:`is_live`; ``now`` may be a bound parameter."""
        return and_(cls.deleted_at.is_(None), or_(cls.expires_at.is_(None), cls.expires_at > now))

    def __repr__(self) -> str:
        return f"<UserSession {self.uuid} v{self.version}>"


class UserSessionRow(NamedTuple):
    """A user session as every read path returns it: plain values, read-only.

    Its fields are the model's attributes, in the model's order; a prepared
    statement refuses to fill it from columns that differ (so a column added
    to ``UserSession`` and not here fails every test that reads a session).
    """

    uuid: uuid_module.UUID
    name: str | None
    email: str | None
    ip_address: str | None
    consent_user_data: bool
    metadata_: dict[str, Any]
    is_email_verified: bool
    verification_code_hash: str | None
    verification_attempts: int
    max_verification_attempts: int
    verification_expires_at: datetime | None
    resend_attempts: int
    max_resend_attempts: int
    last_resend_at: datetime | None
    created_at: datetime
    updated_at: datetime
    completed_at: datetime | None
    expires_at: datetime | None
    deleted_at: datetime | None
    version: int
    last_item_seq: int

    @classmethod
    def of(cls, user_session: UserSession) -> Self:
        """The row of a model instance (after an ORM write)."""
        return cls._make(getattr(user_session, field) for field in cls._fields)

    @property
    def etag(self) -> str:
        return entity_tag(self.version)

    def is_live(self, now: datetime) -> bool:
        """As :meth:`UserSession.is_live`."""
        return is_live(self.deleted_at, self.expires_at, now)


ITEM_TYPE_MAX_LENGTH = 64
ITEM_ROLE_MAX_LENGTH = 64
DEFAULT_ITEM_TYPE = "message"


class ConversationItem(Base):
    """One item of a session's conversation: a message, a tool call, a tool result.

    The key is ``(user_session_uuid, seq)``: every query of items names its
    session, so the table can be sharded by session (docs/operations.md). The
    primary key's index serves every page in either order, and the newest
    item. ``id`` is the item's public name, unique across the service.
    Items go with their session (``ON DELETE CASCADE``).
    """

    __tablename__ = "conversation_items"

    user_session_uuid: Mapped[uuid_module.UUID] = mapped_column(
        Uuid(), ForeignKey("user_sessions.uuid", ondelete="CASCADE"), primary_key=True
    )
    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    id: Mapped[uuid_module.UUID] = mapped_column(Uuid(), default=uuid_module.uuid4, unique=True)
    type: Mapped[str] = mapped_column(String(ITEM_TYPE_MAX_LENGTH), default=DEFAULT_ITEM_TYPE)
    role: Mapped[str | None] = mapped_column(String(ITEM_ROLE_MAX_LENGTH))
    # Any JSON value; a JSON null is stored as JSON, never as SQL NULL.
    content: Mapped[Any] = mapped_column(JSONDocument, nullable=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    def __repr__(self) -> str:
        return f"<ConversationItem {self.user_session_uuid}#{self.seq}>"


class ConversationItemRow(NamedTuple):
    """An item as every read path returns it; the model's attributes, in its order."""

    user_session_uuid: uuid_module.UUID
    seq: int
    id: uuid_module.UUID
    type: str
    role: str | None
    content: Any
    created_at: datetime


IDEMPOTENCY_KEY_MAX_LENGTH = 255
IDEMPOTENCY_PATH_MAX_LENGTH = 255
IN_FLIGHT = "in_flight"
DONE = "done"


class IdempotencyRecord(Base):
    """What one ``Idempotency-Key`` did: in flight, or done with its stored response.

    The primary key is the key's scope (API key identity, method, path, key),
    so the database itself decides which of several concurrent requests with
    one key runs: the others collide with its row. ``owner_token`` fences the
    owner: only the request that claimed the record may complete it, and one
    that lost its lease cannot. ``state`` is ``IN_FLIGHT`` or ``DONE``.
    """

    __tablename__ = "idempotency_records"

    api_key_identity: Mapped[str] = mapped_column(String(64), primary_key=True)
    method: Mapped[str] = mapped_column(String(16), primary_key=True)
    path: Mapped[str] = mapped_column(String(IDEMPOTENCY_PATH_MAX_LENGTH), primary_key=True)
    idempotency_key: Mapped[str] = mapped_column(String(IDEMPOTENCY_KEY_MAX_LENGTH), primary_key=True)
    request_fingerprint: Mapped[str] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(16))
    owner_token: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    lease_expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    response_status: Mapped[int | None] = mapped_column()
    response_headers: Mapped[dict[str, str] | None] = mapped_column(JSON)
    response_body: Mapped[bytes | None] = mapped_column(LargeBinary)
    user_session_uuid: Mapped[uuid_module.UUID | None] = mapped_column(Uuid())

    __table_args__ = (
        Index("ix_idempotency_records_created_at", "created_at"),
        Index("ix_idempotency_records_user_session_uuid", "user_session_uuid"),
    )

    def __repr__(self) -> str:
        return f"<IdempotencyRecord {self.method} {self.path} {self.state}>"
