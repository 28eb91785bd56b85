"""The optional Redis cache: the link, cached representations, and their invalidation."""

from flask import Flask

from service.cache import invalidation, redis_link, representations


def init_app(app: Flask) -> None:
    """The Redis link (when ``REDIS_URL`` is set), the representation cache on it,
    and the invalidation of what committed writes changed."""
    redis_link.init_app(app)
    representations.init_app(app)
    invalidation.init_app(app)
