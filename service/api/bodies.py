"""Request bodies held to ``MAX_CONTENT_LENGTH`` however they are sent.

A body with ``Content-Length`` over the limit is refused before it is read.
A chunked body has no length up front: Werkzeug then reads at most the limit
and stops there, silently, so a larger body would be cut and handled. Here it
is read up to one byte past the limit, and one that reaches it is a 413, the
same answer as with ``Content-Length``.
"""

from __future__ import annotations

from typing import IO, Any

from flask import Request
from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.utils import cached_property
from werkzeug.wsgi import LimitedStream


class BoundedRequest(Request):
    """A request whose body, chunked or not, is never longer than its limit."""

    @cached_property
    def stream(self) -> IO[bytes]:
        limit = self.max_content_length
        if limit is not None and self.content_length is None and "wsgi.input_terminated" in self.environ:
            # One byte past the limit tells a body of exactly the limit from a longer one.
            return LimitedStream(self.environ["wsgi.input"], limit + 1, is_max=True)  # type: ignore[return-value]
        return super().stream

    def get_data(self, *args: Any, **kwargs: Any) -> Any:
        data = super().get_data(*args, **kwargs)
        limit = self.max_content_length
        if limit is not None and len(data) > limit:
            raise RequestEntityTooLarge()
        return data
