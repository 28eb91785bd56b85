"""``/user-sessions/{uuid}/items``: a session's conversation (append, list,
read one, delete one, pop the newest, clear)."""

from __future__ import annotations

import uuid
from typing import Any

from flask import Response
from flask.views import MethodView

from service.api.idempotency import idempotent
from service.api.listing import items_listing_scope, next_page_link
from service.api.page_tokens import make_page_token, read_page_token
from service.api.parser import Blueprint, body_limit
from service.api.user_sessions import SESSION_DATA_HEADERS
from service.operations import conversation_items as use_cases
from service.repositories import ItemFilters
from service.schemas.base import NoArgsSchema
from service.schemas.conversation_items import (
    ConversationItemPageSchema,
    ConversationItemSchema,
    ConversationItemsSchema,
    ItemListArgsSchema,
    ItemsAppendSchema,
)

APPEND_BODY_MAX_BYTES = 1024 * 1024

blp = Blueprint(
    "conversation_items",
    __name__,
    url_prefix="/user-sessions",
    description="The conversation of a user session: the ordered items an agent keeps (messages, tool calls, "
    "tool results). Items live and die with their session and never change it (no new version or ETag).",
)


@blp.after_request
def _session_data_headers(response: Response) -> Response:
    for header, value in SESSION_DATA_HEADERS.items():
        response.headers.setdefault(header, value)
    return response


LIST_DESCRIPTION = """Page through the session's items in `seq` order.

`order=desc&limit=N` is the newest N items, newest first. Paging is keyset on
`seq`: a page costs the same however long the history is. Every page but the
last holds exactly `limit` items and carries a `next_page_token` (and a
`Link: <...&page_token=...>; rel="next"` header); the last has
`next_page_token: null`. A token is signed and bound to the session, `order`,
`type` and `role`: send it with the same parameters (`limit` may change),
else it is a 400. Any other parameter is a 400.
"""


@blp.route("/<user_session_uuid:user_session_uuid>/items")
class ConversationItems(MethodView):
    @blp.doc(operationId="listConversationItems", description=LIST_DESCRIPTION)
    @blp.documents_head("headConversationItems")
    @blp.arguments(ItemListArgsSchema, location="query", error_status_code=400)
    @blp.response(200, ConversationItemPageSchema, description="A page of items.", headers={"Link": "Link"})
    def get(self, args: dict[str, Any], user_session_uuid: uuid.UUID) -> Any:
        """List a session's conversation items."""
        filters = ItemFilters(type=args.get("type"), role=args.get("role"))
        descending = args["order"] == "desc"
        scope = items_listing_scope(user_session_uuid, filters, descending=descending)
        after = read_page_token(args["page_token"], scope) if "page_token" in args else None
        page = use_cases.list_items(user_session_uuid, filters, descending=descending, limit=args["limit"], after=after)
        body: dict[str, Any] = {"items": page.items, "next_page_token": None}
        headers: dict[str, str] = {}
        if page.next_keyset is not None:
            body["next_page_token"] = make_page_token(page.next_keyset, scope)
            headers["Link"] = next_page_link(body["next_page_token"])
        return body, 200, headers

    @blp.doc(operationId="appendConversationItems")
    @body_limit(APPEND_BODY_MAX_BYTES)
    @blp.arguments(NoArgsSchema, location="query", error_status_code=400)
    @blp.arguments(ItemsAppendSchema)
    @idempotent
    @blp.response(201, ConversationItemsSchema, description="The items as stored, in the order sent.")
    @blp.alt_response(409, description="An item with one of these ids exists already (ITEM_ALREADY_EXISTS).")
    @blp.alt_response(413, description="The body is larger than 1 MiB.")
    def post(self, _query: dict[str, Any], body: dict[str, Any], user_session_uuid: uuid.UUID) -> Any:
        """Append items to a session's conversation.

        The items are stored in the order sent, all or none, with consecutive
        `seq` values that no concurrent append interleaves with.
        """
        return {"items": use_cases.append_items(user_session_uuid, body["items"])}, 201

    @blp.doc(operationId="clearConversationItems")
    @blp.arguments(NoArgsSchema, location="query", error_status_code=400)
    @blp.response(204)
    def delete(self, _query: dict[str, Any], user_session_uuid: uuid.UUID) -> None:
        """Clear a session's conversation; the session stays.

        The next append continues from the highest `seq` the session ever gave.
        """
        use_cases.clear_items(user_session_uuid)


@blp.route("/<user_session_uuid:user_session_uuid>/items/pop")
class ConversationItemPop(MethodView):
    @blp.doc(operationId="popConversationItem")
    @blp.arguments(NoArgsSchema, location="query", error_status_code=400)
    @idempotent
    @blp.response(200, ConversationItemSchema, description="The item removed: the newest one.")
    @blp.alt_response(
        404,
        description="No live session has this uuid (USER_SESSION_NOT_FOUND), or it holds no items (ITEM_NOT_FOUND).",
    )
    def post(self, _query: dict[str, Any], user_session_uuid: uuid.UUID) -> Any:
        """Remove the newest item of a session's conversation and return it.

        Racing pops never return the same item. A retry with the same
        `Idempotency-Key` replays the item it removed.
        """
        return use_cases.pop_item(user_session_uuid)


@blp.route("/<user_session_uuid:user_session_uuid>/items/<item_id:item_id>")
class ConversationItem(MethodView):
    @blp.doc(operationId="getConversationItem")
    @blp.documents_head("headConversationItem")
    @blp.arguments(NoArgsSchema, location="query", error_status_code=400)
    @blp.response(200, ConversationItemSchema)
    @blp.alt_response(
        404,
        description="No live session has this uuid (USER_SESSION_NOT_FOUND), or it holds no item with this id "
        "(ITEM_NOT_FOUND).",
    )
    def get(self, _query: dict[str, Any], user_session_uuid: uuid.UUID, item_id: uuid.UUID) -> Any:
        """Read one item of a session's conversation."""
        return use_cases.read_item(user_session_uuid, item_id)

    @blp.doc(operationId="deleteConversationItem")
    @blp.arguments(NoArgsSchema, location="query", error_status_code=400)
    @blp.response(204)
    @blp.alt_response(
        404,
        description="No live session has this uuid (USER_SESSION_NOT_FOUND), or it holds no item with this id "
        "(ITEM_NOT_FOUND).",
    )
    def delete(self, _query: dict[str, Any], user_session_uuid: uuid.UUID, item_id: uuid.UUID) -> None:
        """Remove one item of a session's conversation."""
        use_cases.delete_item(user_session_uuid, item_id)
