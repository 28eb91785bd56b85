"""``UserSessionsClient``: one keep-alive ``requests.Session``, timeouts, retries only where they are safe."""

from __future__ import annotations

import enum
import json
import math
import random
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from types import TracebackType
from typing import Any, Literal, TypeAlias, Unpack, cast

import requests
from requests.adapters import HTTPAdapter
from urllib3.exceptions import ConnectTimeoutError, MaxRetryError, NewConnectionError

from user_sessions_client.errors import ClientError, IdempotencyKeyInUse, ItemNotFound, TransportError, error_for
from user_sessions_client.schemas import (
    ConversationItem,
    ConversationItemIn,
    ConversationItemPage,
    ListFilters,
    UserSession,
    UserSessionCreate,
    UserSessionPage,
    UserSessionPatch,
    VerificationCodeIssued,
    VerificationResult,
)

MERGE_PATCH = "application/merge-patch+json"
RETRYABLE_STATUSES = frozenset({429, 502, 503, 504})

#: A session as every method takes it: its uuid, or a representation read earlier.
SessionRef: TypeAlias = Mapping[str, Any] | str | uuid.UUID
#: A conversation item as every method takes it: its id, or the item as read.
ItemRef: TypeAlias = Mapping[str, Any] | str | uuid.UUID
#: The order of a session's history: ``asc`` oldest first, ``desc`` newest first.
ItemOrder: TypeAlias = Literal["asc", "desc"]
#: Most items one append may carry (the service refuses more: :class:`InvalidRequest`).
MAX_ITEMS_PER_APPEND = 100


class _Default(enum.Enum):
    FROM_SESSION = "the version of the session passed"


FROM_SESSION: Literal[_Default.FROM_SESSION] = _Default.FROM_SESSION


