"""marshmallow schemas: what the API accepts and what it answers.

The same schemas validate requests, serialise results and, through
flask-smorest and apispec, write ``openapi.yaml``.
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, ClassVar, NamedTuple

from marshmallow import INCLUDE, RAISE, Schema, ValidationError, fields, pre_load, validate, validates_schema
from sqlalchemy import Row

from service.database import utcnow
from service.fields import (
    IPAddress,
    JSONObject,
    QueryBoolean,
    QueryDateTime,
    QueryInteger,
    StrictBoolean,
    UTCDateTime,
    WholeNumber,
    format_datetime,
)
from service.fields import unstorable_string as has_unstorable_string
from service.models import EMAIL_MAX_LENGTH, NAME_MAX_LENGTH

METADATA_MAX_BYTES = 16 * 1024
METADATA_MAX_DEPTH = 32
TTL_MIN_SECONDS = 1
TTL_MAX_SECONDS = 400 * 24 * 3600

UNSTORABLE_STRING = "Must not contain NUL characters or unpaired surrogates."


class StrictSchema(Schema):
    """Rejects unknown fields (422 naming each) and strings the database cannot store."""

    class Meta:
        unknown = RAISE

    @pre_load
    def _reject_unstorable_strings(self, data: Any, **_kwargs: Any) -> Any:
        if isinstance(data, dict):
            errors = {str(key): [UNSTORABLE_STRING] for key, value in data.items() if has_unstorable_string(value)}
            if errors:
                raise ValidationError(errors)
        return data


def metadata_field(**kwargs: Any) -> JSONObject:
    return JSONObject(
        max_bytes=METADATA_MAX_BYTES,
        max_depth=METADATA_MAX_DEPTH,
        metadata={"description": "Free JSON object for agent state, at most 16 KiB serialised."},
        **kwargs,
    )


class WritableFieldsSchema(StrictSchema):
    """The fields a client may write, shared by create and merge patch."""

    # Schema-level rules for the OpenAPI document (``service.openapi``). The
    # exclusion stays prose: ``not: {required: [...]}`` says it exactly, but
    # breaks schemathesis' coverage phase.
    OPENAPI_EXTRA: ClassVar[dict[str, Any]] = {
        "description": "`ttl_seconds` may stand instead of `expires_at`, never beside it (422).",
    }

    name = fields.String(allow_none=True, validate=validate.Length(max=NAME_MAX_LENGTH))
    email = fields.Email(allow_none=True, validate=validate.Length(max=EMAIL_MAX_LENGTH))
    ip_address = IPAddress(allow_none=True, metadata={"description": "IPv4 or IPv6 address."})
    consent_user_data = StrictBoolean()
    metadata_ = metadata_field(data_key="metadata", allow_none=True)
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


def resolve_ttl(data: dict[str, Any]) -> dict[str, Any]:
    """Replace ``ttl_seconds`` by the ``expires_at`` it stands for."""
    ttl = data.pop("ttl_seconds", None)
    if ttl is not None:
        data["expires_at"] = utcnow() + timedelta(seconds=ttl)
    return data


class UserSessionSchema(Schema):
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

    def dump(self, obj: Any, *, many: bool | None = None) -> Any:
        """Serialise through a table compiled once from this schema's fields.

        marshmallow's generic dump costs tens of microseconds a session, most
        of a 500-item page; the table does the same work directly, on model
        instances and on the plain rows a listing reads (by position there).
        A test holds the two to the same output.
        """
        if self.only or self.exclude:
            return super().dump(obj, many=many)
        items = obj if (self.many if many is None else many) else [obj]
        layouts: dict[type, _RowLayout] = {}  # named tuples of one class share their fields
        dumped = [self._represent(item, layouts) for item in items]
        return dumped if items is obj else dumped[0]

    def _represent(self, item: Any, layouts: dict[type, _RowLayout]) -> dict[str, Any]:
        layout = layouts.get(type(item))
        if layout is None:
            if not isinstance(item, Row | tuple):
                table = _representation_table(type(self))
                return {key: convert(getattr(item, attribute)) for key, attribute, convert in table}
            row: Any = item
            layout = _row_layout(type(self), row._fields)
            if not isinstance(item, Row):  # SQLAlchemy's rows share one class, whatever their fields
                layouts[type(item)] = layout
        values = list(layout.pick(item))
        for position, convert in layout.conversions:
            value = values[position]
            if value is not None:
                values[position] = convert(value)
        return dict(zip(layout.keys, values, strict=True))


_Converter = Callable[[Any], Any]


def _same(value: Any) -> Any:
    return value


def _text_or_none(value: Any) -> str | None:
    return None if value is None else str(value)


def _datetime_or_none(value: datetime | None) -> str | None:
    return None if value is None else format_datetime(value)


@functools.cache
def _representation_table(schema_class: type[Schema]) -> tuple[tuple[str, str, _Converter], ...]:
    """``(key, attribute, converter)`` for each field: what ``dump`` does per field, decided once."""
    table = []
    for name, field in schema_class().dump_fields.items():
        if isinstance(field, UTCDateTime):
            convert: _Converter = _datetime_or_none
        elif isinstance(field, fields.UUID):
            convert = _text_or_none
        elif isinstance(field, fields.String | fields.Boolean | fields.Integer | fields.Dict | IPAddress):
            convert = _same
        else:
            raise TypeError(f"no fast conversion for {type(field).__name__} ({name})")
        table.append((field.data_key or name, field.attribute or name, convert))
    return tuple(table)


class _RowLayout(NamedTuple):
    keys: tuple[str, ...]
    # The row's values in the order of ``keys``.
    pick: Callable[[Any], tuple[Any, ...]]
    # (position in ``keys``, converter) of the fields whose values change on
    # the way out (datetimes, uuids).
    conversions: tuple[tuple[int, _Converter], ...]


@functools.cache
def _row_layout(schema_class: type[Schema], row_fields: tuple[str, ...]) -> _RowLayout:
    """The representation table for rows of ``row_fields``: each attribute by its position."""
    table = _representation_table(schema_class)
    position = {name: index for index, name in enumerate(row_fields)}
    return _RowLayout(
        keys=tuple(key for key, _attribute, _convert in table),
        pick=operator.itemgetter(*(position[attribute] for _key, attribute, _convert in table)),
        conversions=tuple(
            (index, convert) for index, (_key, _attribute, convert) in enumerate(table) if convert is not _same
        ),
    )


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


LIST_LIMIT_DEFAULT = 50
LIST_LIMIT_MAX = 500
LIST_SORT_ORDERS = ("-created_at", "created_at", "-updated_at", "updated_at")
LIST_DELETED_MODES = ("exclude", "include", "only")
METADATA_PARAMETER_PREFIX = "metadata."
# The one name under which every ``metadata.KEY`` parameter reaches its field.
METADATA_PARAMETERS = "metadata.KEY"
PAGE_TOKEN_MAX_LENGTH = 2048


class MetadataFilters(fields.Field[tuple[tuple[str, str], ...]]):
    """The ``metadata.KEY=VALUE`` parameters, collected by the schema: (key, value) pairs."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> tuple[tuple[str, str], ...]:
        return tuple(sorted(set(value)))


