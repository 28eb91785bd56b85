"""``GET /user-sessions/{uuid}`` through the cache: a hit is one Redis GET,
no database, no schema dump; a miss reads the database and offers the body
it built to the cache.

The body is built here, on the miss, exactly as flask-smorest builds it for
``@blp.response`` (``jsonify`` of the schema's dump), so a hit and the
uncached path answer the same bytes. The cached body's shape is the
representation schema's own (``CompiledDump.shape``): a field added to the
schema changes it, and bodies of the old shape are never answered.
"""

from __future__ import annotations

import uuid

from flask import Response, current_app

from service.api.json_provider import JSONProvider
from service.cache.entries import CONTENT_TYPE, Representation, epoch_microseconds, now_us
from service.cache.representations import user_session_cache
from service.errors import UserSessionNotFound
from service.models import UserSessionRow
from service.operations import user_sessions as use_cases
from service.schemas.user_sessions import UserSessionSchema

_SCHEMA = UserSessionSchema()
SHAPE = UserSessionSchema.shape()


def render(user_session: UserSessionRow) -> Representation:
    """The 200 representation of ``user_session``, as the uncached path serialises it."""
    provider: JSONProvider = current_app.json  # type: ignore[assignment]
    # The bytes ``jsonify`` answers (outside debug mode), without a response to take them from.
    body = provider.compact_body(_SCHEMA.dump(user_session))
    expires_at = user_session.expires_at
    expires_at_us = None if expires_at is None else epoch_microseconds(expires_at)
    return Representation(user_session.version, expires_at_us, SHAPE, body)


def read_live_representation(user_session_uuid: uuid.UUID) -> Representation:
    """The live session's representation: cached, else read and offered to the cache.

    A cached entry whose ``expires_at`` has passed is a 404 without a database
    read: the session counts as deleted from that instant, cached or not.
    """
    cache = user_session_cache()
    if cache is not None:
        cached = cache.lookup(user_session_uuid, SHAPE)
        if cached is not None:
            if cached.expired(now_us()):
                raise UserSessionNotFound()
            return cached
    representation = render(use_cases.read_user_session(user_session_uuid))
    if cache is not None:
        cache.store(user_session_uuid, representation)
    return representation


def representation_response(representation: Representation) -> Response:
    return Response(representation.body, mimetype=CONTENT_TYPE, headers={"ETag": representation.etag})
