"""Security: API keys and the per-key rate limit, checked before any view runs."""

from flask import Flask

from service.security import api_keys, ratelimit


def init_app(app: Flask) -> None:
    """The rate limiter first: the API-key guard counts every request against it."""
    ratelimit.init_app(app)
    api_keys.init_app(app)
