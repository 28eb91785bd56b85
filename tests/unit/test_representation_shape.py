"""The cached body's shape follows the representation schema, so a field added
to it can never be answered from an entry an earlier release stored."""

from __future__ import annotations

from marshmallow import fields

from service.api.read_through import SHAPE
from service.schemas.user_sessions import UserSessionSchema


class WithOneMoreField(UserSessionSchema):
    nickname = fields.String(required=True, allow_none=True)


class WithARenamedKey(UserSessionSchema):
    name = fields.String(required=True, allow_none=True, data_key="full_name")


def test_the_cache_shape_is_the_representation_schemas() -> None:
    assert UserSessionSchema.shape() == SHAPE
    assert len(SHAPE) == 16


def test_a_new_field_or_key_changes_the_shape() -> None:
    assert WithOneMoreField.shape() != SHAPE
    assert WithARenamedKey.shape() != SHAPE
    assert WithOneMoreField.shape() != WithARenamedKey.shape()
