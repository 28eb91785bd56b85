"""The user-sessions service: owns the session data of the Maria agent backend."""

from __future__ import annotations

import functools
import inspect
import logging
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from flask import Flask, Request, Response
from flask.sessions import SessionInterface, SessionMixin
from werkzeug.middleware.proxy_fix import ProxyFix

from service import cache, observability, security
from service.api import register_blueprints
from service.api.bodies import BoundedRequest
from service.api.converters import ItemIdConverter, UserSessionUUIDConverter
from service.api.json_provider import JSONProvider
from service.api.openapi import ServiceApi
from service.api.problems import register_error_handlers
from service.commands import user_sessions_cli
from service.config import load_config
from service.database import configure_engine, engine_options
from service.extensions import LazyMigrate, db
from service.observability.logs import configure_logging
from service.repositories import changes

log = logging.getLogger(__name__)

API_SETTINGS = {
    "API_TITLE": "User sessions",
    "API_VERSION": "1.0.0",
    "OPENAPI_VERSION": "3.1.0",
    # The documents and the docs page are served by ``service.api.docs``.
    "OPENAPI_URL_PREFIX": None,
    # Paths are relative to wherever the service is reached.
    "API_SPEC_OPTIONS": {"servers": [{"url": "/", "description": "The service that serves this document."}]},
    # No automatic OPTIONS: a method a path does not document is a 405 with ``Allow``.
    "PROVIDE_AUTOMATIC_OPTIONS": False,
}


class ServiceFlask(Flask):
    """Flask, with bodies encoded by orjson (``service.api.json_provider``) and
    held to their limit however they are sent (``service.api.bodies``), asking
    once per function whether it is a coroutine function.

    Flask asks before every call of a view, hook or error handler; the
    answer never changes, and asking costs more than most hooks do.
    """

    json_provider_class = JSONProvider
    request_class = BoundedRequest

    def ensure_sync(self, func: Callable[..., Any]) -> Callable[..., Any]:
        if _is_coroutine_function(getattr(func, "__func__", func)):
            return self.async_to_sync(func)
        return func


@functools.cache
def _is_coroutine_function(func: Callable[..., Any]) -> bool:
    return inspect.iscoroutinefunction(func)


class NoCookieSessions(SessionInterface):
    """The API keeps no state in cookies: skip Flask's signed-cookie session,
    which would otherwise be opened on every request."""

    def open_session(self, app: Flask, request: Request) -> None:
        return None

    def save_session(self, app: Flask, session: SessionMixin, response: Response) -> None:
        return None


def create_app(environ: Mapping[str, str] | None = None, *, serving: bool = True) -> Flask:
    """Build the app from ``environ`` (the process environment by default).

    ``serving=False`` builds it for a command that serves nothing (``wsgi.py``
    decides): production then needs no ``API_KEYS`` (``service.config``)."""
    app = ServiceFlask(__name__, instance_path=str(Path(os.environ.get("INSTANCE_PATH", "instance")).resolve()))
    app.config.update(load_config(os.environ if environ is None else environ, serving=serving), **API_SETTINGS)
    app.session_interface = NoCookieSessions()
    configure_logging(app)
    trust_proxies(app)
    app.url_map.converters["user_session_uuid"] = UserSessionUUIDConverter
    app.url_map.converters["item_id"] = ItemIdConverter
    configure_database(app)
    register_extensions(app)
    api = ServiceApi(app)
    api.register_converter(UserSessionUUIDConverter, UserSessionUUIDConverter.parameter_schema)
    api.register_converter(ItemIdConverter, ItemIdConverter.parameter_schema)
    register_blueprints(app, api)
    register_error_handlers(app)
    register_infrastructure(app)
    app.cli.add_command(user_sessions_cli)
    warn_about_development_defaults(app, serving=serving)
    return app


def configure_database(app: Flask) -> None:
    """Default to a SQLite file in the instance folder, created on first run."""
    if app.config["SQLALCHEMY_DATABASE_URI"] is None:
        Path(app.instance_path).mkdir(parents=True, exist_ok=True)
        app.config["SQLALCHEMY_DATABASE_URI"] = f"sqlite:///{Path(app.instance_path) / 'user_sessions.sqlite3'}"
    app.config["SQLALCHEMY_ENGINE_OPTIONS"] = engine_options(app.config["SQLALCHEMY_DATABASE_URI"], app.config)


def register_extensions(app: Flask) -> None:
    db.init_app(app)
    with app.app_context():
        configure_engine(db.engine)
    LazyMigrate(app)
    changes.track(db.session)


def trust_proxies(app: Flask) -> None:
    """Take the client address from ``X-Forwarded-For`` behind trusted proxies only."""
    count = app.config["TRUSTED_PROXY_COUNT"]
    if count:
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=count)  # type: ignore[method-assign]


def register_infrastructure(app: Flask) -> None:
    """In this order: correlation id and timing, the cache, then authentication and rate limit."""
    observability.init_app(app)
    cache.init_app(app)
    security.init_app(app)


def warn_about_development_defaults(app: Flask, *, serving: bool = True) -> None:
    if app.config["SECRET_KEY_IS_DEFAULT"]:
        log.warning("SECRET_KEY is not set: using a fixed development key; set SECRET_KEY on every instance")
    if serving and not app.config["API_KEYS"]:
        log.warning("API_KEYS is not set: /user-sessions is open to anyone who can reach it")
