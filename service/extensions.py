"""Flask extensions, created unbound and bound to the app in ``create_app``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
from flask import Flask
from flask_smorest import Api
from flask_sqlalchemy import SQLAlchemy

from service import openapi
from service.database import Base

# Objects outlive their commit: a use case returns what it wrote, and the view
# serialises it without a second round trip to reload it.
db = SQLAlchemy(model_class=Base, session_options={"expire_on_commit": False})
MIGRATIONS_DIRECTORY = str(Path(__file__).parent / "migrations")


class LazyMigrate:
    """Flask-Migrate, bound to the app only when something asks for it.

    Only ``flask db …`` and tests that migrate need it, and importing it
    loads Alembic: about 11 MiB in every serving worker for nothing. Until
    then ``app.extensions["migrate"]`` holds this stand-in, which binds the
    real extension on first use and hands on every attribute.
    """

    def __init__(self, app: Flask) -> None:
        self._app = app
        app.extensions["migrate"] = self
        app.cli.add_command(_LazyDatabaseCommands("db", help="Database migrations (Flask-Migrate)."))

    def __getattr__(self, name: str) -> Any:
        from flask_migrate import Migrate

        Migrate(self._app, db, directory=MIGRATIONS_DIRECTORY)  # replaces this stand-in
        return getattr(self._app.extensions["migrate"], name)


class _LazyDatabaseCommands(click.Group):
    """``flask db``: Flask-Migrate's command group, imported when it is run."""

    @staticmethod
    def _commands() -> click.Group:
        from flask_migrate.cli import db as commands

        group: click.Group = commands
        return group

    def make_context(
        self, info_name: str | None, args: list[str], parent: click.Context | None = None, **extra: Any
    ) -> click.Context:
        # Hand the whole invocation (options, callback, subcommands) to the real group.
        return self._commands().make_context(info_name, args, parent=parent, **extra)


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
