"""HTTP layer: flask-smorest blueprints, one module per resource."""

from flask import Flask
from flask_smorest import Api

from service.api import docs, ops, user_sessions, verification


def register_blueprints(app: Flask, api: Api) -> None:
    api.register_blueprint(user_sessions.blp)
    api.register_blueprint(verification.blp)
    api.register_blueprint(ops.blp)
    api.register_blueprint(docs.blp)
    app.register_blueprint(docs.assets)
