"""RFC 9457 problem details, as the OpenAPI document describes them."""

from __future__ import annotations

from marshmallow import INCLUDE, Schema, fields


class ProblemSchema(Schema):
    """RFC 9457 problem details; problems of some operations add members of their own."""

    class Meta:
        unknown = INCLUDE

    type = fields.String(required=True, metadata={"format": "uri"})
    title = fields.String(required=True)
    status = fields.Integer(required=True)
    detail = fields.String(required=True)
    code = fields.String(required=True, metadata={"description": "Stable UPPER_SNAKE_CASE error code."})
    correlation_id = fields.String(required=True, allow_none=True)
    errors = fields.Dict(
        keys=fields.String(),
        values=fields.List(fields.String()),
        metadata={"description": "Field or parameter name, as sent, to its messages."},
    )
