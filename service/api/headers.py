"""Headers the service reads once (``Idempotency-Key``, ``If-Match``,
``If-None-Match``): sent twice, they are a 400, never two values read as one.

WSGI gives the app one string per header name, the values of a repeated
header joined by commas, and a list-valued header such as ``If-Match`` reads
the same either way. So the service's worker (``service.serving.worker``)
names the headers a request repeated in its environ under
:data:`REPEATED_HEADERS`; under another server, only the values are checked.
"""

from __future__ import annotations

from flask import request

from service.errors import InvalidHeader

# Environ key: the upper-case names of the headers the request sent more than once.
REPEATED_HEADERS = "user_sessions.repeated_headers"


def refuse_if_repeated(name: str) -> None:
    """A 400 naming ``name`` when the request sent it more than once."""
    if name.upper() in request.environ.get(REPEATED_HEADERS, ()):
        raise InvalidHeader(errors={name: ["Must be sent once."]})
