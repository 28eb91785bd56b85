"""E-mail verification: the bodies of issuing and checking a code."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from service.schemas.base import StrictSchema
from service.schemas.fields import UTCDateTime
from service.schemas.problems import ProblemSchema

VERIFICATION_CODE_FORMAT = "Must be a string of exactly six ASCII digits."


class VerificationIssueSchema(StrictSchema):
    """Body of ``POST …/email-verification``: nothing (or ``{}``); the code goes to the session's email."""


class VerificationCodeIssuedSchema(Schema):
    """The new code: the only place it ever appears."""

    code = fields.String(
        required=True, metadata={"description": "Six digits; leading zeros count.", "example": "042917"}
    )
    expires_at = UTCDateTime(required=True)
    resend_attempts_remaining = fields.Integer(required=True)


class VerificationCheckSchema(StrictSchema):
    """Body of ``POST …/email-verification/check``."""

    code = fields.String(
        required=True,
        validate=validate.Regexp(r"[0-9]{6}\Z", error=VERIFICATION_CODE_FORMAT),
        error_messages={"invalid": VERIFICATION_CODE_FORMAT},
        metadata={"pattern": "^[0-9]{6}$", "example": "042917"},
    )


class VerificationResultSchema(Schema):
    """A right code: the session's email is verified."""

    verified = fields.Boolean(required=True)


class VerificationCodeIncorrectSchema(ProblemSchema):
    """The check's 422: a wrong code (``VERIFICATION_CODE_INCORRECT``) also says
    how many attempts are left; a malformed body is a plain validation problem."""

    verified = fields.Boolean(metadata={"description": "`false`, with VERIFICATION_CODE_INCORRECT."})
    attempts_remaining = fields.Integer(metadata={"description": "With VERIFICATION_CODE_INCORRECT."})
