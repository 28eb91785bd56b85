"""HTTP layer: flask-smorest blueprints, one module per resource."""

from flask import Flask, Response
from flask_smorest import Api

from service.api import conversation_items, docs, ops, user_sessions, verification

BODILESS_STATUSES = frozenset({204, 304})


def register_blueprints(app: Flask, api: Api) -> None:
    api.register_blueprint(user_sessions.blp)
    api.register_blueprint(verification.blp)
    api.register_blueprint(conversation_items.blp)
    api.register_blueprint(ops.blp)
    api.register_blueprint(docs.blp)
    app.register_blueprint(docs.assets)
    app.after_request(_no_body_type_without_a_body)


def _no_body_type_without_a_body(response: Response) -> Response:
    """A 204 or 304 has no body, so no ``Content-Type`` either."""
    if response.status_code in BODILESS_STATUSES:
        response.headers.pop("Content-Type", None)
    return response
