"""Whether the bytes a connection has sent so far hold a whole HTTP/1.x request.

The buffering worker (``service.serving.worker``) runs a request only once it
has arrived whole; this reads only the framing for it (where the head ends,
``Content-Length``, chunked transfer coding) and leaves the rest to
gunicorn's parser.
"""

from __future__ import annotations

# The head as a whole (request line and headers) may take at most this: 431 past it.
HEAD_LIMIT = 64 * 1024
# A body is held in memory until it is whole up to this size, twice the service's own 64 KiB limit
# (so a chunked body the service would take arrives whole however it is chunked). A larger one is
# handed on with what has come, and the app's 413 ends it: its thread never waits on the client.
BODY_BUFFER_LIMIT = 128 * 1024
# What request_state() says of the bytes received so far.
WAIT = "wait"  # more to come
WAIT_FOR_CONTINUE = "wait for 100-continue"  # a whole head that asks for "100 Continue" before its body
WHOLE = "whole"  # a whole request, or enough for gunicorn to refuse it at once
CUT_SHORT = "cut short"  # a body too large to hold: hand on what came, then end the read side
HEAD_TOO_LARGE = "head too large"  # no end of the head within HEAD_LIMIT bytes


def request_state(
    data: bytes | bytearray,
    line_limit: int,
    head_limit: int = HEAD_LIMIT,
    body_limit: int = BODY_BUFFER_LIMIT,
) -> str:
    """Whether ``data``, the bytes of a connection so far, hold a whole HTTP/1.x request.

    Only framing is read here (where the head ends, Content-Length, chunked
    transfer coding); a message that breaks the framing is "whole": gunicorn's
    parser sees it at once and answers 400, 414 or 431 as usual.
    """
    start = 2 if data[:2] == b"\r\n" else 0  # one empty line before a request is allowed (RFC 9112 2.2)
    line_end = data.find(b"\r\n", start)
    if line_limit > 0 and (line_end if line_end >= 0 else len(data) - 2) - start > line_limit:
        return WHOLE  # gunicorn answers 414
    head_end = data.find(b"\r\n\r\n", start)
    if head_end < 0:
        if data.count(b"\n") != data.count(b"\r\n"):
            return WHOLE  # a bare LF: gunicorn answers 400
        return HEAD_TOO_LARGE if len(data) > head_limit else WAIT
    if head_end + 4 > head_limit:
        return HEAD_TOO_LARGE
    length = None
    chunked = expects_continue = False
    for line in bytes(data[line_end + 2 : head_end]).split(b"\r\n"):
        name, colon, value = line.partition(b":")
        if not colon:
            return WHOLE  # gunicorn answers 400
        name, value = name.lower(), value.strip()
        if name == b"content-length":
            if length is not None or not value.isdigit():
                return WHOLE  # gunicorn answers 400
            length = int(value)
        elif name == b"transfer-encoding":
            if value.lower() != b"chunked":
                return WHOLE  # gunicorn decides (400 or 501)
            chunked = True
        elif name == b"expect" and value.lower() == b"100-continue":
            expects_continue = data[start:line_end].endswith(b"HTTP/1.1")
    body_start = head_end + 4
    if chunked:
        if length is not None:
            return WHOLE  # both: gunicorn answers 400
        state = _chunked_body_state(data, body_start)
    elif length is None or len(data) - body_start >= length:
        return WHOLE
    elif length > body_limit:
        return CUT_SHORT
    else:
        state = WAIT
    if state == WAIT and len(data) - body_start > body_limit:
        return CUT_SHORT
    if state == WAIT and expects_continue and len(data) == body_start:
        return WAIT_FOR_CONTINUE
    return state


def _chunked_body_state(data: bytes | bytearray, position: int) -> str:
    """WHOLE once the last chunk and the trailer section have come, else WAIT."""
    while True:
        line_end = data.find(b"\r\n", position)
        if line_end < 0:
            return WAIT
        try:
            size = int(bytes(data[position:line_end]).split(b";", 1)[0].strip(), 16)
        except ValueError:
            return WHOLE  # gunicorn answers 400
        if size < 0:
            return WHOLE
        if size == 0:
            return WHOLE if data.find(b"\r\n\r\n", line_end) >= 0 else WAIT
        position = line_end + 2 + size + 2
        if position > len(data):
            return WAIT
