"""Where Redis listens, read from ``REDIS_URL``, and how to reach it within a timeout."""

from __future__ import annotations

import functools
import ipaddress
import socket
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, unquote, urlsplit

if TYPE_CHECKING:
    import ssl

DEFAULT_PORT = 6379


@dataclass(frozen=True)
class RedisAddress:
    """Where Redis listens and how to log in, read from ``REDIS_URL``: see
    :data:`URL_FORMS`. Options: ``db``, and for ``rediss://`` ``ssl_cert_reqs``
    (``required``, the default, or ``none``) and ``ssl_ca_certs`` (a CA file)."""

    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    path: str | None = None
    tls: bool = False
    verify_tls: bool = True
    ca_file: str | None = None
    username: str | None = None
    password: str | None = None
    db: int = 0

    @classmethod
    def from_url(cls, url: str) -> RedisAddress:
        """The address ``url`` names; a ValueError that says what is wrong, never
        quoting the URL (it may hold a password), when it cannot be read."""
        try:
            parts = urlsplit(url)
            port, hostname = parts.port, parts.hostname
        except ValueError:
            raise _unreadable("it is not a URL (percent-encode # ? / @ in a password)") from None
        if parts.scheme not in ("redis", "rediss", "unix"):
            raise _unreadable("it must start with redis://, rediss:// or unix://")
        options = {name: values[-1] for name, values in parse_qs(parts.query, keep_blank_values=True).items()}
        if not options.keys() <= _OPTIONS:
            raise _unreadable(f"it has an option other than {', '.join(sorted(_OPTIONS))}")
        db_text = options.get("db") or (parts.path.lstrip("/") if parts.scheme != "unix" else "") or "0"
        if not (db_text.isascii() and db_text.isdigit()):
            raise _unreadable("its database is a number, 0 or more")
        if (parts.scheme != "rediss") and options.keys() & {"ssl_cert_reqs", "ssl_ca_certs"}:
            raise _unreadable("ssl_cert_reqs and ssl_ca_certs are for rediss://")
        if options.get("ssl_cert_reqs", "required") not in ("required", "none"):
            raise _unreadable("ssl_cert_reqs is required or none")
        username = unquote(parts.username) if parts.username else None
        password = unquote(parts.password) if parts.password else None
        if parts.scheme == "unix":
            if hostname or port is not None or not parts.path:
                raise _unreadable("unix:// takes a path and no host: unix:///run/redis.sock")
            return cls(path=unquote(parts.path), username=username, password=password, db=int(db_text))
        host = hostname or "127.0.0.1"
        try:
            if ":" not in host:  # an IPv6 address has no labels to encode
                host.encode("idna")
        except UnicodeError:
            raise _unreadable("its host is not a valid host name") from None
        if port == 0:
            raise _unreadable("its port is 1 to 65535")
        return cls(
            host=host,
            port=port or DEFAULT_PORT,
            tls=parts.scheme == "rediss",
            verify_tls=options.get("ssl_cert_reqs", "required") == "required",
            ca_file=options.get("ssl_ca_certs") or None,
            username=username,
            password=password,
            db=int(db_text),
        )


URL_FORMS = "redis://[[user]:password@]host[:port][/db], rediss://… (TLS) or unix:///path/to/socket[?db=N]"
_OPTIONS = frozenset({"db", "ssl_cert_reqs", "ssl_ca_certs"})


def _unreadable(reason: str) -> ValueError:
    return ValueError(f"REDIS_URL cannot be read: {reason}. Its forms: {URL_FORMS}")


@functools.lru_cache(maxsize=4)
def tls_context(verify: bool, ca_file: str | None) -> ssl.SSLContext:
    """One context per kind of verification (loading the CA bundle is not free)."""
    import ssl

    context = ssl.create_default_context(cafile=ca_file)
    if not verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def connect_tcp(host: str, port: int, timeout: float) -> socket.socket:
    """A TCP connection to the first address of ``host`` that takes one, each
    step within ``timeout`` (``socket.create_connection``, with the name
    resolved within it too)."""
    error: OSError | None = None
    for family, kind, protocol, _name, address in _resolve(host, port, timeout):
        sock = socket.socket(family, kind, protocol)
        try:
            sock.settimeout(timeout)
            sock.connect(address)
        except OSError as failed:
            sock.close()
            error = failed
            continue
        return sock
    raise error or OSError(f"{host} resolves to no address")


def _resolve(host: str, port: int, timeout: float) -> list[tuple[Any, ...]]:
    """``getaddrinfo`` for a TCP connection, given up on after ``timeout``
    seconds (the lookup runs on in its own thread, whose answer is dropped)."""
    try:
        ipaddress.ip_address(host)
    except ValueError:
        pass
    else:  # an address: nothing to look up
        return socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    answer: list[list[tuple[Any, ...]] | BaseException] = []
    done = threading.Event()

    def look_up() -> None:
        try:
            answer.append(socket.getaddrinfo(host, port, type=socket.SOCK_STREAM))
        except BaseException as error:  # handed to the caller
            answer.append(error)
        done.set()

    threading.Thread(target=look_up, name="redis-resolver", daemon=True).start()
    if not done.wait(timeout):
        raise TimeoutError(f"resolving the Redis host took more than {timeout} s")
    if isinstance(answer[0], BaseException):
        raise answer[0]
    return answer[0]
