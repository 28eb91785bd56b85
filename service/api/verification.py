"""``/user-sessions/{uuid}/email-verification``: issue a code, check a code."""

from __future__ import annotations

import uuid
from typing import Any

from flask import Response, current_app
from flask.views import MethodView

from service.api.idempotency import idempotent
from service.api.parser import Blueprint
from service.api.user_sessions import SESSION_DATA_HEADERS
from service.operations import verification
from service.operations.verification import VerificationSettings
from service.schemas.base import NoArgsSchema
from service.schemas.verification import (
    VerificationCheckSchema,
    VerificationCodeIncorrectSchema,
    VerificationCodeIssuedSchema,
    VerificationIssueSchema,
    VerificationResultSchema,
)

blp = Blueprint(
    "verification",
    __name__,
    url_prefix="/user-sessions",
    description="E-mail verification of a user session by a six-digit code.",
)

# The one response that carries the code: no cache may keep it.
CODE_RESPONSE_HEADERS = {"Cache-Control": "no-store"}


@blp.after_request
def _session_data_headers(response: Response) -> Response:
    for header, value in SESSION_DATA_HEADERS.items():
        response.headers.setdefault(header, value)
    return response


def _settings() -> VerificationSettings:
    return VerificationSettings.from_config(current_app.config)


@blp.route("/<user_session_uuid:user_session_uuid>/email-verification")
class EmailVerification(MethodView):
    @blp.doc(operationId="issueEmailVerification")
    @blp.arguments(NoArgsSchema, location="query", error_status_code=400)
    @blp.arguments(VerificationIssueSchema, required=False)
    @blp.response(201, VerificationCodeIssuedSchema)
    @blp.alt_response(409, description="The session has no email (EMAIL_MISSING).")
    @blp.alt_response(
        429,
        description=(
            "Within the resend cooldown of the last issue (VERIFICATION_RESEND_TOO_SOON, with Retry-After), "
            "or every resend used up (VERIFICATION_RESEND_LIMIT_REACHED, without)."
        ),
    )
    def post(self, _query: dict[str, Any], _body: dict[str, Any], user_session_uuid: uuid.UUID) -> Any:
        """Issue a new verification code.

        The response is the only place the code ever appears, and it is sent
        with ``Cache-Control: no-store``. Issuing resets the attempts and clears
        ``is_email_verified``; every issue after the first is a resend. This is
        the one POST that ignores ``Idempotency-Key``: a code is never stored
        for replay.
        """
        issued = verification.issue_verification_code(user_session_uuid, _settings())
        return issued, 201, CODE_RESPONSE_HEADERS


@blp.route("/<user_session_uuid:user_session_uuid>/email-verification/check")
class EmailVerificationCheck(MethodView):
    @blp.doc(operationId="checkEmailVerification")
    @blp.arguments(NoArgsSchema, location="query", error_status_code=400)
    @blp.arguments(VerificationCheckSchema)
    @idempotent
    @blp.response(200, VerificationResultSchema)
    @blp.alt_response(409, description="No code is pending (VERIFICATION_CODE_NOT_ISSUED).")
    @blp.alt_response(410, description="The code has expired (VERIFICATION_CODE_EXPIRED).")
    @blp.alt_response(
        422,
        schema=VerificationCodeIncorrectSchema,
        content_type="application/problem+json",
        description="A wrong code (VERIFICATION_CODE_INCORRECT), or a body that is not a six-digit string.",
    )
    @blp.alt_response(429, description="Attempts used up (VERIFICATION_ATTEMPTS_EXHAUSTED); no Retry-After.")
    def post(self, _query: dict[str, Any], body: dict[str, Any], user_session_uuid: uuid.UUID) -> Any:
        """Check a verification code.

        Every check that is judged counts one attempt, atomically: however many
        race, no more than ``max_verification_attempts`` are judged. An
        expired code is a 410 before used-up attempts are a 429.
        """
        verification.check_verification_code(user_session_uuid, body["code"], _settings())
        return {"verified": True}
