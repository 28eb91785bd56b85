"""What a page token of a session listing is bound to: its filters and its sort."""

from __future__ import annotations

from typing import Any

from service.repositories import SortOrder, UserSessionFilters

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
