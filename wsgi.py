"""WSGI entry point: ``gunicorn wsgi:app``, ``flask --app wsgi …``.

Imported by a server (gunicorn, or ``flask run``), it builds the app to serve:
production refuses to start without ``API_KEYS``. Imported by any other
``flask`` command (``db upgrade``, ``user-sessions purge``), it builds the
app for that command, which serves nothing and so needs no keys; and a
configuration the service refuses is then one line on stderr and exit
status 1, not a traceback.
"""

import click

from service import create_app
from service.config import ConfigurationError


def _flask_command() -> str | None:
    """The name of the ``flask`` command loading this module, or None outside the CLI.

    Flask loads the app inside the command's click context for ``run``, and
    inside the top-level ``flask`` context while it looks up the app's own
    commands (``db``, ``user-sessions``).
    """
    context = click.get_current_context(silent=True)
    return None if context is None else context.command.name or ""


_command = _flask_command()
try:
    app = create_app(serving=_command in (None, "run"))
except ConfigurationError as error:
    if _command is None:
        raise
    raise click.ClickException(str(error)) from None
