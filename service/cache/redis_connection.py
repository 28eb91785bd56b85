"""One connection to Redis: commands out, replies in, on hiredis.

The service asks little of Redis (``GET``, ``PING``, and three Lua scripts),
so it speaks to it through hiredis, Redis's own protocol library: hiredis packs
each command and parses each reply; this module only keeps the socket. The
full client (``redis-py``) costs about 2.8 MiB in every worker for commands,
pools, clusters and an asyncio twin the service never runs, and twice the
instructions per command (callgrind: 26 k against 13 k for a ``GET``).

hiredis is imported by the first connection made: a service without
``REDIS_URL`` never loads it.

Every step of a call is bounded by the timeout: resolving the host name (on
a thread of its own, since the resolver takes no timeout), connecting (to
each address the name resolves to), the TLS handshake, logging in, sending,
and each wait for a reply. A connection that timed out, broke, or reaches a
server that stopped serving (``READONLY`` after a failover, ``LOADING``) is
closed, since a reply may still be on its way, and the next call makes a new one;
so is one the server closed while it was idle, before it is used again.
"""

from __future__ import annotations

import hashlib
import select
import socket
from collections.abc import Sequence
from typing import Any

from service.cache.redis_address import RedisAddress, connect_tcp, tls_context

_READ_SIZE = 65536
# Error replies after which the connection is not worth keeping: the server it
# reaches is no longer a primary that serves (a failover), or is still loading.
_DROP_AFTER = frozenset({"READONLY", "LOADING", "MASTERDOWN"})

Argument = str | int | bytes


class RedisError(Exception):
    """Redis did not do what was asked: unreachable, too slow, or it refused."""


class RedisConnectionError(RedisError):
    """No answer: the connection could not be made, broke, timed out, or spoke something other than Redis."""


class RedisReplyError(RedisError):
    """Redis answered with an error (``ERR …``, ``NOSCRIPT …``, ``OOM …``)."""

    @property
    def code(self) -> str:
        """The error's first word, as Redis names its kind."""
        return str(self).split(" ", 1)[0]


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
        self._poller: select.poll | None = None
        self._reader = self._new_reader()

    def call(self, *args: Argument) -> Any:
        """Send one command and return its reply; raise :class:`RedisReplyError`
        for an error reply, :class:`RedisConnectionError` when there is no reply
        (no connection, a timeout, a broken or garbled one)."""
        sock = self._socket
        if sock is None or self._closed_by_server(sock):
            sock = self._connect()
        return self._exchange(sock, args)

    def _exchange(self, sock: socket.socket, args: tuple[Argument, ...]) -> Any:
        try:
            sock.sendall(self._pack(args))  # type: ignore[arg-type]  # its stub allows one-element tuples only
            reply = self._read(sock)
        except (OSError, RedisConnectionError, self._garbled) as error:
            self.close()
            raise RedisConnectionError(f"{type(error).__name__} talking to Redis") from error
        except BaseException:
            self.close()  # whatever interrupted it, a reply may still be on its way
            raise
        if isinstance(reply, self._error_reply):
            refusal = RedisReplyError(str(reply))
            if refusal.code in _DROP_AFTER:
                self.close()  # the next call connects again, to whatever now serves the address
            raise refusal
        return reply

    def close(self) -> None:
        """Drop the socket (and whatever part of a reply it held); the next call reconnects."""
        if self._socket is not None:
            self._socket.close()
            self._socket = None
            self._poller = None
        self._reader = self._new_reader()

    def _closed_by_server(self, sock: socket.socket) -> bool:
        """Whether the server closed this idle connection (its ``timeout``, a restart):
        a look at the socket, without waiting, before it is used again. (Not for TLS,
        whose socket is readable for records of its own; a closed one shows on the call.)"""
        if self._poller is None or not self._poller.poll(0):
            return False  # nothing to read: open and idle, the usual case
        try:
            closed = sock.recv(1, socket.MSG_PEEK) == b""  # readable: answers at once
        except OSError:
            closed = True  # reset
        if closed:
            self.close()
        return closed

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
        sock: socket.socket | None = None
        try:
            if address.path is not None:
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                sock.settimeout(self.timeout_seconds)
                sock.connect(address.path)
            else:
                sock = connect_tcp(address.host, address.port, self.timeout_seconds)
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                if address.tls:
                    context = tls_context(address.verify_tls, address.ca_file)
                    sock = context.wrap_socket(sock, server_hostname=address.host)
        except (OSError, ValueError) as error:  # ValueError: a name no resolver takes
            if sock is not None:
                sock.close()
            raise RedisConnectionError(f"{type(error).__name__} connecting to Redis") from error
        self._socket = sock
        self._reader = self._new_reader()
        if not address.tls:
            self._poller = select.poll()
            self._poller.register(sock, select.POLLIN)
        try:
            if address.password is not None:
                login = (address.username, address.password) if address.username else (address.password,)
                self._exchange(sock, ("AUTH", *login))
            if address.db:
                self._exchange(sock, ("SELECT", address.db))
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
