"""E-mail verification: issue a six-digit code, check it, count every attempt.

The code exists in clear only in the issue response. The database keeps an
HMAC of it, keyed by a key derived from ``SECRET_KEY`` and bound to the
session and its e-mail address, so a stolen hash cannot be brute-forced
offline and a code sent to one address cannot verify another.

Every check is counted by one conditional ``UPDATE`` that the database
applies atomically (``… WHERE verification_attempts <
max_verification_attempts``): however many checks race, on however many
workers, no more than the maximum are ever judged.
"""

from __future__ import annotations

import hmac
import secrets
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from service.database import get_db_session, utcnow
from service.errors import ServiceError, UserSessionNotFound, WriteConflict, retry_after
from service.keys import derived_key, keyed_fingerprint
from service.models import UserSession
from service.repositories import UserSessionRepository, get_user_session_repository

CODE_DIGITS = 6
# A concurrent re-issue can turn a refused check into a judgeable one; retry once.
_CHECK_ROUNDS = 2


class EmailMissing(ServiceError):
    status, code = 409, "EMAIL_MISSING"
    detail = "The user session has no email to verify; set one first."


class ResendTooSoon(ServiceError):
    status, code = 429, "VERIFICATION_RESEND_TOO_SOON"
    detail = "A code was issued moments ago; wait for the time in Retry-After before asking for another."


class ResendLimitReached(ServiceError):
    status, code = 429, "VERIFICATION_RESEND_LIMIT_REACHED"
    detail = "No more verification codes can be issued for this user session."


class VerificationCodeNotIssued(ServiceError):
    status, code = 409, "VERIFICATION_CODE_NOT_ISSUED"
    detail = "No verification code is pending for this user session; issue one first."


class VerificationCodeExpired(ServiceError):
    status, code = 410, "VERIFICATION_CODE_EXPIRED"
    detail = "The verification code has expired; issue a new one."


class VerificationAttemptsExhausted(ServiceError):
    status, code = 429, "VERIFICATION_ATTEMPTS_EXHAUSTED"
    detail = "Every attempt at this verification code is used up; issue a new one."


class VerificationCodeIncorrect(ServiceError):
    status, code = 422, "VERIFICATION_CODE_INCORRECT"
    detail = "The verification code is not correct."

    def __init__(self, attempts_remaining: int) -> None:
        super().__init__(extra={"verified": False, "attempts_remaining": attempts_remaining})


@dataclass(frozen=True)
class VerificationSettings:
    """How codes are keyed and how long they and the resend cooldown last."""

    hash_key: bytes
    code_ttl: timedelta
    resend_cooldown: timedelta

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> VerificationSettings:
        return cls(
            hash_key=derived_key(config["SECRET_KEY"], "email-verification-code"),
            code_ttl=timedelta(seconds=config["VERIFICATION_CODE_TTL"]),
            resend_cooldown=timedelta(seconds=config["VERIFICATION_RESEND_COOLDOWN"]),
        )

    def code_hash(self, user_session_uuid: uuid.UUID, email: str | None, code: str) -> str:
        """The keyed hash stored for ``code``, bound to the session and its address."""
        address = (email or "").lower()
        return keyed_fingerprint(self.hash_key, f"{user_session_uuid}\n{address}\n{code}".encode())


@dataclass(frozen=True)
class IssuedCode:
    """What the issue response shows, once: the code in clear."""

    code: str
    expires_at: datetime
    resend_attempts_remaining: int


def new_code() -> str:
    """Six decimal digits from the operating system's CSPRNG, leading zeros kept."""
    return f"{secrets.randbelow(10**CODE_DIGITS):0{CODE_DIGITS}d}"


def issue_verification_code(user_session_uuid: uuid.UUID, settings: VerificationSettings) -> IssuedCode:
    """Issue a new code: resets the attempts, clears ``is_email_verified``.

    The first issue is free; every later one is a resend, limited in number
    (``max_resend_attempts``, never reset) and spaced by the cooldown.
    """
    with get_db_session() as db_session:
        repository = get_user_session_repository(db_session)
        user_session = _find_live(repository, user_session_uuid, for_update=True)
        if user_session.email is None:
            raise EmailMissing()
        now = utcnow()
        is_resend = user_session.last_resend_at is not None
        if is_resend:
            _check_resend_allowed(user_session, now, settings)
        code = new_code()
        expires_at = now + settings.code_ttl
        repository.update(
            user_session,
            {
                "verification_code_hash": settings.code_hash(user_session.uuid, user_session.email, code),
                "verification_expires_at": expires_at,
                "verification_attempts": 0,
                "is_email_verified": False,
                "resend_attempts": user_session.resend_attempts + (1 if is_resend else 0),
                "last_resend_at": now,
                "updated_at": now,
            },
        )
        remaining = max(user_session.max_resend_attempts - user_session.resend_attempts, 0)
    return IssuedCode(code=code, expires_at=expires_at, resend_attempts_remaining=remaining)


def check_verification_code(user_session_uuid: uuid.UUID, code: str, settings: VerificationSettings) -> None:
    """Judge ``code``; return when it is right, raise why it is not.

    The attempt is counted, and committed, before the answer is given: a
    wrong code's 422 leaves one attempt fewer behind it.
    """
    refusal: ServiceError | None = None
    with get_db_session() as db_session:
        repository = get_user_session_repository(db_session)
        for _ in range(_CHECK_ROUNDS):
            now = utcnow()
            attempt = repository.count_verification_attempt(user_session_uuid, now=now)
            if attempt is not None:
                expected = settings.code_hash(user_session_uuid, attempt.email, code)
                if hmac.compare_digest(expected, attempt.verification_code_hash):
                    repository.mark_email_verified(user_session_uuid, now=now)
                else:
                    remaining = attempt.max_verification_attempts - attempt.verification_attempts
                    refusal = VerificationCodeIncorrect(remaining)
                break
            refusal = _why_not_judged(repository, user_session_uuid, now)
            if refusal is not None:
                break
        else:
            refusal = WriteConflict()
    if refusal is not None:
        raise refusal


def _check_resend_allowed(user_session: UserSession, now: datetime, settings: VerificationSettings) -> None:
    # A spent limit is checked first: waiting would not help, so no Retry-After.
    if user_session.resend_attempts >= user_session.max_resend_attempts:
        raise ResendLimitReached()
    assert user_session.last_resend_at is not None
    ready_at = user_session.last_resend_at + settings.resend_cooldown
    if now < ready_at:
        raise ResendTooSoon(headers={"Retry-After": retry_after((ready_at - now).total_seconds())})


def _why_not_judged(
    repository: UserSessionRepository, user_session_uuid: uuid.UUID, now: datetime
) -> ServiceError | None:
    """Why the counting UPDATE matched no row, read under the row's lock.

    Expiry is judged before attempts (410 before 429). None means nothing
    stands in the way any more (a new code was issued meanwhile).
    """
    user_session = _find_live(repository, user_session_uuid, for_update=True, now=now)
    if user_session.verification_code_hash is None:
        return VerificationCodeNotIssued()
    if user_session.verification_expires_at is None or user_session.verification_expires_at <= now:
        return VerificationCodeExpired()
    if user_session.verification_attempts >= user_session.max_verification_attempts:
        return VerificationAttemptsExhausted()
    return None


def _find_live(
    repository: UserSessionRepository,
    user_session_uuid: uuid.UUID,
    *,
    for_update: bool = False,
    now: datetime | None = None,
) -> UserSession:
    user_session = repository.get_by_uuid(user_session_uuid, for_update=for_update, now=now)
    if user_session is None:
        raise UserSessionNotFound()
    return user_session
