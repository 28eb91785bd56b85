"""Conditional requests (RFC 9110 §13): ``If-Match`` and ``If-None-Match``.

A session's entity tag is its version in quotes, so a client can send
``If-Match`` with the version of a listed item without reading it first.
"""

from __future__ import annotations

from flask import request

from service.api.headers import refuse_if_repeated
from service.operations.user_sessions import VersionPrecondition


def if_match_precondition() -> VersionPrecondition | None:
    """The precondition ``If-Match`` sets, or None when the header is absent.

    Comparison is strong: a weak tag never matches, nor does a tag that is
    not a version; ``*`` matches whatever session the request finds.
    """
    if "HTTP_IF_MATCH" not in request.environ:  # the header, without an exception when absent
        return None
    refuse_if_repeated("If-Match")
    etags = request.if_match
    if etags.star_tag:
        return VersionPrecondition(any_version=True)
    versions = frozenset(
        int(tag)
        for tag in etags.as_set(include_weak=False)
        if tag and tag.isascii() and tag.isdigit() and len(tag) < 10
    )
    return VersionPrecondition(versions=versions)


def not_modified(etag: str) -> bool:
    """Whether ``If-None-Match`` already names this representation (weak comparison)."""
    if "HTTP_IF_NONE_MATCH" not in request.environ:
        return False
    refuse_if_repeated("If-None-Match")
    return request.if_none_match.contains_weak(etag.strip('"'))
