"""Conversation items: what an append accepts, what a listing takes, and the
representation of an item and of a page."""

from __future__ import annotations

from typing import Any

from marshmallow import Schema, ValidationError, fields, pre_load, validate, validates_schema

from service.models import DEFAULT_ITEM_TYPE, ITEM_ROLE_MAX_LENGTH, ITEM_TYPE_MAX_LENGTH
from service.operations.conversation_items import APPEND_MAX_ITEMS, CONTENT_BOUNDS
from service.schemas.base import StrictSchema, listing_query, page_limit_field, page_token_field
from service.schemas.dump import CompiledDump
from service.schemas.fields import JSONValue, UTCDateTime

ITEM_TYPE_PATTERN = rf"^[a-z0-9_.-]{{1,{ITEM_TYPE_MAX_LENGTH}}}$"
ITEM_ORDERS = ("asc", "desc")


def _item_type(**kwargs: Any) -> fields.String:
    return fields.String(
        validate=validate.Regexp(ITEM_TYPE_PATTERN, error="Must be 1-64 characters of a-z, 0-9, '_', '.' and '-'."),
        **kwargs,
    )


class ConversationItemInSchema(StrictSchema):
    """One item of an append."""

    id = fields.UUID(metadata={"description": "Chosen by the server unless given; unique across the service."})
    type = _item_type(
        load_default=DEFAULT_ITEM_TYPE,
        metadata={"description": "What kind of item this is: `message` (default), `function_call`…"},
    )
    role = fields.String(
        allow_none=True,
        load_default=None,
        validate=validate.Length(max=ITEM_ROLE_MAX_LENGTH),
        metadata={"description": "Who speaks (`user`, `assistant`…), or null."},
    )
    content = JSONValue(
        bounds=CONTENT_BOUNDS,
        required=True,
        metadata={
            "description": "Any JSON value, at most 64 KiB serialised (and nested at most 64 deep); "
            "returned equal, as JSON, to what was sent."
        },
    )


class ItemsAppendSchema(StrictSchema):
    """Body of ``POST /user-sessions/{uuid}/items``: 1 to 100 items, stored in this order, all or none."""

    items = fields.List(
        fields.Nested(ConversationItemInSchema),
        required=True,
        validate=validate.Length(min=1, max=APPEND_MAX_ITEMS),
        metadata={"description": f"1 to {APPEND_MAX_ITEMS} items, appended in this order."},
    )

    @pre_load
    def _reject_unstorable_strings(self, data: Any, **_kwargs: Any) -> Any:
        """Left to each item's schema, which names the item and its field (``items.3.content``)."""
        return data

    @validates_schema
    def _ids_once(self, data: dict[str, Any], **_kwargs: Any) -> None:
        seen: set[Any] = set()
        errors: dict[int, dict[str, list[str]]] = {}
        for index, item in enumerate(data.get("items", ())):
            if "id" in item:
                if item["id"] in seen:
                    errors[index] = {"id": ["Appears more than once in this batch."]}
                seen.add(item["id"])
        if errors:
            raise ValidationError({"items": errors})


class ConversationItemSchema(CompiledDump):
    """An item of a session's conversation, as stored."""

    id = fields.UUID(required=True)
    seq = fields.Integer(
        required=True,
        metadata={
            "description": "Position in the session's history: the first item is 1, each append continues "
            "from the highest seq the session ever gave (so gaps remain where items were removed)."
        },
    )
    type = fields.String(required=True)
    role = fields.String(required=True, allow_none=True)
    content = fields.Raw(required=True, allow_none=True, metadata={"description": "Any JSON value, as sent."})
    created_at = UTCDateTime(required=True)


class ConversationItemsSchema(Schema):
    """The items an append stored, in order."""

    items = fields.Nested(ConversationItemSchema, many=True, required=True)


class ConversationItemPageSchema(Schema):
    """A page of ``GET /user-sessions/{uuid}/items``."""

    items = fields.Nested(ConversationItemSchema, many=True, required=True)
    next_page_token = fields.String(
        required=True, allow_none=True, metadata={"description": "The next page's token; null on the last page."}
    )


class ItemListArgsSchema(StrictSchema):
    """Query of ``GET /user-sessions/{uuid}/items``; any other parameter is a 400."""

    error_messages = {"unknown": "Unknown query parameter."}

    order = fields.String(
        load_default="asc",
        validate=validate.OneOf(ITEM_ORDERS),
        metadata={"description": "`asc` (default): oldest first; `desc`: newest first."},
    )
    limit = page_limit_field()
    type = _item_type(metadata={"description": "Only items of this type (exact, case-sensitive)."})
    role = fields.String(
        validate=validate.Length(min=1, max=ITEM_ROLE_MAX_LENGTH),
        metadata={"description": "Only items of this role (exact, case-sensitive)."},
    )
    page_token = page_token_field(
        "`next_page_token` of the previous page; send the same `order`, `type` and `role` "
        "with it (`limit` may change). Empty means the first page. Tokens never expire."
    )

    @pre_load
    def _one_value_each(self, data: Any, **_kwargs: Any) -> dict[str, Any]:
        """One value a parameter: a repeated one, or an unstorable string, is an error."""
        return listing_query(data)
