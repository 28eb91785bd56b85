"""``UserSessionsClient``: one keep-alive ``requests.Session``, timeouts, safe retries."""

from __future__ import annotations

import json
import math
import random
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from types import TracebackType
from typing import Any

import requests
from requests.adapters import HTTPAdapter

from user_sessions_client.errors import ClientError, TransportError, error_for

JSONObject = dict[str, Any]
MERGE_PATCH = "application/merge-patch+json"
RETRYABLE_STATUSES = frozenset({429, 502, 503, 504})


class UserSessionsClient:
    """The user-sessions API as Python calls.

    Retries, with exponential backoff and jitter, requests that failed to
    connect or were answered 429, 502, 503 or 504 (waiting at least
    ``Retry-After``). A request whose answer was lost after it was sent is
    retried only when it is safe: GET, HEAD, PATCH and DELETE, and POSTs, which
    carry an ``Idempotency-Key`` the retry repeats so the service replays the
    first answer instead of acting twice. Issuing a verification code is never
    retried once sent. Failures raise :class:`~user_sessions_client.ClientError`
    subclasses that carry the problem body.
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
        max_retry_after: float = 30.0,
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
        self._sleep = sleep
        self.session = session or requests.Session()
        adapter = HTTPAdapter(pool_connections=pool_size, pool_maxsize=pool_size, max_retries=0)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)
        self.session.headers.update({"Accept": "application/json", "User-Agent": "user-sessions-client/1.0"})
        if api_key:
            self.session.headers["Authorization"] = f"Bearer {api_key}"

    # Sessions

    def create(self, **fields: Any) -> JSONObject:
        """Create a session from writable fields (``uuid``, ``name``, ``email``, ``ttl_seconds``…)."""
        return self._json("POST", "/user-sessions", json_body=_jsonable(fields), idempotent=True)

    def get(self, user_session_uuid: str | uuid.UUID, *, include_deleted: bool = False) -> JSONObject:
        """Read a session; :class:`NotFound` when it is missing, deleted or expired."""
        params = {"include_deleted": "true"} if include_deleted else None
        return self._json("GET", _item(user_session_uuid), params=params)

    def exists(self, user_session_uuid: str | uuid.UUID, *, include_deleted: bool = False) -> bool:
        """``HEAD``: whether a live (or, with ``include_deleted``, any) session has this uuid."""
        params = {"include_deleted": "true"} if include_deleted else None
        try:
            self._request("HEAD", _item(user_session_uuid), params=params)
        except ClientError as error:
            if error.status == 404:
                return False
            raise
        return True

    def update(
        self,
        user_session: Mapping[str, Any] | str | uuid.UUID,
        changes: Mapping[str, Any] | None = None,
        **fields: Any,
    ) -> JSONObject:
        """Merge-patch a session, only if it is still the version this client read.

        ``user_session`` is a representation read earlier (its ``version`` is
        sent as ``If-Match``) or a uuid (read first). Changed concurrently:
        :class:`PreconditionFailed`.
        """
        current = (
            user_session if isinstance(user_session, Mapping) else self.get(user_session)  # read the version
        )
        patch = {**(changes or {}), **fields}
        return self._json(
            "PATCH",
            _item(current["uuid"]),
            json_body=_jsonable(patch),
            content_type=MERGE_PATCH,
            headers={"If-Match": f'"{current["version"]}"'},
        )

    def delete(
        self,
        user_session: Mapping[str, Any] | str | uuid.UUID,
        *,
        purge: bool = False,
    ) -> None:
        """Soft-delete (or, with ``purge``, erase) a session; a representation read earlier
        makes it conditional on that version."""
        headers = {"If-Match": f'"{user_session["version"]}"'} if isinstance(user_session, Mapping) else None
        params = {"purge": "true"} if purge else None
        self._request("DELETE", _item(_uuid_of(user_session)), params=params, headers=headers)

    def restore(self, user_session: Mapping[str, Any] | str | uuid.UUID) -> JSONObject:
        """Undo a soft delete or an expiry; :class:`Conflict` when the session is live."""
        return self._json("POST", _item(_uuid_of(user_session)) + "/restore", idempotent=True)

    def iter_sessions(self, *, page_size: int | None = None, **filters: Any) -> Iterator[JSONObject]:
        """Every session matching ``filters``, page after page, following ``next_page_token``.

        Filters are the list's query parameters (``email``, ``deleted``, ``sort``,
        ``created_after``…); ``metadata={"key": "value"}`` becomes ``metadata.key=value``.
        """
        params = _query(filters)
        if page_size is not None:
            params["limit"] = str(page_size)
        while True:
            page = self._json("GET", "/user-sessions", params=params)
            yield from page["items"]
            token = page.get("next_page_token")
            if not token:
                return
            params = {**params, "page_token": token}

    # Email verification

    def issue_email_verification(self, user_session: Mapping[str, Any] | str | uuid.UUID) -> JSONObject:
        """Issue a new code: ``{"code", "expires_at", "resend_attempts_remaining"}``. Never retried once sent."""
        return self._json("POST", _item(_uuid_of(user_session)) + "/email-verification", retry_after_sent=False)

    def check_email_verification(self, user_session: Mapping[str, Any] | str | uuid.UUID, code: str) -> JSONObject:
        """Check a code: ``{"verified": true}``, else :class:`InvalidRequest` carrying ``attempts_remaining``."""
        path = _item(_uuid_of(user_session)) + "/email-verification/check"
        return self._json("POST", path, json_body={"code": code}, idempotent=True)

    # Plumbing

    def close(self) -> None:
        self.session.close()

    def __enter__(self) -> UserSessionsClient:
        return self

    def __exit__(
        self, _type: type[BaseException] | None, _value: BaseException | None, _traceback: TracebackType | None
    ) -> None:
        self.close()

    def _json(self, method: str, path: str, **kwargs: Any) -> JSONObject:
        body: JSONObject = self._request(method, path, **kwargs).json()
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
        idempotent: bool = False,
        retry_after_sent: bool = True,
    ) -> requests.Response:
        """Send one request, retrying what is safe to retry; raise on any status ≥ 400."""
        all_headers = dict(headers or {})
        data = None
        if json_body is not None:
            data = json.dumps(json_body).encode()
            all_headers["Content-Type"] = content_type
        if idempotent:
            # The same key on every attempt: a retry is replayed, never done twice.
            all_headers["Idempotency-Key"] = uuid.uuid4().hex
        attempt = 0
        while True:
            try:
                response = self.session.request(
                    method, self.base_url + path, params=params, data=data, headers=all_headers, timeout=self.timeout
                )
            except requests.ConnectionError as error:
                sent = not _never_sent(error)
                if attempt >= self.retries or (sent and not retry_after_sent):
                    raise TransportError(f"{method} {path}: {error}") from error
                self._sleep(self._backoff(attempt))
                attempt += 1
                continue
            except requests.Timeout as error:
                if attempt >= self.retries or not retry_after_sent:
                    raise TransportError(f"{method} {path}: {error}") from error
                self._sleep(self._backoff(attempt))
                attempt += 1
                continue
            if response.status_code < 400:
                return response
            if response.status_code in RETRYABLE_STATUSES and attempt < self.retries:
                delay = self._retry_delay(response, attempt)
                if delay is not None:
                    self._sleep(delay)
                    attempt += 1
                    continue
            raise error_for(response.status_code, _problem(response))

    def _backoff(self, attempt: int) -> float:
        return float(min(self.max_backoff, self.backoff * 2**attempt) * random.uniform(0.5, 1.0))

    def _retry_delay(self, response: requests.Response, attempt: int) -> float | None:
        """How long to wait before retrying ``response``; None when ``Retry-After`` is
        absent on a 429 (only something else helps) or longer than we wait."""
        retry_after = _retry_after_seconds(response.headers.get("Retry-After"))
        if retry_after is None:
            return None if response.status_code == 429 else self._backoff(attempt)
        if retry_after > self.max_retry_after:
            return None
        return max(retry_after, self._backoff(attempt))


def _never_sent(error: requests.ConnectionError) -> bool:
    """Whether the connection failed before the request went out (refused, unreachable)."""
    text = repr(error)
    return any(reason in text for reason in ("NewConnectionError", "Connection refused", "Failed to establish"))


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


def _problem(response: requests.Response) -> JSONObject:
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        return body
    return {"status": response.status_code, "detail": response.text[:500] or response.reason}


def _item(user_session_uuid: str | uuid.UUID) -> str:
    return f"/user-sessions/{user_session_uuid}"


def _uuid_of(user_session: Mapping[str, Any] | str | uuid.UUID) -> str:
    return str(user_session["uuid"]) if isinstance(user_session, Mapping) else str(user_session)


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
