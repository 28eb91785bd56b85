"""Operational endpoints: liveness and readiness, open to load balancers."""

from __future__ import annotations

from typing import Any

from flask.views import MethodView
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from service.api.parser import Blueprint
from service.extensions import db
from service.schemas import HealthSchema, ReadinessSchema

blp = Blueprint("ops", __name__, description="Health of the process and its dependencies.")


@blp.route("/healthz")
class Health(MethodView):
    @blp.doc(operationId="getHealth")
    @blp.response(200, HealthSchema)
    def get(self) -> Any:
        """The process is up (no I/O)."""
        return {"status": "ok"}


@blp.route("/readyz")
class Readiness(MethodView):
    @blp.doc(operationId="getReadiness")
    @blp.response(200, ReadinessSchema)
    @blp.alt_response(
        503, schema=ReadinessSchema, description="The database does not answer.", headers={"Retry-After": "Retry-After"}
    )
    def get(self) -> Any:
        """The database answers; the optional cache's state is reported, never fatal."""
        try:
            db.session.execute(text("SELECT 1"))
            database = "ok"
        except SQLAlchemyError:
            database = "unavailable"
        finally:
            db.session.rollback()
        status = 200 if database == "ok" else 503
        headers = {} if status == 200 else {"Retry-After": "1"}
        return {"status": "ok" if status == 200 else "unavailable", "database": database}, status, headers