class UserSessionsClient:
    """The user-sessions API as Python calls.

    **Sessions.** Every method that acts on a session takes its uuid (``str``
    or ``UUID``) or a representation read earlier (a :class:`UserSession`).
    Only :meth:`update` reads anything from a representation but its uuid: it
    sends ``If-Match`` with the representation's ``version``, because a merge
    patch is a change *to what was read*. :meth:`delete` and :meth:`restore`
    are conditional only when asked, with ``expected_version=``.

    **Retries**, with exponential backoff and jitter (``backoff`` doubling up
    to ``max_backoff``), at most ``retries`` times:

    - A request that could not connect (refused, unreachable, connect
      timeout) never left, so it is always sent again.
    - A request that may have reached the service (its answer was lost, the
      read timed out, or a 502, 503, 504 or 429 came back) is sent again only
      when doing it twice is harmless: GET, HEAD, PATCH, DELETE, and POSTs the
      service protects with ``Idempotency-Key`` (create, restore, checking a
      code), which carry the same key on every attempt so the service replays
      its first answer instead of acting twice. Issuing a verification code
      has no such protection and is **never** sent again once it may have
      arrived: a 429 (the resend cooldown), 502, 503, 504, read timeout or
      lost answer is raised.
    - A 429 is retried only with a ``Retry-After`` of at most
      ``max_retry_after`` seconds, waited in full; a longer one (or none) is
      raised as :class:`RateLimited` with ``retry_after``. Likewise a 503 with
      a ``Retry-After`` over that bound.
    - A 409 ``IDEMPOTENCY_KEY_IN_USE`` (the same key is still in flight: an
      earlier attempt is running, or died and holds the key until its lease
      runs out) is retried with the same key, with backoff, for up to
      ``in_flight_wait`` seconds in all; then :class:`IdempotencyKeyInUse`.

    Every POST method takes ``idempotency_key=`` (a fresh one by default);
    every error carries the key it was sent with, so a caller may try again
    later without acting twice. Failures raise :class:`ClientError`
    subclasses carrying the problem body, or :class:`TransportError`.
    """

    def __init__(
        self,
        base_url: str,
        *,
        api_key: str | None = None,
        timeout: float | tuple[float, float] = (3.05, 10.0),
        retries: int = 3,
        backoff: float = 0.2,
        max_backoff: float = 5.0,
        max_retry_after: float = 5.0,
        in_flight_wait: float = 15.0,
        pool_size: int = 10,
        session: requests.Session | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.max_retry_after = max_retry_after
        self.in_flight_wait = in_flight_wait
        self._sleep = sleep
        self.session = session or requests.Session()
        adapter = HTTPAdapter(pool_connections=pool_size, pool_maxsize=pool_size, max_retries=0)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)
        self.session.headers.update({"Accept": "application/json", "User-Agent": "user-sessions-client/1.1"})
        if api_key:
            self.session.headers["Authorization"] = f"Bearer {api_key}"

    # Sessions

    def create(self, *, idempotency_key: str | None = None, **fields: Unpack[UserSessionCreate]) -> UserSession:
        """Create a session from writable fields (``uuid``, ``name``, ``email``, ``ttl_seconds``…).

        :class:`Conflict` when the uuid exists already; :class:`InvalidRequest` on a bad field.
        """
        return cast(
            UserSession,
            self._json("POST", "/user-sessions", json_body=_jsonable(fields), idempotency_key=_key(idempotency_key)),
        )

    def get(self, user_session: SessionRef, *, include_deleted: bool = False) -> UserSession:
        """Read a session; :class:`NotFound` when it is missing, or deleted or expired
        (unless ``include_deleted``)."""
        params = {"include_deleted": "true"} if include_deleted else None
        return cast(UserSession, self._json("GET", _item(user_session), params=params))

    def exists(self, user_session: SessionRef, *, include_deleted: bool = False) -> bool:
        """``HEAD``: whether a live (or, with ``include_deleted``, any) session has this uuid."""
        params = {"include_deleted": "true"} if include_deleted else None
        try:
            self._request("HEAD", _item(user_session), params=params)
        except ClientError as error:
            if error.status == 404:
                return False
            raise
        return True

    def update(
        self,
        user_session: SessionRef,
        changes: Mapping[str, Any] | None = None,
        *,
        expected_version: int | Literal[_Default.FROM_SESSION] | None = FROM_SESSION,
        **fields: Unpack[UserSessionPatch],
    ) -> UserSession:
        """Merge-patch a session with ``changes`` and ``fields``; return it as it is now.

        Given a representation read earlier, the patch applies only if the
        session is still that version (``If-Match`` from its ``version``), else
        :class:`PreconditionFailed`. Given a uuid, it applies to whatever
        version is current. ``expected_version=`` overrides both: a version
        number, or None for no condition.

        A conditional patch whose answer was lost is sent again; if the first
        attempt had applied, that retry is a :class:`PreconditionFailed`.
        """
        if expected_version is FROM_SESSION:
            expected_version = _version_of(user_session)
        patch = {**(changes or {}), **fields}
        return cast(
            UserSession,
            self._json(
                "PATCH",
                _item(user_session),
                json_body=_jsonable(patch),
                content_type=MERGE_PATCH,
                headers=_if_match(expected_version),
            ),
        )

    def delete(
        self,
        user_session: SessionRef,
        *,
        expected_version: int | None = None,
        purge: bool = False,
    ) -> None:
        """Soft-delete a session (with ``purge``, erase it for good, deleted or not).

        Unconditional, whether given a uuid or a representation, unless
        ``expected_version`` is given: then only that version is deleted, else
        :class:`PreconditionFailed` (e.g. ``delete(s, expected_version=s["version"])``).
        :class:`NotFound` when there is no live session (or, with ``purge``, none at all).
        """
        params = {"purge": "true"} if purge else None
        self._request("DELETE", _item(user_session), params=params, headers=_if_match(expected_version))

    def restore(
        self,
        user_session: SessionRef,
        *,
        expected_version: int | None = None,
        idempotency_key: str | None = None,
    ) -> UserSession:
        """Undo a soft delete or an expiry; :class:`Conflict` when the session is live.

        Conditional on ``expected_version`` when it is given, as :meth:`delete`.
        """
        return cast(
            UserSession,
            self._json(
                "POST",
                _item(user_session) + "/restore",
                headers=_if_match(expected_version),
                idempotency_key=_key(idempotency_key),
            ),
        )

    def list_page(
        self,
        *,
        limit: int | None = None,
        page_token: str | None = None,
        count: bool = False,
        **filters: Unpack[ListFilters],
    ) -> UserSessionPage:
        """One page of the sessions matching ``filters``, in ``sort`` order.

        ``limit`` is 1 to 500 (the service's default is 50). ``count=True`` adds
        ``total_count`` (it costs the service a COUNT). For the next page pass
        the page's ``next_page_token`` with the same filters and sort (the
        service refuses a token used with others: :class:`InvalidRequest`).
        ``metadata={"team": "x"}`` filters on ``metadata.team=x``.
        """
        params = _query(filters)
        if limit is not None:
            params["limit"] = str(limit)
        if page_token is not None:
            params["page_token"] = page_token
        if count:
            params["count"] = "true"
        return cast(UserSessionPage, self._json("GET", "/user-sessions", params=params))

    def iter_sessions(self, *, page_size: int | None = None, **filters: Unpack[ListFilters]) -> Iterator[UserSession]:
        """Every session matching ``filters``, page after page (see :meth:`list_page`)."""
        page_token = None
        while True:
            page = self.list_page(limit=page_size, page_token=page_token, **filters)
            yield from page["items"]
            page_token = page["next_page_token"]
            if not page_token:
                return

    # Email verification

    def issue_email_verification(self, user_session: SessionRef) -> VerificationCodeIssued:
        """Issue a new code: ``{"code", "expires_at", "resend_attempts_remaining"}``.

        The service does not protect this POST with ``Idempotency-Key``, so it
        is sent again only when it provably never left (the connection could
        not be made). Within the resend cooldown: :class:`RateLimited` with
        ``retry_after``; resends used up: :class:`RateLimited` without;
        no e-mail on the session: :class:`Conflict`. A :class:`TransportError`
        with ``sent`` true means a code may have been issued.
        """
        path = _item(user_session) + "/email-verification"
        return cast(VerificationCodeIssued, self._json("POST", path, resend=False))

    def check_email_verification(
        self, user_session: SessionRef, code: str, *, idempotency_key: str | None = None
    ) -> VerificationResult:
        """Check a code: ``{"verified": true}``.

        A wrong code raises :class:`IncorrectVerificationCode` (``verified``,
        ``attempts_remaining``); an expired one :class:`Gone`; attempts used
        up :class:`RateLimited` (``retry_after`` None: only a new code helps);
        no code issued :class:`Conflict`.
        """
        path = _item(user_session) + "/email-verification/check"
        return cast(
            VerificationResult,
            self._json("POST", path, json_body={"code": code}, idempotency_key=_key(idempotency_key)),
        )

    # Conversation items: the session's history

    def append_items(
        self,
        user_session: SessionRef,
        items: Iterable[ConversationItemIn],
        *,
        idempotency_key: str | None = None,
    ) -> list[ConversationItem]:
        """Append ``items`` (1 to 100, each at least its ``content``) to the session's history,
        in the order given, all or none; return them as stored (``id``, ``seq``…).

        Sent with an ``Idempotency-Key`` (the same on every attempt), so a retry
        after a lost answer stores nothing twice. :class:`NotFound` when the
        session is not live; :class:`InvalidRequest` for a bad item (``errors``
        names it as ``items.<index>.<field>``), an empty batch or over 100;
        :class:`Conflict` when an ``id`` given exists already.
        """
        body = {"items": [_jsonable(item) for item in items]}
        path = _item(user_session) + "/items"
        stored = self._json("POST", path, json_body=body, idempotency_key=_key(idempotency_key))
        return cast(list[ConversationItem], stored["items"])

    def list_items_page(
        self,
        user_session: SessionRef,
        *,
        order: ItemOrder = "asc",
        type: str | None = None,
        role: str | None = None,
        limit: int | None = None,
        page_token: str | None = None,
    ) -> ConversationItemPage:
        """One page of the session's history: oldest first (``order="asc"``) or newest first.

        ``type`` and ``role`` keep only the items with exactly that value.
        ``limit`` is 1 to 500 (the service's default is 50):
        ``list_items_page(s, order="desc", limit=n)`` is the newest ``n``, newest
        first. For the next page pass ``next_page_token`` with the same order and
        filters (with others the service refuses it: :class:`InvalidRequest`).
        """
        params: dict[str, str] = {"order": order}
        if type is not None:
            params["type"] = type
        if role is not None:
            params["role"] = role
        if limit is not None:
            params["limit"] = str(limit)
        if page_token is not None:
            params["page_token"] = page_token
        return cast(ConversationItemPage, self._json("GET", _item(user_session) + "/items", params=params))

    def iter_items(
        self,
        user_session: SessionRef,
        *,
        order: ItemOrder = "asc",
        type: str | None = None,
        role: str | None = None,
        page_size: int = 100,
    ) -> Iterator[ConversationItem]:
        """The session's history, item after item, page after page (see :meth:`list_items_page`).

        Keyset paging: items appended while it pages come after the ones it has
        seen (``asc``) and are never repeated or skipped.
        """
        page_token = None
        while True:
            page = self.list_items_page(
                user_session, order=order, type=type, role=role, limit=page_size, page_token=page_token
            )
            yield from page["items"]
            page_token = page["next_page_token"]
            if not page_token:
                return

    def get_item(self, user_session: SessionRef, item: ItemRef) -> ConversationItem:
        """One item of the session's history.

        :class:`ItemNotFound` (a :class:`NotFound`, ``code`` ``ITEM_NOT_FOUND``)
        when the session has no such item; :class:`NotFound` with ``code``
        ``USER_SESSION_NOT_FOUND`` when the session itself is not live.
        """
        return cast(ConversationItem, self._json("GET", _item_path(user_session, item)))

    def delete_item(self, user_session: SessionRef, item: ItemRef) -> None:
        """Remove one item from the session's history.

        :class:`ItemNotFound` when there is no such item, unless an earlier
        attempt of this very call may have removed it (its answer was lost):
        then the item is gone, as asked, and it returns.
        """
        try:
            self._request("DELETE", _item_path(user_session, item))
        except ItemNotFound as error:
            if not error.after_retry:
                raise

    def pop_item(self, user_session: SessionRef, *, idempotency_key: str | None = None) -> ConversationItem | None:
        """Remove the newest item of the session's history and return it; None when the history is empty.

        Sent with an ``Idempotency-Key``, so a retry after a lost answer
        returns the item the first attempt removed and removes no other.
        :class:`NotFound` when the session is not live (an empty history is
        not an error: the service's 404 ``ITEM_NOT_FOUND`` is None here).
        """
        try:
            popped = self._json("POST", _item(user_session) + "/items/pop", idempotency_key=_key(idempotency_key))
        except ItemNotFound:
            return None
        return cast(ConversationItem, popped)

    def clear_items(self, user_session: SessionRef) -> None:
        """Remove every item of the session's history; the session stays as it is.

        :class:`NotFound` when the session is not live.
        """
        self._request("DELETE", _item(user_session) + "/items")

    # Plumbing

    def close(self) -> None:
        self.session.close()

    def __enter__(self) -> UserSessionsClient:
        return self

    def __exit__(
        self, _type: type[BaseException] | None, _value: BaseException | None, _traceback: TracebackType | None
    ) -> None:
        self.close()

    def _json(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        body: dict[str, Any] = self._request(method, path, **kwargs).json()
        return body

    def _request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        json_body: Any = None,
        content_type: str = "application/json",
        headers: Mapping[str, str] | None = None,
        idempotency_key: str | None = None,
        resend: bool = True,
    ) -> requests.Response:
        """Send one request, retrying what is safe to retry; raise on any status ≥ 400.

        ``resend`` False: the request may not be sent again once it may have
        reached the service (a POST the service does not make idempotent).
        """
        all_headers = dict(headers or {})
        data = None
        if json_body is not None:
            data = encode_json(json_body)
            all_headers["Content-Type"] = content_type
        if idempotency_key is not None:
            # The same key on every attempt: a retry is replayed, never done twice.
            all_headers["Idempotency-Key"] = idempotency_key
        reached = False  # whether an earlier attempt may have reached the service and acted
        attempt = 0  # retries of failures, bounded by ``retries``
        in_flight_attempt = 0  # retries of a key in flight, bounded by ``in_flight_wait``
        waited_in_flight = 0.0
        while True:
            try:
                response = self.session.request(
                    method, self.base_url + path, params=params, data=data, headers=all_headers, timeout=self.timeout
                )
            except (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError) as error:
                sent = not _never_sent(error)
                if attempt >= self.retries or (sent and not resend):
                    raise TransportError(
                        f"{method} {path}: {error}", sent=sent or reached, idempotency_key=idempotency_key
                    ) from error
                reached = reached or sent
                self._sleep(self._backoff(attempt))
                attempt += 1
                continue
            if response.status_code < 400:
                return response
            retry_after = _retry_after_seconds(response.headers.get("Retry-After"))
            failure = error_for(
                response.status_code,
                _problem(response),
                retry_after=retry_after,
                idempotency_key=idempotency_key,
                after_retry=reached,
            )
            if not resend:
                raise failure  # it reached the service: whatever the answer, never again
            if isinstance(failure, IdempotencyKeyInUse) and idempotency_key is not None:
                delay = max(retry_after or 0.0, self._backoff(in_flight_attempt))
                if waited_in_flight + delay > self.in_flight_wait:
                    raise failure
                self._sleep(delay)
                waited_in_flight += delay
                in_flight_attempt += 1
                continue
            retry_delay = self._retry_delay(response.status_code, retry_after, attempt)
            if retry_delay is None:
                raise failure
            # A gateway's 502 or 504 may come after the service acted; a 429 or the service's 503 did nothing.
            reached = reached or response.status_code in {502, 504}
            self._sleep(retry_delay)
            attempt += 1

    def _backoff(self, attempt: int) -> float:
        return float(min(self.max_backoff, self.backoff * 2**attempt) * random.uniform(0.5, 1.0))

    def _retry_delay(self, status: int, retry_after: float | None, attempt: int) -> float | None:
        """How long to wait before retrying an answer of ``status``; None to raise it instead:
        not retryable, no retries left, a 429 without ``Retry-After`` (only something else
        helps), or a ``Retry-After`` longer than ``max_retry_after``."""
        if status not in RETRYABLE_STATUSES or attempt >= self.retries:
            return None
        if retry_after is None:
            return None if status == 429 else self._backoff(attempt)
        if retry_after > self.max_retry_after:
            return None
        return max(retry_after, self._backoff(attempt))


