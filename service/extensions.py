"""Flask extensions, created unbound and bound to the app in ``create_app``.

``db`` owns the metadata every model is declared on (``service.database.Base``
shares it), so this module imports nothing of the service's own.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
from flask import Flask
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import MetaData

# Stable constraint and index names, so Alembic's migrations name what it finds.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_N_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# Objects outlive their commit: a use case returns what it wrote, and the view
# serialises it without a second round trip to reload it.
db = SQLAlchemy(metadata=MetaData(naming_convention=NAMING_CONVENTION), session_options={"expire_on_commit": False})
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
