"""What every request schema shares: unknown fields and unstorable strings are refused."""

from __future__ import annotations

from typing import Any

from marshmallow import RAISE, Schema, ValidationError, pre_load

from service.schemas.fields import unstorable_string

UNSTORABLE_STRING = "Must not contain NUL characters or unpaired surrogates."


class StrictSchema(Schema):
    """Rejects unknown fields (422 naming each) and strings the database cannot store."""

    class Meta:
        unknown = RAISE

    @pre_load
    def _reject_unstorable_strings(self, data: Any, **_kwargs: Any) -> Any:
        if isinstance(data, dict):
            errors = {str(key): [UNSTORABLE_STRING] for key, value in data.items() if unstorable_string(value)}
            if errors:
                raise ValidationError(errors)
        return data


class NoArgsSchema(StrictSchema):
    """An operation that takes no query parameters."""
