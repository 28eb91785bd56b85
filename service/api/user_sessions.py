"""``/user-sessions``: create, read, merge-patch, delete, purge and restore."""

from __future__ import annotations

import uuid
from typing import Any

from flask import Response
from flask.views import MethodView

from service.api.conditional import if_match_precondition, not_modified
from service.api.idempotency import idempotent
from service.api.listing import listing_scope, next_page_link
from service.api.page_tokens import make_page_token, read_page_token
from service.api.parser import Blueprint
from service.api.read_through import read_live_representation, representation_response
from service.operations import user_sessions as use_cases
from service.repositories import SortOrder
from service.schemas.base import NoArgsSchema
from service.schemas.user_sessions import (
    DeleteArgsSchema,
    ReadArgsSchema,
    UserSessionCreateSchema,
    UserSessionListArgsSchema,
    UserSessionPageSchema,
    UserSessionPatchSchema,
    UserSessionSchema,
)

blp = Blueprint(
    "user_sessions",
    __name__,
    url_prefix="/user-sessions",
    description="Sessions of the Maria agent backend.",
)

# Responses that carry session data may be stored only by the client, and
# must be revalidated; they differ by credentials.
SESSION_DATA_HEADERS = {"Cache-Control": "private, no-cache", "Vary": "Authorization, X-API-Key"}


@blp.after_request
def _session_data_headers(response: Response) -> Response:
    for header, value in SESSION_DATA_HEADERS.items():
        response.headers.setdefault(header, value)
    return response


def _location(user_session_uuid: uuid.UUID) -> str:
    return f"/user-sessions/{user_session_uuid}"


LIST_DESCRIPTION = """Filter, sort and page through user sessions.

Paging is keyset (cursor), not OFFSET: a page costs the same however deep it
is, and no session that existed when the listing began is skipped or listed
twice; one created meanwhile shows up only if it sorts after the cursor (at
the end of an oldest-first listing). Every page but the last holds exactly
`limit` items and carries a `next_page_token` and a
`Link: </user-sessions?...&page_token=...>; rel="next"` header (a relative
reference); the last has `next_page_token: null` and no `Link`.

A token is signed and bound to the filters and sort of the listing it came
from: send it with the same parameters (`limit` and `count` may change), else
it is a 400; an empty `page_token` asks for the first page. Tokens never
expire by time.

`metadata.KEY=VALUE` parameters are dynamic: any parameter whose name starts
with `metadata.` filters on the top-level metadata key after the dot, which
may itself hold dots (`metadata.a.b` is the key `a.b`). Every other parameter
may be given once; an unknown one is a 400 naming it.

Datetimes are RFC 3339 with an offset (`Z` or `+02:00`); encode `+` as `%2B`.
A bare `+`, which arrives as a space, is read as `+` all the same.
"""


@blp.route("")
class UserSessions(MethodView):
    @blp.doc(operationId="listUserSessions")
    @blp.documents_head("headUserSessions")
    @blp.arguments(UserSessionListArgsSchema, location="query", error_status_code=400)
    @blp.response(200, UserSessionPageSchema, description="A page of user sessions.", headers={"Link": "Link"})
    @blp.doc(description=LIST_DESCRIPTION)
    def get(self, args: dict[str, Any]) -> Any:
        """List user sessions."""
        filters = args["filters"]
        sort = SortOrder.parse(args["sort"])
        scope = listing_scope(filters, sort)
        after = read_page_token(args["page_token"], scope) if "page_token" in args else None
        page = use_cases.list_user_sessions(
            filters, sort=sort, limit=args["limit"], after=after, with_count=args["count"]
        )
        body: dict[str, Any] = {"items": page.items, "next_page_token": None}
        headers: dict[str, str] = {}
        if page.next_keyset is not None:
            body["next_page_token"] = make_page_token(page.next_keyset, scope)
            headers["Link"] = next_page_link(body["next_page_token"])
        if page.total_count is not None:
            body["total_count"] = page.total_count
        return body, 200, headers

    @blp.doc(operationId="createUserSession")
    @blp.arguments(NoArgsSchema, location="query", error_status_code=400)
    @blp.arguments(UserSessionCreateSchema, required=False)
    @idempotent
    @blp.response(201, UserSessionSchema, headers={"Location": "Location", "ETag": "ETag"})
    @blp.alt_response(409, description="A session with this uuid exists already, deleted or not.")
    def post(self, _query: dict[str, Any], fields: dict[str, Any]) -> Any:
        """Create a user session."""
        user_session = use_cases.create_user_session(fields)
        return user_session, 201, {"Location": _location(user_session.uuid), "ETag": user_session.etag}


