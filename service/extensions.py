"""Flask extensions, created unbound and bound to the app in ``create_app``."""

from __future__ import annotations

from pathlib import Path

from flask_migrate import Migrate
from flask_smorest import Api
from flask_sqlalchemy import SQLAlchemy

from service.database import Base

# Objects outlive their commit: a use case returns what it wrote, and the view
# serialises it without a second round trip to reload it.
db = SQLAlchemy(model_class=Base, session_options={"expire_on_commit": False})
migrate = Migrate(directory=str(Path(__file__).parent / "migrations"))


class ServiceApi(Api):
    """flask-smorest's Api, minus its JSON error handler: ``service.errors``
    answers every error as problem+json instead.

    One instance per app (it holds that app's OpenAPI document), made in
    ``create_app``.
    """

    def _register_error_handlers(self) -> None:
        return None
