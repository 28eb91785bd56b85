"""Alembic environment: migrates the database of the Flask app it runs in."""

import logging
from logging.config import fileConfig

import click
from alembic import context
from flask import current_app

from service.database import in_transaction, schema_objects_for
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

config = context.config
if config.config_file_name is not None and not logging.getLogger().handlers:
    # Only when nothing set up logging: the app's factory sends every log,
    # migrations' included, to stdout as JSON lines, and that must stay so.
    fileConfig(config.config_file_name, disable_existing_loggers=False)
logger = logging.getLogger("alembic.env")

# Any constant shared by every instance: instances that start at once migrate one at a time.
MIGRATION_LOCK_ID = 0x75736572  # "user"

migrate_extension = current_app.extensions["migrate"]
engine = migrate_extension.db.engine
target_metadata = migrate_extension.db.metadata
config.set_main_option("sqlalchemy.url", engine.url.render_as_string(hide_password=False).replace("%", "%%"))


def skip_empty_autogenerate(context, revision, directives):
    """Write no revision file when autogenerate finds nothing to change."""
    if getattr(config.cmd_opts, "autogenerate", False) and directives[0].upgrade_ops.is_empty():
        directives[:] = []
        logger.info("No changes in schema detected.")


include_object = schema_objects_for(engine.dialect.name)


def run_migrations_offline():
    context.configure(
        url=config.get_main_option("sqlalchemy.url"),
        target_metadata=target_metadata,
        literal_binds=True,
        include_object=include_object,
        render_as_batch=engine.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()


def connect():
    """The engine's connection. One the database refuses or never answers is a
    one-line error for the operator (libpq's words carry no password), not a traceback."""
    try:
        return engine.connect()
    except OperationalError as error:
        raise click.ClickException(f"cannot connect to the database: {' '.join(str(error.orig).split())}") from None


def run_migrations_online():
    configure_args = dict(migrate_extension.configure_args)
    configure_args.setdefault("process_revision_directives", skip_empty_autogenerate)
    configure_args.setdefault("include_object", include_object)
    with connect() as autocommit_connection:
        connection = in_transaction(autocommit_connection)
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            **configure_args,
        )
        with context.begin_transaction():
            if connection.dialect.name == "postgresql":
                # Held until the migration commits; the next instance then finds the schema current.
                connection.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": MIGRATION_LOCK_ID})
            context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