def _time_bound(description: str) -> QueryDateTime:
    return QueryDateTime(metadata={"description": description, "type": "string", "format": "date-time"})


class UserSessionListArgsSchema(StrictSchema):
    """Query of ``GET /user-sessions``: filters, sort and page.

    Every parameter may be given once, except ``metadata.KEY``: one per key
    (a key may even repeat), all ANDed. Any other parameter is a 400.
    """

    error_messages = {"unknown": "Unknown query parameter."}

    email = fields.String(
        validate=validate.Length(min=1, max=EMAIL_MAX_LENGTH),
        metadata={"description": "Sessions with this e-mail address, compared case-insensitively."},
    )
    is_email_verified = QueryBoolean(metadata={"description": "`true` or `false`."})
    consent_user_data = QueryBoolean(metadata={"description": "`true` or `false`."})
    completed = QueryBoolean(
        metadata={"description": "`true`: sessions with a `completed_at`; `false`: sessions without one."}
    )
    created_after = _time_bound("`created_at` later than this (exclusive).")
    created_before = _time_bound("`created_at` earlier than this (exclusive).")
    updated_after = _time_bound("`updated_at` later than this (exclusive).")
    updated_before = _time_bound("`updated_at` earlier than this (exclusive).")
    deleted = fields.String(
        load_default="exclude",
        validate=validate.OneOf(LIST_DELETED_MODES),
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
            '`{"step": 3}`). Repeatable with other keys (or the same key); all are ANDed.',
            "type": "string",
        },
    )
    sort = fields.String(
        load_default="-created_at",
        validate=validate.OneOf(LIST_SORT_ORDERS),
        metadata={"description": "`-` first means newest first; ties are broken by `uuid` in the same direction."},
    )
    limit = QueryInteger(
        load_default=LIST_LIMIT_DEFAULT,
        validate=validate.Range(min=1, max=LIST_LIMIT_MAX),
        metadata={"description": "Items a page, 1 to 500 (default 50)."},
    )
    page_token = fields.String(
        validate=validate.Length(max=PAGE_TOKEN_MAX_LENGTH),
        metadata={
            "description": "`next_page_token` of the previous page; send the same filters and sort with it "
            "(`limit` and `count` may change). Empty means the first page. Tokens never expire."
        },
    )
    count = QueryBoolean(load_default=False, metadata={"description": "`true` adds `total_count` (it costs a COUNT)."})

    @pre_load
    def _collect_query_parameters(self, data: Any, **_kwargs: Any) -> dict[str, Any]:
        """Turn the query string into one value a name: every ``metadata.KEY`` into
        the pairs of one field, a repeated parameter or an unstorable string into an error."""
        multidict = getattr(data, "data", data)
        collected: dict[str, Any] = {}
        pairs: list[tuple[str, str]] = []
        errors: dict[str, list[str]] = {}
        for name in multidict:
            values = multidict.getlist(name) if hasattr(multidict, "getlist") else [multidict[name]]
            if has_unstorable_string([name, *values]):
                errors[name] = [UNSTORABLE_STRING]
            elif name.startswith(METADATA_PARAMETER_PREFIX):
                key = name[len(METADATA_PARAMETER_PREFIX) :]
                if key:
                    pairs.extend((key, value) for value in values)
                else:
                    errors[name] = ["Name a top-level metadata key after 'metadata.', e.g. metadata.channel=web."]
            elif len(values) > 1:
                errors[name] = ["Give this parameter once."]
            else:
                collected[name] = values[0]
        if errors:
            raise ValidationError(errors)
        if pairs:
            collected[METADATA_PARAMETERS] = pairs
        if collected.get("page_token") == "":
            del collected["page_token"]
        return collected


