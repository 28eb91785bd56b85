"""What a page token of a listing is bound to (a session listing's filters and
sort; an items listing's session, order and filters), and the ``Link`` to
the next page."""

from __future__ import annotations

import uuid
from typing import Any
from urllib.parse import quote_from_bytes, unquote_plus

from flask import request

from service.api.page_tokens import PAGE_TOKEN_PARAMETER
from service.repositories import ItemFilters, SortOrder, UserSessionFilters

# The filters of the first release, which every token's scope named, as null
# when absent. They keep that place, so that tokens issued then stay valid; a
# filter added since is in the scope only when it is given.
_FIRST_RELEASE_FILTERS = (
    "email",
    "is_email_verified",
    "consent_user_data",
    "completed",
    "created_after",
    "created_before",
    "updated_after",
    "updated_before",
)


def listing_scope(filters: UserSessionFilters, sort: SortOrder) -> dict[str, Any]:
    """Every filter and the sort, not limit or count: a token is good only for
    the listing it came from."""
    scoped: dict[str, Any] = dict.fromkeys(_FIRST_RELEASE_FILTERS)
    scoped.update((each.name, each.value) for each in filters.filters)
    scoped["deleted"] = filters.deleted
    scoped["metadata"] = filters.metadata
    return {"filters": scoped, "sort": str(sort)}


def items_listing_scope(user_session_uuid: uuid.UUID, filters: ItemFilters, *, descending: bool) -> dict[str, Any]:
    """The session, the order and the filters of an items listing, not its limit:
    a token is good only for the listing it came from."""
    return {
        "items_of": str(user_session_uuid),
        "order": "desc" if descending else "asc",
        "type": filters.type,
        "role": filters.role,
    }


# What stays as it is in a query string copied into a Link (RFC 3986's
# unreserved and sub-delimiter characters, and escapes already made).
_QUERY_SAFE = "!$'()*+,;=:@/?%-._~"


def next_page_link(token: str) -> str:
    """``Link`` to the next page: this request's own query as the client wrote
    it (its order, its escapes), with the new token in place of any old one.

    Copied, not parsed and encoded again: the query is never decoded for it.
    """
    parameters = [
        quote_from_bytes(parameter, safe=_QUERY_SAFE)
        for parameter in request.query_string.split(b"&")
        if parameter and unquote_plus(parameter.partition(b"=")[0].decode("latin-1")) != PAGE_TOKEN_PARAMETER
    ]
    parameters.append(f"{PAGE_TOKEN_PARAMETER}={token}")
    return f'<{request.script_root}{request.path}?{"&".join(parameters)}>; rel="next"'
