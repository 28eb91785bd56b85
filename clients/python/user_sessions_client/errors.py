"""What the client raises: every failure answered by the service carries its problem body."""

from __future__ import annotations

from typing import Any


class UserSessionsError(Exception):
    """Base of every error the client raises.

    ``idempotency_key`` is the key a POST was sent with (None for other
    requests): sending the same call again with ``idempotency_key=`` set to it
    cannot act twice, however the first attempt ended.
    """

    idempotency_key: str | None = None


class TransportError(UserSessionsError):
    """The service could not be reached, or stopped answering, and no retry was left or allowed.

    ``sent`` says whether the request may have reached the service (False
    only when the connection could not even be made).
    """

    def __init__(self, message: str, *, sent: bool, idempotency_key: str | None = None) -> None:
        super().__init__(message)
        self.sent = sent
        self.idempotency_key = idempotency_key


class ClientError(UserSessionsError):
    """The service answered with an RFC 9457 problem (any status ≥ 400).

    ``problem`` is the parsed body; ``code``, ``detail``, ``errors`` and
    ``correlation_id`` are its members, for logs and for reporting a failure.
    ``retry_after`` is the answer's ``Retry-After`` in seconds (None without one).
    ``after_retry`` is True when this answer came to a retry and an earlier
    attempt may have reached the service and acted (its answer was lost, or a
    gateway's 502 or 504 came back): a 404 to a DELETE may then mean that the
    earlier attempt did the deleting.
    """

    def __init__(
        self,
        status: int,
        problem: dict[str, Any],
        *,
        retry_after: float | None = None,
        idempotency_key: str | None = None,
        after_retry: bool = False,
    ) -> None:
        self.status = status
        self.problem = problem
        self.code: str | None = problem.get("code")
        self.detail: str | None = problem.get("detail")
        self.errors: dict[str, list[str]] = problem.get("errors") or {}
        self.correlation_id: str | None = problem.get("correlation_id")
        self.retry_after = retry_after
        self.idempotency_key = idempotency_key
        self.after_retry = after_retry
        super().__init__(f"{status} {self.code}: {self.detail} (correlation id {self.correlation_id})")


class InvalidRequest(ClientError):
    """400, 413, 415 or 422: the request itself is wrong; ``errors`` names the fields."""


class IncorrectVerificationCode(InvalidRequest):
    """422 ``VERIFICATION_CODE_INCORRECT``: the code checked was wrong.

    ``verified`` (False) and ``attempts_remaining`` are the check's outcome,
    as the problem body carries them.
    """

    def __init__(self, status: int, problem: dict[str, Any], **kwargs: Any) -> None:
        super().__init__(status, problem, **kwargs)
        self.verified: bool = bool(problem.get("verified", False))
        self.attempts_remaining: int | None = problem.get("attempts_remaining")


class Unauthorized(ClientError):
    """401: no valid API key."""


class Forbidden(ClientError):
    """403: the API key may only read."""


class NotFound(ClientError):
    """404: no live session has this uuid (``code`` ``USER_SESSION_NOT_FOUND``), or no such item."""


class ItemNotFound(NotFound):
    """404 ``ITEM_NOT_FOUND``: the session is live but has no item with this id (or, to a pop,
    no item at all)."""


class Conflict(ClientError):
    """409: the uuid exists already, the session is live (restore), no code was issued (check)…"""


class IdempotencyKeyInUse(Conflict):
    """409 ``IDEMPOTENCY_KEY_IN_USE``: a request with this key is still in flight, after the client
    waited for it as long as it would (``in_flight_wait``).

    The key frees itself once that request finishes, or once its lease runs
    out if it died: call again later with ``idempotency_key=error.idempotency_key``.
    """


class Gone(ClientError):
    """410: the verification code has expired (``VERIFICATION_CODE_EXPIRED``); issue a new one."""


class PreconditionFailed(ClientError):
    """412: the session is no longer the version the request expected."""


class RateLimited(ClientError):
    """429, not retried: ``retry_after`` seconds from now it may succeed.

    ``retry_after`` is None when waiting will not help (verification
    attempts or resends used up). A ``Retry-After`` longer than the client's
    ``max_retry_after`` is raised at once rather than slept through, and so
    is any 429 to a request the client never sends twice (issuing a code).
    """


class ServiceUnavailable(ClientError):
    """503 (or another 5xx) after every retry; ``retry_after`` when the service said when to come back."""


_BY_STATUS: dict[int, type[ClientError]] = {
    400: InvalidRequest,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    410: Gone,
    412: PreconditionFailed,
    413: InvalidRequest,
    415: InvalidRequest,
    422: InvalidRequest,
    429: RateLimited,
}

_BY_CODE: dict[str, type[ClientError]] = {
    "IDEMPOTENCY_KEY_IN_USE": IdempotencyKeyInUse,
    "ITEM_NOT_FOUND": ItemNotFound,
    "VERIFICATION_CODE_INCORRECT": IncorrectVerificationCode,
}


def error_for(
    status: int,
    problem: dict[str, Any],
    *,
    retry_after: float | None = None,
    idempotency_key: str | None = None,
    after_retry: bool = False,
) -> ClientError:
    """The exception for a problem answered with ``status``."""
    if status >= 500:
        cls: type[ClientError] = ServiceUnavailable
    else:
        cls = _BY_STATUS.get(status, ClientError)
        by_code = _BY_CODE.get(str(problem.get("code")))
        if by_code is not None and issubclass(by_code, cls):
            cls = by_code
    return cls(status, problem, retry_after=retry_after, idempotency_key=idempotency_key, after_retry=after_retry)
