"""Operational endpoints: liveness, readiness and metrics, open to load balancers
and scrapers (no API key)."""

from __future__ import annotations

from typing import Any

from flask import Response
from flask.views import MethodView
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from service.api.parser import Blueprint
from service.cache.redis_link import cache_state
from service.extensions import db
from service.observability import metrics
from service.schemas.ops import HealthSchema, ReadinessSchema

blp = Blueprint("ops", __name__, description="Health of the process and its dependencies.")


@blp.route("/healthz")
class Health(MethodView):
    @blp.doc(operationId="getHealth")
    @blp.documents_head("headHealth")
    @blp.response(200, HealthSchema)
    def get(self) -> Any:
        """The process is up (no I/O)."""
        return {"status": "ok"}


@blp.route("/readyz")
class Readiness(MethodView):
    @blp.doc(operationId="getReadiness")
    @blp.documents_head("headReadiness")
    @blp.response(200, ReadinessSchema)
    @blp.alt_response(
        503, schema=ReadinessSchema, description="The database does not answer.", headers={"Retry-After": "Retry-After"}
    )
    def get(self) -> Any:
        """The database answers; the optional cache's state is reported, never fatal.

        A Redis outage must not take every instance out of the load balancer:
        ``cache`` is ``ok``, ``unavailable`` or ``disabled`` (no ``REDIS_URL``),
        and only the database decides the status.
        """
        try:
            db.session.execute(text("SELECT 1"))
            database = "ok"
        except SQLAlchemyError:
            database = "unavailable"
        finally:
            db.session.rollback()
        status = 200 if database == "ok" else 503
        headers = {} if status == 200 else {"Retry-After": "1"}
        body = {"status": "ok" if status == 200 else "unavailable", "database": database, "cache": cache_state()}
        return body, status, headers


@blp.route("/metrics")
class Metrics(MethodView):
    @blp.documents_head("headMetrics")
    @blp.doc(
        operationId="getMetrics",
        responses={
            "200": {
                "description": "Prometheus text format, summed over every worker process.",
                "content": {metrics.CONTENT_TYPE: {"schema": {"type": "string"}}},
            }
        },
    )
    def get(self) -> Response:
        """Request counts and latencies by route, database errors, cache hits and misses."""
        return Response(metrics.render(), mimetype=None, content_type=metrics.CONTENT_TYPE)
