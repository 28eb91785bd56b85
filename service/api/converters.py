"""URL converters."""

from __future__ import annotations

import uuid

from werkzeug.exceptions import NotFound
from werkzeug.routing import BaseConverter


class MalformedUserSessionUUID(NotFound):
    """The path names a user session by something that is not a UUID."""


class MalformedItemId(NotFound):
    """The path names a conversation item by something that is not a UUID."""


class UserSessionUUIDConverter(BaseConverter):
    """A user session's uuid in a path; any case, hyphenated.

    A segment that is not a UUID names no session: it answers 404
    ``USER_SESSION_NOT_FOUND``, like a uuid that does not exist, instead of
    falling through to a generic "no such URL".
    """

    regex = r"[^/]+"
    malformed: type[NotFound] = MalformedUserSessionUUID

    def to_python(self, value: str) -> uuid.UUID:
        if len(value) != 36:
            raise self.malformed()
        try:
            return uuid.UUID(value)
        except ValueError:
            raise self.malformed() from None

    def to_url(self, value: uuid.UUID) -> str:
        return str(value)

    @staticmethod
    def parameter_schema(_converter: BaseConverter) -> dict[str, str]:
        """How the OpenAPI document describes this path parameter."""
        return {"type": "string", "format": "uuid"}


class ItemIdConverter(UserSessionUUIDConverter):
    """A conversation item's id in a path: a segment that is not a UUID is a
    404 ``ITEM_NOT_FOUND``, like an id that does not exist."""

    malformed = MalformedItemId
    # Not ``pop``: that segment is the route of its own (``…/items/pop``), so
    # it answers only POST, and its ``Allow`` names only POST.
    regex = r"(?!pop$)[^/]+"
