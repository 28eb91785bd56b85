"""The bodies of the operational endpoints."""

from __future__ import annotations

from marshmallow import Schema, fields, validate


class HealthSchema(Schema):
    """Body of ``GET /healthz``."""

    status = fields.String(required=True, validate=validate.OneOf(["ok"]))


class ReadinessSchema(Schema):
    """Body of ``GET /readyz``: the service's state, its database's and its optional cache's."""

    status = fields.String(required=True, validate=validate.OneOf(["ok", "unavailable"]))
    database = fields.String(
        required=True,
        validate=validate.OneOf(["ok", "read_only", "unavailable"]),
        metadata={"description": "`read_only`: it answers but takes no writes (a standby, or during a failover)."},
    )
    cache = fields.String(
        required=True,
        validate=validate.OneOf(["ok", "unavailable", "disabled"]),
        metadata={"description": "Redis; `disabled` without REDIS_URL. Never makes the status fail."},
    )