class UserSessionPageSchema(Schema):
    """A page of ``GET /user-sessions``."""

    items = fields.Nested(UserSessionSchema, many=True, required=True)
    next_page_token = fields.String(
        required=True, allow_none=True, metadata={"description": "The next page's token; null on the last page."}
    )
    total_count = fields.Integer(
        metadata={"description": "Sessions that match the filters, on every page; only with `count=true`."}
    )


class NoArgsSchema(StrictSchema):
    """An operation that takes no query parameters."""


class ProblemSchema(Schema):
    """RFC 9457 problem details; problems of some operations add members of their own."""

    class Meta:
        unknown = INCLUDE

    type = fields.String(required=True, metadata={"format": "uri"})
    title = fields.String(required=True)
    status = fields.Integer(required=True)
    detail = fields.String(required=True)
    code = fields.String(required=True, metadata={"description": "Stable UPPER_SNAKE_CASE error code."})
    correlation_id = fields.String(required=True, allow_none=True)
    errors = fields.Dict(
        keys=fields.String(),
        values=fields.List(fields.String()),
        metadata={"description": "Field or parameter name, as sent, to its messages."},
    )


VERIFICATION_CODE_FORMAT = "Must be a string of exactly six ASCII digits."


class VerificationIssueSchema(StrictSchema):
    """Body of ``POST …/email-verification``: nothing (or ``{}``); the code goes to the session's email."""


class VerificationCodeIssuedSchema(Schema):
    """The new code: the only place it ever appears."""

    code = fields.String(
        required=True, metadata={"description": "Six digits; leading zeros count.", "example": "042917"}
    )
    expires_at = UTCDateTime(required=True)
    resend_attempts_remaining = fields.Integer(required=True)


class VerificationCheckSchema(StrictSchema):
    """Body of ``POST …/email-verification/check``."""

    code = fields.String(
        required=True,
        validate=validate.Regexp(r"[0-9]{6}\Z", error=VERIFICATION_CODE_FORMAT),
        error_messages={"invalid": VERIFICATION_CODE_FORMAT},
        metadata={"pattern": "^[0-9]{6}$", "example": "042917"},
    )


class VerificationResultSchema(Schema):
    """A right code: the session's email is verified."""

    verified = fields.Boolean(required=True)


class VerificationCodeIncorrectSchema(ProblemSchema):
    """The check's 422: a wrong code (``VERIFICATION_CODE_INCORRECT``) also says
    how many attempts are left; a malformed body is a plain validation problem."""

    verified = fields.Boolean(metadata={"description": "`false`, with VERIFICATION_CODE_INCORRECT."})
    attempts_remaining = fields.Integer(metadata={"description": "With VERIFICATION_CODE_INCORRECT."})


class HealthSchema(Schema):
    """Body of ``GET /healthz``."""

    status = fields.String(required=True, validate=validate.OneOf(["ok"]))


class ReadinessSchema(Schema):
    """Body of ``GET /readyz``: the service's state, its database's and its optional cache's."""

    status = fields.String(required=True, validate=validate.OneOf(["ok", "unavailable"]))
    database = fields.String(required=True, validate=validate.OneOf(["ok", "unavailable"]))
    cache = fields.String(
        required=True,
        validate=validate.OneOf(["ok", "unavailable", "disabled"]),
        metadata={"description": "Redis; `disabled` without REDIS_URL. Never makes the status fail."},
    )
