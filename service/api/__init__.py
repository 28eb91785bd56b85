"""HTTP layer: flask-smorest blueprints, one module per resource."""

from flask_smorest import Api

from service.api import ops, user_sessions, verification


def register_blueprints(api: Api) -> None:
    api.register_blueprint(user_sessions.blp)
    api.register_blueprint(verification.blp)
    api.register_blueprint(ops.blp)
