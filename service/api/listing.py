"""From the list query's parsed arguments to the repository's filters and a token scope."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from service.repositories import DeletedFilter, SortOrder, UserSessionFilters

_FILTER_ARGUMENTS = (
    "email",
    "is_email_verified",
    "consent_user_data",
    "completed",
    "created_after",
    "created_before",
    "updated_after",
    "updated_before",
)


def listing_filters(args: Mapping[str, Any]) -> UserSessionFilters:
    """The filters the client asked for; absent parameters filter nothing."""
    return UserSessionFilters(
        **{name: args[name] for name in _FILTER_ARGUMENTS if name in args},
        deleted=DeletedFilter(args["deleted"]),
        metadata=args.get("metadata_filters", ()),
    )


_FILTER_FIELDS = tuple(field.name for field in dataclasses.fields(UserSessionFilters))


def listing_scope(filters: UserSessionFilters, sort: SortOrder) -> dict[str, Any]:
    """What a page token is bound to: every filter and the sort, not limit or count.

    Every filter value is plain (text, a boolean, a datetime, pairs of text), so
    a shallow copy digests as ``dataclasses.asdict`` would, at a fraction of
    its cost: tokens issued by earlier releases stay valid.
    """
    return {"filters": {name: getattr(filters, name) for name in _FILTER_FIELDS}, "sort": str(sort)}