def encode_json(value: Any) -> bytes:
    """A request body as the client sends it: compact JSON (non-ASCII escaped, so a string the
    service cannot store reaches it as such, and is refused by name)."""
    return json.dumps(value, separators=(",", ":")).encode()


def _never_sent(error: requests.RequestException) -> bool:
    """Whether the request certainly never left: the connection could not be made
    (refused, unreachable, no such host, connect timeout)."""
    if isinstance(error, requests.ConnectTimeout):
        return True
    reason = error.args[0] if error.args else None
    if isinstance(reason, MaxRetryError):
        reason = reason.reason
    # NewConnectionError (and NameResolutionError, its subclass) is a ConnectTimeoutError in urllib3 2.
    return isinstance(reason, NewConnectionError | ConnectTimeoutError)


def _retry_after_seconds(value: str | None) -> float | None:
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, math.ceil((moment - datetime.now(UTC)).total_seconds()))


def _problem(response: requests.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        return body
    return {"status": response.status_code, "detail": response.text[:500] or response.reason}


def _key(idempotency_key: str | None) -> str:
    return idempotency_key if idempotency_key is not None else uuid.uuid4().hex


def _uuid_of(user_session: SessionRef) -> str:
    if isinstance(user_session, Mapping):
        if "uuid" not in user_session:
            raise ValueError("a session given as a mapping needs its 'uuid'")
        return str(user_session["uuid"])
    if isinstance(user_session, uuid.UUID):
        return str(user_session)
    if isinstance(user_session, str):
        return user_session
    raise TypeError(f"a session is its uuid or its representation, not {type(user_session).__name__}")


def _version_of(user_session: SessionRef) -> int | None:
    if isinstance(user_session, Mapping) and user_session.get("version") is not None:
        return int(user_session["version"])
    return None


def _item(user_session: SessionRef) -> str:
    return f"/user-sessions/{_uuid_of(user_session)}"


def _item_path(user_session: SessionRef, item: ItemRef) -> str:
    if isinstance(item, Mapping):
        if "id" not in item:
            raise ValueError("an item given as a mapping needs its 'id'")
        item_id = str(item["id"])
    elif isinstance(item, uuid.UUID | str):
        item_id = str(item)
    else:
        raise TypeError(f"an item is its id or its representation, not {type(item).__name__}")
    return f"{_item(user_session)}/items/{item_id}"


def _if_match(expected_version: int | None) -> dict[str, str] | None:
    return None if expected_version is None else {"If-Match": f'"{int(expected_version)}"'}


def _jsonable(value: Any) -> Any:
    """Datetimes as RFC 3339 in UTC, UUIDs as strings; everything else as is."""
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError("datetimes sent to the service need a time zone")
        return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, Mapping):
        return {key: _jsonable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(item) for item in value]
    return value


def _query(filters: Mapping[str, Any]) -> dict[str, str]:
    params: dict[str, str] = {}
    for name, value in filters.items():
        if value is None:
            continue
        if name == "metadata" and isinstance(value, Mapping):
            params.update({f"metadata.{key}": str(item) for key, item in value.items()})
        elif isinstance(value, bool):
            params[name] = "true" if value else "false"
        else:
            jsonable = _jsonable(value)
            params[name] = jsonable if isinstance(jsonable, str) else str(jsonable)
    return params