@blp.route("/<user_session_uuid:user_session_uuid>")
class UserSessionItem(MethodView):
    @blp.doc(operationId="getUserSession")
    @blp.documents_head("headUserSession")
    @blp.request_headers("If-None-Match")
    @blp.arguments(ReadArgsSchema, location="query", error_status_code=400)
    @blp.response(200, UserSessionSchema, headers={"ETag": "ETag"})
    @blp.alt_response(304, description="`If-None-Match` names the current `ETag`; no body.", headers={"ETag": "ETag"})
    def get(self, args: dict[str, Any], user_session_uuid: uuid.UUID) -> Any:
        """Read a user session."""
        if args["include_deleted"]:
            # Deleted and expired sessions are never cached: read them from the database.
            user_session = use_cases.read_user_session(user_session_uuid, include_deleted=True)
            if not_modified(user_session.etag):
                return Response(status=304, headers={"ETag": user_session.etag})
            return user_session, 200, {"ETag": user_session.etag}
        representation = read_live_representation(user_session_uuid)
        if not_modified(representation.etag):
            return Response(status=304, headers={"ETag": representation.etag})
        return representation_response(representation)

    @blp.doc(operationId="updateUserSession")
    @blp.request_headers("If-Match")
    @blp.arguments(NoArgsSchema, location="query", error_status_code=400)
    @blp.arguments(UserSessionPatchSchema, content_type="application/merge-patch+json")
    @blp.response(200, UserSessionSchema, headers={"ETag": "ETag"})
    @blp.alt_response(409, description="The session kept changing under this request; retry it.")
    def patch(self, _query: dict[str, Any], patch: dict[str, Any], user_session_uuid: uuid.UUID) -> Any:
        """Change a user session with a JSON merge patch (RFC 7396)."""
        user_session = use_cases.patch_user_session(user_session_uuid, patch, precondition=if_match_precondition())
        return user_session, 200, {"ETag": user_session.etag}

    @blp.doc(operationId="deleteUserSession")
    @blp.request_headers("If-Match")
    @blp.arguments(DeleteArgsSchema, location="query", error_status_code=400)
    @blp.response(204)
    @blp.alt_response(409, description="The session kept changing under this request; retry it.")
    def delete(self, args: dict[str, Any], user_session_uuid: uuid.UUID) -> None:
        """Soft-delete a user session, or erase it for good with ``purge=true``."""
        erase = use_cases.purge_user_session if args["purge"] else use_cases.delete_user_session
        erase(user_session_uuid, precondition=if_match_precondition())


@blp.route("/<user_session_uuid:user_session_uuid>/restore")
class UserSessionRestore(MethodView):
    @blp.doc(operationId="restoreUserSession")
    @blp.request_headers("If-Match")
    @blp.arguments(NoArgsSchema, location="query", error_status_code=400)
    @idempotent
    @blp.response(200, UserSessionSchema, headers={"ETag": "ETag"})
    @blp.alt_response(409, description="The session is live: there is nothing to restore.")
    def post(self, _query: dict[str, Any], user_session_uuid: uuid.UUID) -> Any:
        """Undo a soft delete or an expiry."""
        user_session = use_cases.restore_user_session(user_session_uuid, precondition=if_match_precondition())
        return user_session, 200, {"ETag": user_session.etag}
