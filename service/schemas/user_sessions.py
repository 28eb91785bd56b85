"""User sessions: what the API accepts (create, merge patch, list queries) and
what it answers (the representation, a page).

Each field is declared here once per role. The fast paths derive from these
declarations: the representation's compiled dump (``service.schemas.dump``)
and the list filters (``filters_on``), whose SQL, page-token scope and
parameter list follow from them.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any, ClassVar, TypeVar

from marshmallow import Schema, ValidationError, fields, post_load, pre_load, validate, validates_schema

from service.database import utcnow
from service.models import EMAIL_MAX_LENGTH, NAME_MAX_LENGTH
from service.operations.documents import METADATA_BOUNDS
from service.repositories.user_session_filters import DeletedFilter, Filter, Match, UserSessionFilters
from service.schemas.base import StrictSchema, listing_query, page_limit_field, page_token_field
from service.schemas.dump import CompiledDump
from service.schemas.fields import (
    IPAddress,
    JSONObject,
    QueryBoolean,
    QueryDateTime,
    StrictBoolean,
    UTCDateTime,
    WholeNumber,
)

TTL_MIN_SECONDS = 1
TTL_MAX_SECONDS = 400 * 24 * 3600
FieldT = TypeVar("FieldT", bound=fields.Field[Any])


class WritableFieldsSchema(StrictSchema):
    """The fields a client may write, shared by create and merge patch."""

    # Schema-level rules for the OpenAPI document (``service.api.openapi``).
    OPENAPI_EXTRA: ClassVar[dict[str, Any]] = {
        "description": "`ttl_seconds` may stand instead of `expires_at`, never beside it (422).",
        "not": {"required": ["ttl_seconds", "expires_at"]},
    }

    name = fields.String(allow_none=True, validate=validate.Length(max=NAME_MAX_LENGTH))
    email = fields.Email(allow_none=True, validate=validate.Length(max=EMAIL_MAX_LENGTH))
    ip_address = IPAddress(allow_none=True, metadata={"description": "IPv4 or IPv6 address."})
    consent_user_data = StrictBoolean()
    metadata_ = JSONObject(
        bounds=METADATA_BOUNDS,
        data_key="metadata",
        allow_none=True,
        metadata={"description": "Free JSON object for agent state, at most 16 KiB serialised."},
    )
    completed_at = UTCDateTime(allow_none=True)
    expires_at = UTCDateTime(
        allow_none=True, metadata={"description": "Past this instant the session counts as deleted."}
    )
    ttl_seconds = WholeNumber(
        validate=validate.Range(min=TTL_MIN_SECONDS, max=TTL_MAX_SECONDS),
        load_only=True,
        metadata={"description": "Sets expires_at to now + ttl_seconds; not together with expires_at."},
    )

    @validates_schema
    def _ttl_or_expiry(self, data: dict[str, Any], **_kwargs: Any) -> None:
        if "ttl_seconds" in data and "expires_at" in data:
            raise ValidationError("Send either ttl_seconds or expires_at, not both.", "ttl_seconds")

    @post_load
    def _resolve_ttl(self, data: dict[str, Any], **_kwargs: Any) -> dict[str, Any]:
        """``ttl_seconds`` stands for the ``expires_at`` of now + ttl."""
        ttl = data.pop("ttl_seconds", None)
        if ttl is not None:
            data["expires_at"] = utcnow() + timedelta(seconds=ttl)
        return data


class UserSessionCreateSchema(WritableFieldsSchema):
    """Body of ``POST /user-sessions``: every field optional; ``{}`` is an anonymous session."""

    uuid = fields.UUID(metadata={"description": "Chosen by the server unless given."})

    @validates_schema
    def _expiry_in_future(self, data: dict[str, Any], **_kwargs: Any) -> None:
        expires_at = data.get("expires_at")
        if expires_at is not None and expires_at <= utcnow():
            raise ValidationError("Must be in the future when creating a session.", "expires_at")


class UserSessionPatchSchema(WritableFieldsSchema):
    """Body of ``PATCH``: an RFC 7396 merge patch of the writable fields."""


class UserSessionSchema(CompiledDump):
    """The representation of a user session."""

    uuid = fields.UUID(required=True)
    name = fields.String(required=True, allow_none=True)
    email = fields.String(required=True, allow_none=True, metadata={"format": "email"})
    ip_address = IPAddress(required=True, allow_none=True)
    consent_user_data = fields.Boolean(required=True)
    metadata_ = fields.Dict(data_key="metadata", required=True)
    is_email_verified = fields.Boolean(required=True)
    verification_attempts = fields.Integer(required=True)
    max_verification_attempts = fields.Integer(required=True)
    verification_expires_at = UTCDateTime(required=True, allow_none=True)
    resend_attempts = fields.Integer(required=True)
    max_resend_attempts = fields.Integer(required=True)
    last_resend_at = UTCDateTime(required=True, allow_none=True)
    created_at = UTCDateTime(required=True)
    updated_at = UTCDateTime(required=True)
    completed_at = UTCDateTime(required=True, allow_none=True)
    expires_at = UTCDateTime(required=True, allow_none=True)
    deleted_at = UTCDateTime(required=True, allow_none=True)
    version = fields.Integer(required=True)


class ReadArgsSchema(StrictSchema):
    """Query of ``GET`` and ``HEAD`` on one session."""

    include_deleted = QueryBoolean(
        load_default=False, metadata={"description": "Also find soft-deleted and expired sessions."}
    )


class DeleteArgsSchema(StrictSchema):
    """Query of ``DELETE`` on one session."""

    purge = QueryBoolean(
        load_default=False, metadata={"description": "Erase the session for good (GDPR erasure), deleted or not."}
    )


LIST_SORT_ORDERS = ("-created_at", "created_at", "-updated_at", "updated_at")
METADATA_PARAMETER_PREFIX = "metadata."
# The one name under which every ``metadata.KEY`` parameter reaches its field.
METADATA_PARAMETERS = "metadata.KEY"
METADATA_FILTERS_MAX = 10


def filters_on(attribute: str, match: Match, field: FieldT) -> FieldT:
    """Declare a list parameter as a filter: the sessions whose ``attribute``
    matches its value as ``match`` says. Its SQL, its place in a page token's
    scope and its documentation all follow from this one declaration."""
    field.metadata = {**field.metadata, "filters_on": (attribute, match)}
    return field


def _time_bound(attribute: str, match: Match, description: str) -> QueryDateTime:
    field = QueryDateTime(metadata={"description": description, "type": "string", "format": "date-time"})
    return filters_on(attribute, match, field)


class MetadataFilters(fields.Field[tuple[tuple[str, str], ...]]):
    """The ``metadata.KEY=VALUE`` parameters, collected by the schema: (key, value) pairs."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> tuple[tuple[str, str], ...]:
        pairs = tuple(sorted(set(value)))
        if len(pairs) > METADATA_FILTERS_MAX:
            raise ValidationError(f"At most {METADATA_FILTERS_MAX} metadata.KEY filters may be given.")
        return pairs


