"""What every request schema shares: unknown fields and unstorable strings are refused."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from marshmallow import RAISE, Schema, ValidationError, fields, pre_load, validate

from service.schemas.fields import QueryInteger, unstorable_string

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


LIST_LIMIT_DEFAULT = 50
LIST_LIMIT_MAX = 500
PAGE_TOKEN_MAX_LENGTH = 2048


def page_limit_field() -> QueryInteger:
    """A listing's ``limit``: items a page, 1 to 500 (default 50)."""
    return QueryInteger(
        load_default=LIST_LIMIT_DEFAULT,
        validate=validate.Range(min=1, max=LIST_LIMIT_MAX),
        metadata={"description": "Items a page, 1 to 500 (default 50)."},
    )


def page_token_field(description: str) -> fields.String:
    """A listing's ``page_token``: the previous page's signed cursor."""
    return fields.String(validate=validate.Length(max=PAGE_TOKEN_MAX_LENGTH), metadata={"description": description})


def listing_query(
    data: Any,
    take_repeatable: Callable[[str, list[str], dict[str, list[str]]], bool] | None = None,
) -> dict[str, Any]:
    """A listing's query string as one value a name: a repeated parameter or an unstorable
    string is an error (all of them at once), and an empty ``page_token`` means the first page.
    ``take_repeatable(name, values, errors)`` may claim a name first (returning True), for
    parameters that may repeat."""
    multidict = getattr(data, "data", data)
    collected: dict[str, Any] = {}
    errors: dict[str, list[str]] = {}
    for name in multidict:
        values = multidict.getlist(name) if hasattr(multidict, "getlist") else [multidict[name]]
        if unstorable_string([name, *values]):
            errors[name] = [UNSTORABLE_STRING]
        elif take_repeatable is not None and take_repeatable(name, values, errors):
            continue
        elif len(values) > 1:
            errors[name] = ["Give this parameter once."]
        else:
            collected[name] = values[0]
    if errors:
        raise ValidationError(errors)
    if collected.get("page_token") == "":
        del collected["page_token"]
    return collected
