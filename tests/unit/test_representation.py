"""The fast representation of a user session says exactly what marshmallow's dump says."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta, timezone

from marshmallow import Schema

from service.database import get_db_session
from service.models import UserSession
from service.repositories import get_user_session_repository
from service.schemas.user_sessions import UserSessionPageSchema, UserSessionSchema


def sessions() -> list[UserSession]:
    moment = datetime(2026, 11, 27, 5, 0, 0, 123456, tzinfo=UTC)
    full = UserSession(
        uuid=uuid.uuid4(),
        name="Ada",
        email="Ada@Example.org",
        ip_address="2001:db8::1",
        consent_user_data=True,
        metadata_={"a": {"b": [1, 2.5, None, True]}, "ü": "ñ"},
        is_email_verified=True,
        verification_attempts=2,
        max_verification_attempts=3,
        verification_expires_at=moment + timedelta(minutes=10),
        resend_attempts=1,
        max_resend_attempts=3,
        last_resend_at=moment,
        created_at=moment,
        updated_at=moment.astimezone(timezone(timedelta(hours=2))),
        completed_at=datetime(81, 1, 2, tzinfo=UTC),
        expires_at=moment + timedelta(days=1),
        deleted_at=moment,
        version=7,
    )
    empty = UserSession(
        uuid=uuid.uuid4(),
        name=None,
        email=None,
        ip_address=None,
        consent_user_data=False,
        metadata_={},
        is_email_verified=False,
        verification_attempts=0,
        max_verification_attempts=3,
        resend_attempts=0,
        max_resend_attempts=3,
        created_at=moment,
        updated_at=moment,
        version=1,
    )
    return [full, empty]


def test_the_fast_dump_equals_marshmallows_dump() -> None:
    schema, examples = UserSessionSchema(), sessions()
    for user_session in examples:
        assert schema.dump(user_session) == Schema.dump(schema, user_session)
    assert schema.dump(examples, many=True) == Schema.dump(schema, examples, many=True)


def test_a_page_dumps_its_items_the_same_way() -> None:
    examples = sessions()
    dumped = UserSessionPageSchema().dump({"items": examples, "next_page_token": None})
    assert dumped["items"] == Schema.dump(UserSessionSchema(), examples, many=True)


def test_datetimes_are_utc_with_microseconds_and_four_digit_years() -> None:
    dumped = UserSessionSchema().dump(sessions()[0])
    assert dumped["created_at"] == "2026-11-27T05:00:00.123456Z"
    assert dumped["updated_at"] == "2026-11-27T05:00:00.123456Z"
    assert dumped["completed_at"] == "0081-01-02T00:00:00.000000Z"


def test_a_listing_row_dumps_like_the_instance(app_context: None) -> None:
    with get_db_session() as db_session:
        stored = get_user_session_repository(db_session).create(
            UserSession(name="row", email="r@example.org", metadata_={"k": [1]}, completed_at=datetime.now(UTC))
        )
    (row,) = get_user_session_repository().query().limit(5).page().items
    assert UserSessionSchema().dump([row], many=True) == [Schema.dump(UserSessionSchema(), stored)]