class UserSessionListArgsSchema(StrictSchema):
    """Query of ``GET /user-sessions``: filters, sort and page; loads as
    ``filters`` (``UserSessionFilters``), ``sort``, ``limit``, ``count`` and
    ``page_token`` when one is given.

    Every parameter may be given once, except ``metadata.KEY``: one per key
    (a key may even repeat), all ANDed. Any other parameter is a 400.
    """

    error_messages = {"unknown": "Unknown query parameter."}

    email = filters_on(
        "email",
        Match.EQUALS_IGNORING_CASE,
        fields.String(
            validate=validate.Length(min=1, max=EMAIL_MAX_LENGTH),
            metadata={"description": "Sessions with this e-mail address, compared case-insensitively."},
        ),
    )
    is_email_verified = filters_on(
        "is_email_verified", Match.EQUALS, QueryBoolean(metadata={"description": "`true` or `false`."})
    )
    consent_user_data = filters_on(
        "consent_user_data", Match.EQUALS, QueryBoolean(metadata={"description": "`true` or `false`."})
    )
    completed = filters_on(
        "completed_at",
        Match.IS_SET,
        QueryBoolean(
            metadata={"description": "`true`: sessions with a `completed_at`; `false`: sessions without one."}
        ),
    )
    created_after = _time_bound("created_at", Match.AFTER, "`created_at` later than this (exclusive).")
    created_before = _time_bound("created_at", Match.BEFORE, "`created_at` earlier than this (exclusive).")
    updated_after = _time_bound("updated_at", Match.AFTER, "`updated_at` later than this (exclusive).")
    updated_before = _time_bound("updated_at", Match.BEFORE, "`updated_at` earlier than this (exclusive).")
    deleted = fields.String(
        load_default=DeletedFilter.EXCLUDE.value,
        validate=validate.OneOf([mode.value for mode in DeletedFilter]),
        metadata={
            "description": "`exclude` (default): live sessions only; `include`: all; `only`: soft-deleted "
            "and expired sessions only (an expired session counts as deleted)."
        },
    )
    metadata_filters = MetadataFilters(
        data_key=METADATA_PARAMETERS,
        metadata={
            "description": "Write the top-level metadata key in place of `KEY`, e.g. `metadata.channel=web`. "
            "Matches sessions whose `metadata` holds exactly this JSON string under that key; a number, "
            "boolean, null, object or array never equals it (`metadata.step=3` does not match "
            f'`{{"step": 3}}`). Repeatable with other keys (or the same key), up to {METADATA_FILTERS_MAX} '
            "in all; all are ANDed.",
            "type": "string",
        },
    )
    sort = fields.String(
        load_default="-created_at",
        validate=validate.OneOf(LIST_SORT_ORDERS),
        metadata={"description": "`-` first means newest first; ties are broken by `uuid` in the same direction."},
    )
    limit = page_limit_field()
    page_token = page_token_field(
        "`next_page_token` of the previous page; send the same filters and sort with it "
        "(`limit` and `count` may change). Empty means the first page. Tokens never expire."
    )
    count = QueryBoolean(load_default=False, metadata={"description": "`true` adds `total_count` (it costs a COUNT)."})

    @pre_load
    def _collect_query_parameters(self, data: Any, **_kwargs: Any) -> dict[str, Any]:
        """Turn the query string into one value a name: every ``metadata.KEY`` into
        the pairs of one field, a repeated parameter or an unstorable string into an error."""
        pairs: list[tuple[str, str]] = []

        def take_metadata(name: str, values: list[str], errors: dict[str, list[str]]) -> bool:
            if not name.startswith(METADATA_PARAMETER_PREFIX):
                return False
            key = name[len(METADATA_PARAMETER_PREFIX) :]
            if key:
                pairs.extend((key, value) for value in values)
            else:
                errors[name] = ["Name a top-level metadata key after 'metadata.', e.g. metadata.channel=web."]
            return True

        collected = listing_query(data, take_metadata)
        if pairs:
            collected[METADATA_PARAMETERS] = pairs
        return collected

    @post_load
    def _gather_filters(self, data: dict[str, Any], **_kwargs: Any) -> dict[str, Any]:
        """The declared filters that were given, in declaration order, as one ``UserSessionFilters``."""
        given = tuple(
            Filter(name, attribute, match, data.pop(name))
            for name, field in self.load_fields.items()
            if "filters_on" in field.metadata and name in data
            for attribute, match in (field.metadata["filters_on"],)
        )
        data["filters"] = UserSessionFilters(
            given, deleted=DeletedFilter(data.pop("deleted")), metadata=data.pop("metadata_filters", ())
        )
        return data


class UserSessionPageSchema(Schema):
    """A page of ``GET /user-sessions``."""

    items = fields.Nested(UserSessionSchema, many=True, required=True)
    next_page_token = fields.String(
        required=True, allow_none=True, metadata={"description": "The next page's token; null on the last page."}
    )
    total_count = fields.Integer(
        metadata={"description": "Sessions that match the filters, on every page; only with `count=true`."}
    )
