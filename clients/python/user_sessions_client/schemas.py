"""What the service sends and takes, as ``TypedDict``\\ s.

Each mirrors a schema of the service's ``openapi.yaml`` (same name): the same
keys, the required ones required, the nullable ones ``| None``. A test of the
service's repository compares them with the spec, so they cannot drift apart.

Values are as they travel in JSON: datetimes arrive as RFC 3339 strings. What
the client *sends* (``UserSessionCreate``, ``UserSessionPatch``,
``ListFilters``) also takes ``datetime`` and ``UUID`` objects, which it
writes as the service expects (an aware datetime, in UTC).
"""

# No ``from __future__ import annotations``: TypedDict reads NotRequired[...] at class creation
# (Python 3.11), so the annotations must be real objects for __required_keys__ to be right.
from collections.abc import Mapping
from datetime import datetime
from typing import Any, Literal, NotRequired, TypedDict
from uuid import UUID


class UserSession(TypedDict):
    """One session, as every read and write answers it (schema ``UserSession``)."""

    uuid: str
    name: str | None
    email: str | None
    ip_address: str | None
    consent_user_data: bool
    metadata: dict[str, Any]
    is_email_verified: bool
    verification_attempts: int
    max_verification_attempts: int
    verification_expires_at: str | None
    resend_attempts: int
    max_resend_attempts: int
    last_resend_at: str | None
    created_at: str
    updated_at: str
    completed_at: str | None
    expires_at: str | None
    deleted_at: str | None
    version: int


class UserSessionPage(TypedDict):
    """One page of the list (schema ``UserSessionPage``); ``total_count`` only when asked for."""

    items: list[UserSession]
    next_page_token: str | None
    total_count: NotRequired[int]


class UserSessionCreate(TypedDict, total=False):
    """The fields a create may send, all optional (schema ``UserSessionCreate``)."""

    uuid: str | UUID
    name: str | None
    email: str | None
    ip_address: str | None
    consent_user_data: bool
    metadata: Mapping[str, Any] | None
    completed_at: str | datetime | None
    expires_at: str | datetime | None
    ttl_seconds: int


class UserSessionPatch(TypedDict, total=False):
    """The fields a merge patch may send (schema ``UserSessionPatch``); ``None`` clears one."""

    name: str | None
    email: str | None
    ip_address: str | None
    consent_user_data: bool
    metadata: Mapping[str, Any] | None
    completed_at: str | datetime | None
    expires_at: str | datetime | None
    ttl_seconds: int


class VerificationCodeIssued(TypedDict):
    """A new code (schema ``VerificationCodeIssued``): the only place it ever appears."""

    code: str
    expires_at: str
    resend_attempts_remaining: int


class VerificationResult(TypedDict):
    """A right code (schema ``VerificationResult``)."""

    verified: bool


class ConversationItem(TypedDict):
    """One item of a session's conversation history, as stored (schema ``ConversationItem``).

    ``content`` is whatever JSON value was appended, returned equal to it;
    ``seq`` is its position in the session's history (the first item is 1).
    """

    id: str
    seq: int
    type: str
    role: str | None
    content: Any
    created_at: str


class ConversationItemIn(TypedDict):
    """An item to append (schema ``ConversationItemIn``, an item of ``ItemsAppend``): only ``content`` is needed.

    ``type`` defaults to ``"message"`` (1 to 64 chars of ``[a-z0-9_.-]``); ``id``
    to a uuid the service picks (one that exists already is a :class:`Conflict`).
    """

    id: NotRequired[str | UUID]
    type: NotRequired[str]
    role: NotRequired[str | None]
    content: Any


class ConversationItemPage(TypedDict):
    """One page of a session's history (schema ``ConversationItemPage``)."""

    items: list[ConversationItem]
    next_page_token: str | None


class Problem(TypedDict):
    """An RFC 9457 problem as the service writes it (schema ``Problem``).

    A proxy in front may answer with something else; the client then makes
    a problem of its own with only ``status`` and ``detail``.
    """

    type: str
    title: str
    status: int
    detail: str
    code: str
    correlation_id: str | None
    errors: NotRequired[dict[str, list[str]]]


class VerificationCodeIncorrect(Problem):
    """The wrong-code 422 (schema ``VerificationCodeIncorrect``): a problem with the check's outcome."""

    verified: NotRequired[bool]
    attempts_remaining: NotRequired[int]


class ListFilters(TypedDict, total=False):
    """The list's filters and order (``GET /user-sessions``'s query parameters but the paging ones).

    ``metadata={"team": "x"}`` is sent as ``metadata.team=x``.
    """

    email: str
    is_email_verified: bool
    consent_user_data: bool
    completed: bool
    created_after: str | datetime
    created_before: str | datetime
    updated_after: str | datetime
    updated_before: str | datetime
    deleted: Literal["exclude", "include", "only"]
    metadata: Mapping[str, str]
    sort: Literal["created_at", "-created_at", "updated_at", "-updated_at"]
