"""Flask extensions, created unbound and bound to the app in ``create_app``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from flask_migrate import Migrate
from flask_smorest import Api
from flask_sqlalchemy import SQLAlchemy

from service import openapi
from service.database import Base

# Objects outlive their commit: a use case returns what it wrote, and the view
# serialises it without a second round trip to reload it.
db = SQLAlchemy(model_class=Base, session_options={"expire_on_commit": False})
migrate = Migrate(directory=str(Path(__file__).parent / "migrations"))


class ServiceApi(Api):
    """flask-smorest's Api, minus its JSON error handler: ``service.errors``
    answers every error as problem+json instead.

    Its OpenAPI document is completed by ``service.openapi.ContractPlugin``;
    flask-smorest's own generic error responses, ETag and pagination
    components are left out, and no operation gets a catch-all ``default``
    response: each lists the statuses it can answer.

    One instance per app (it holds that app's OpenAPI document), made in
    ``create_app``.
    """

    DEFAULT_ERROR_RESPONSE_NAME = None

    def _register_error_handlers(self) -> None:
        return None

    def _init_spec(self, **kwargs: Any) -> None:
        kwargs["extra_plugins"] = [*kwargs.get("extra_plugins", ()), openapi.ContractPlugin()]
        super()._init_spec(**kwargs)
        openapi.describe_custom_fields(self)

    def _register_responses(self) -> None:
        return None

    def _register_etag_headers(self) -> None:
        return None

    def _register_pagination_header(self) -> None:
        return None
