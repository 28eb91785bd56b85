"""Configuration: one pure function from an environment mapping to Flask config.

Everything the service reads from its environment is read here, once, in the
app factory. Tests pass a plain mapping instead of touching ``os.environ``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError

DEVELOPMENT_SECRET_KEY = "development-only-secret-key-do-not-use-in-production"  # noqa: S105

ENVIRONMENTS = ("development", "production")
PRODUCTION_SECRET_KEY_MIN_LENGTH = 32

log = logging.getLogger(__name__)


class ConfigurationError(RuntimeError):
    """The environment cannot run the service safely (e.g. production without keys)."""


def _int(environ: Mapping[str, str], name: str, default: int, *, minimum: int = 0, maximum: int | None = None) -> int:
    raw = environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigurationError(f"{name} must be a whole number, got {raw!r}") from None
    if value < minimum:
        raise ConfigurationError(f"{name} must be at least {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise ConfigurationError(f"{name} must be at most {maximum}, got {value}")
    return value


def normalise_database_url(url: str) -> str:
    """Let operators write ``postgresql://…``; the service speaks psycopg 3."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def _database_url(environ: Mapping[str, str]) -> str | None:
    """``DATABASE_URL``, normalised; refused (without echoing it: it may hold a
    password) when SQLAlchemy cannot read it or has no driver for it."""
    raw = environ.get("DATABASE_URL") or None
    if raw is None:
        return None
    url = normalise_database_url(raw.strip())
    try:
        make_url(url).get_dialect()
    except (ArgumentError, NoSuchModuleError, ValueError):
        raise ConfigurationError(
            "DATABASE_URL is not a database URL SQLAlchemy can use (e.g. postgresql://user:password@host:5432/name)"
        ) from None
    return url


def parse_api_keys(raw: str | None) -> dict[str, bool]:
    """Map each configured key to whether it may write (``key:ro`` may only read).

    A key listed twice with different rights is refused: which of the two was
    meant cannot be guessed, and guessing read-only or read-write are both wrong.
    """
    keys: dict[str, bool] = {}
    for item in (raw or "").split(","):
        item = item.strip()
        if not item:
            continue
        key, can_write = (item[: -len(":ro")], False) if item.endswith(":ro") else (item, True)
        if keys.get(key, can_write) != can_write:
            # The key itself is never echoed: it is a secret.
            raise ConfigurationError("API_KEYS lists a key twice, once with :ro and once without; list each key once")
        keys[key] = can_write
    return keys


def _log_level(environ: Mapping[str, str]) -> str:
    level = (environ.get("LOG_LEVEL") or "INFO").strip().upper()
    if level not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
        raise ConfigurationError(f"LOG_LEVEL must be DEBUG, INFO, WARNING, ERROR or CRITICAL, got {level!r}")
    return level


def _check_rate_limit(value: str) -> None:
    """``100/second``, ``10 per minute``, or several joined by ``;``."""
    from limits import parse_many  # only a service with RATE_LIMIT set loads ``limits``

    try:
        limits = parse_many(value)
    except ValueError:
        limits = []
    if not limits or any(limit.amount < 1 for limit in limits):
        raise ConfigurationError(f"RATE_LIMIT must look like 100/second or 1000/minute;20/second, got {value!r}")


def load_config(environ: Mapping[str, str], *, serving: bool = True) -> dict[str, Any]:
    """Build the Flask config from ``environ``; refuse unsafe production setups.

    ``serving=False`` is for commands that answer no HTTP request (``flask db
    upgrade``, the purge): they need no ``API_KEYS``, which only guard the API.
    """
    env = environ.get("ENV", "development").strip() or "development"
    if env not in ENVIRONMENTS:
        raise ConfigurationError(f"ENV must be {' or '.join(ENVIRONMENTS)}, got {env!r}")
    production = env == "production"
    secret_key = environ.get("SECRET_KEY") or None
    api_keys = parse_api_keys(environ.get("API_KEYS"))

    if production:
        required = (("API_KEYS", api_keys), ("SECRET_KEY", secret_key)) if serving else (("SECRET_KEY", secret_key),)
        missing = [name for name, value in required if not value]
        if missing:
            raise ConfigurationError(
                "ENV=production refuses to start without " + " and ".join(missing) + "; set them and start again"
            )
        if secret_key is not None and len(secret_key.strip()) < PRODUCTION_SECRET_KEY_MIN_LENGTH:
            raise ConfigurationError(
                f"ENV=production needs a SECRET_KEY of at least {PRODUCTION_SECRET_KEY_MIN_LENGTH} characters "
                "(e.g. python3 -c 'import secrets; print(secrets.token_urlsafe(48))')"
            )

    rate_limit = (environ.get("RATE_LIMIT") or "").strip() or None
    if rate_limit is not None:
        _check_rate_limit(rate_limit)

    database_url = _database_url(environ)
    return {
        "ENV": env,
        "SECRET_KEY": secret_key or DEVELOPMENT_SECRET_KEY,
        "SECRET_KEY_IS_DEFAULT": secret_key is None,
        # None means "a SQLite file in the instance folder", resolved by the factory.
        "SQLALCHEMY_DATABASE_URI": database_url,
        "DB_STATEMENT_TIMEOUT_MS": _int(environ, "DB_STATEMENT_TIMEOUT_MS", 5000, minimum=0),
        "DB_CONNECT_TIMEOUT": _int(environ, "DB_CONNECT_TIMEOUT", 3, minimum=1),
        "DB_POOL_SIZE": _int(environ, "DB_POOL_SIZE", 5, minimum=1),
        "DB_MAX_OVERFLOW": _int(environ, "DB_MAX_OVERFLOW", 5, minimum=0),
        "DB_POOL_TIMEOUT": _int(environ, "DB_POOL_TIMEOUT", 5, minimum=1),
        "CACHE_TTL": _int(environ, "CACHE_TTL", 30, minimum=1),
        # A session is looked up in (and stored to) Redis from its this-many-th
        # read in a process lately (service.cache.admission); 1 caches every read.
        "CACHE_MIN_READS": _int(environ, "CACHE_MIN_READS", 2, minimum=1, maximum=100),
        "VERIFICATION_CODE_TTL": _int(environ, "VERIFICATION_CODE_TTL", 600, minimum=1),
        "VERIFICATION_RESEND_COOLDOWN": _int(environ, "VERIFICATION_RESEND_COOLDOWN", 30, minimum=0),
        "REDIS_URL": environ.get("REDIS_URL") or None,
        # Redis is optional: a call that takes longer gives up, and after a
        # failure the service leaves Redis alone for the retry interval.
        "REDIS_TIMEOUT_MS": _int(environ, "REDIS_TIMEOUT_MS", 250, minimum=1),
        "REDIS_RETRY_INTERVAL": _int(environ, "REDIS_RETRY_INTERVAL", 2, minimum=0),
        "API_KEYS": api_keys,
        "RATE_LIMIT": rate_limit,
        # How many proxies in front of the service append to X-Forwarded-For
        # (the client address counts unauthenticated requests); 0 trusts none.
        "TRUSTED_PROXY_COUNT": _int(environ, "TRUSTED_PROXY_COUNT", 0, minimum=0),
        "LOG_LEVEL": _log_level(environ),
        # Bodies over 64 KiB are refused with 413 before they are parsed.
        "MAX_CONTENT_LENGTH": 64 * 1024,
    }
