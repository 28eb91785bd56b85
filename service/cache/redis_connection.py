"""One connection to Redis: commands out, replies in, on hiredis.

The service asks little of Redis (``GET``, ``PING``, and three Lua scripts),
so it speaks to it through hiredis, Redis's own protocol library: hiredis packs
each command and parses each reply; this module only keeps the socket. The
full client (``redis-py``) costs about 2.8 MiB in every worker for commands,
pools, clusters and an asyncio twin the service never runs, and 1.7 times the
instructions per command (callgrind: 26 k against 15.5 k for a ``GET``).

hiredis is imported by the first connection made: a service without
``REDIS_URL`` never loads it.

Every call is bounded by the timeout: connecting, sending and each wait for
a reply. A connection that timed out, or broke, is closed (a reply may still be
on its way) and the next call makes a new one.
"""

from __future__ import annotations

import hashlib
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

DEFAULT_PORT = 6379
_READ_SIZE = 65536

Argument = str | int | bytes


class RedisError(Exception):
    """Redis did not do what was asked: unreachable, too slow, or it refused."""


class RedisConnectionError(RedisError):
    """No answer: the connection could not be made, broke, or timed out."""


class RedisReplyError(RedisError):
    """Redis answered with an error (``ERR …``, ``NOSCRIPT …``, ``OOM …``)."""

    @property
    def code(self) -> str:
        """The error's first word, as Redis names its kind."""
        return str(self).split(" ", 1)[0]


@dataclass(frozen=True)
class RedisAddress:
    """Where Redis listens and how to log in, read from ``REDIS_URL``:
    ``redis://[[user]:password@]host[:port][/db]``, ``rediss://`` for TLS, or
    ``unix:///path/to/socket[?db=N]``."""

    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    path: str | None = None
    tls: bool = False
    username: str | None = None
    password: str | None = None
    db: int = 0

    @classmethod
    def from_url(cls, url: str) -> RedisAddress:
        parts = urlsplit(url)
        if parts.scheme not in ("redis", "rediss", "unix"):
            raise ValueError("REDIS_URL must start with redis://, rediss:// or unix://")
        query = parse_qs(parts.query)
        db_text = parts.path.lstrip("/") if parts.scheme != "unix" else ""
        try:
            db = int(db_text or query.get("db", ["0"])[0])
        except ValueError:
            raise ValueError("REDIS_URL names its database by number: redis://host:6379/0") from None
        username = unquote(parts.username) if parts.username else None
        password = unquote(parts.password) if parts.password is not None else None
        if parts.scheme == "unix":
            return cls(path=parts.path, db=db, username=username, password=password)
        return cls(
            host=parts.hostname or "127.0.0.1",
            port=parts.port or DEFAULT_PORT,
            tls=parts.scheme == "rediss",
            db=db,
            username=username,
            password=password,
        )


class RedisConnection:
    """A socket to Redis, made on the first call. Not for sharing between
    threads: each thread keeps one (``service.cache.redis_link``)."""

    def __init__(self, address: RedisAddress, *, timeout_seconds: float) -> None:
        self.address = address
        self.timeout_seconds = timeout_seconds
        import hiredis

        self._pack = hiredis.pack_command
        self._new_reader = hiredis.Reader
        self._error_reply = hiredis.ReplyError
        self._garbled = hiredis.ProtocolError
        self._socket: socket.socket | None = None
        self._reader = self._new_reader()

    def call(self, *args: Argument) -> Any:
        """Send one command and return its reply; raise :class:`RedisReplyError`
        for an error reply, :class:`RedisConnectionError` for no reply in time."""
        sock = self._socket or self._connect()
        try:
            sock.sendall(self._pack(args))  # type: ignore[arg-type]  # its stub allows one-element tuples only
            reply = self._read(sock)
        except (OSError, RedisConnectionError, self._garbled) as error:
            self.close()
            raise RedisConnectionError(f"{type(error).__name__} talking to Redis") from error
        if isinstance(reply, self._error_reply):
            raise RedisReplyError(str(reply))
        return reply

    def close(self) -> None:
        """Drop the socket (and whatever part of a reply it held); the next call reconnects."""
        if self._socket is not None:
            self._socket.close()
            self._socket = None
        self._reader = self._new_reader()

    def _read(self, sock: socket.socket) -> Any:
        reader = self._reader
        reply = reader.gets()
        while reply is False:
            data = sock.recv(_READ_SIZE)
            if not data:
                raise RedisConnectionError("Redis closed the connection")
            reader.feed(data)
            reply = reader.gets()
        return reply

    def _connect(self) -> socket.socket:
        address = self.address
        try:
            if address.path is not None:
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                sock.settimeout(self.timeout_seconds)
                sock.connect(address.path)
            else:
                sock = socket.create_connection((address.host, address.port), timeout=self.timeout_seconds)
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                if address.tls:
                    import ssl

                    sock = ssl.create_default_context().wrap_socket(sock, server_hostname=address.host)
        except OSError as error:
            raise RedisConnectionError(f"{type(error).__name__} connecting to Redis") from error
        self._socket = sock
        self._reader = self._new_reader()
        try:
            if address.password is not None:
                login = (address.username, address.password) if address.username else (address.password,)
                self.call("AUTH", *login)
            if address.db:
                self.call("SELECT", address.db)
        except RedisError:
            self.close()
            raise
        return sock


class Script:
    """A Lua script, run by its digest (``EVALSHA``): a server that does not
    know it (restarted, ``SCRIPT FLUSH``) is sent it whole once (``EVAL``),
    which also loads it."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.sha = hashlib.sha1(source.encode(), usedforsecurity=False).hexdigest()

    def run(self, connection: RedisConnection, keys: Sequence[str], args: Sequence[Argument]) -> Any:
        try:
            return connection.call("EVALSHA", self.sha, len(keys), *keys, *args)
        except RedisReplyError as error:
            if error.code != "NOSCRIPT":
                raise
        return connection.call("EVAL", self.source, len(keys), *keys, *args)
