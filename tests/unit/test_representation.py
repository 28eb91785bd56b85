"""The fast representation of a user session says exactly what marshmallow's dump says."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta, timezone

from marshmallow import Schema

from service.models import UserSession
from service.schemas.user_sessions import UserSessionPageSchema, UserSessionSchema
from tests.factories import MOMENT, full_user_session


def sessions() -> list[UserSession]:
    # An offset other than UTC and a year under 1000 to write.
    full = full_user_session(
        updated_at=MOMENT.astimezone(timezone(timedelta(hours=2))), completed_at=datetime(81, 1, 2, tzinfo=UTC)
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
        created_at=MOMENT,
        updated_at=MOMENT,
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
