"""Erasure erases: after a purge (the endpoint or the purge command) nothing
the service keeps holds the session's uuid, name or e-mail: no table row, no
stored idempotent response, no Redis key or value; and its logs never had
them.

The scans are blunt on purpose: every row of every table in the database,
read as text, and every key and value in the test's Redis database. A second
session, not purged, proves the scans would have found what they look for.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import inspect, text

from service.extensions import db
from tests.support.redisdb import shared_redis_url

MakeApp = Callable[..., Flask]


@pytest.fixture
def cached_app(make_configured_app: MakeApp) -> Iterator[Flask]:
    """An app on the shared test Redis (every read asks it), logging at DEBUG:
    whatever any logger would say, the test sees."""
    root = logging.getLogger()
    level = root.level
    redis_url = shared_redis_url()
    redis.Redis.from_url(redis_url, socket_timeout=2).ping()
    yield make_configured_app(REDIS_URL=redis_url, CACHE_MIN_READS="1", LOG_LEVEL="DEBUG")
    root.setLevel(level)


class Person:
    """A session's identifying data, unique to the test, and where it is."""

    def __init__(self, label: str) -> None:
        tag = uuid.uuid4().hex[:12]
        self.name = f"{label} Erasable {tag}"
        self.email = f"{label.lower()}.{tag}@Example.org"
        self.uuid = ""

    @property
    def path(self) -> str:
        return f"/user-sessions/{self.uuid}"

    def needles(self) -> dict[str, str]:
        """What must not be found, lower case (searches are case-insensitive)."""
        return {
            "uuid": self.uuid,
            "uuid as hex": uuid.UUID(self.uuid).hex,
            "name": self.name.lower(),
            "email": self.email.lower(),
        }


def key() -> dict[str, str]:
    return {"Idempotency-Key": f"erasure-{uuid.uuid4()}"}


def live_through_everything(client: FlaskClient, person: Person) -> None:
    """Everything that leaves a trace: an idempotent create, cached reads, a
    PATCH (a fence), verification, soft delete and an idempotent restore,
    and answers that log warnings."""
    created = client.post(
        "/user-sessions",
        json={"name": person.name, "email": person.email, "metadata": {"who": person.name}},
        headers=key(),
    )
    assert created.status_code == 201, created.get_json()
    person.uuid = created.get_json()["uuid"]
    for _ in range(2):
        assert client.get(person.path).status_code == 200
    assert client.patch(person.path, json={"metadata": {"contact": person.email}}).status_code == 200
    assert client.get(person.path).status_code == 200
    code = client.post(person.path + "/email-verification").get_json()["code"]
    wrong = f"{(int(code) + 1) % 1_000_000:06d}"
    assert client.post(person.path + "/email-verification/check", json={"code": wrong}).status_code == 422
    checked = client.post(person.path + "/email-verification/check", json={"code": code}, headers=key())
    assert checked.status_code == 200
    # Refusals: a stale If-Match, a uuid taken, a bad e-mail (its value is in the 422's errors).
    assert client.patch(person.path, json={"name": "x"}, headers={"If-Match": '"99"'}).status_code == 412
    again = client.post("/user-sessions", json={"uuid": person.uuid, "name": person.name}, headers=key())
    assert again.status_code == 409
    assert client.patch(person.path, json={"email": f"not an address {person.email}"}).status_code == 422
    assert client.delete(person.path).status_code == 204
    assert client.post(person.path + "/restore", headers=key()).status_code == 200
    for _ in range(2):
        assert client.get(person.path).status_code == 200


def purge_with_the_endpoint(_app: Flask, client: FlaskClient, person: Person) -> None:
    assert client.delete(person.path + "?purge=true").status_code == 204


def purge_with_the_command(app: Flask, client: FlaskClient, person: Person) -> None:
    assert client.delete(person.path).status_code == 204
    result = app.test_cli_runner().invoke(args=["user-sessions", "purge", "--deleted-before", "0s"])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("purged 1 user sessions")


PURGES = {"endpoint": purge_with_the_endpoint, "command": purge_with_the_command}


def database_text(app: Flask) -> dict[str, str]:
    """Every row of every table in the database, as lower-case text, by table."""
    found: dict[str, str] = {}
    with app.app_context(), db.engine.connect() as connection:
        for table in inspect(connection).get_table_names():
            rows = connection.execute(text(f'SELECT * FROM "{table}"')).all()  # noqa: S608 (names from the schema)
            found[table] = "\n".join(" | ".join(as_text(value) for value in row) for row in rows).lower()
    return found


def as_text(value: Any) -> str:
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).decode("utf-8", errors="replace")
    return str(value)


def redis_text(store: redis.Redis) -> str:
    """Every key and value in the Redis database, as lower-case text."""
    parts: list[str] = []
    for name in store.scan_iter(count=1000):
        parts.append(as_text(name))
        kind = as_text(store.type(name))
        if kind == "string":
            value: Any = store.get(name)
        elif kind == "hash":
            value = store.hgetall(name)
        elif kind == "list":
            value = store.lrange(name, 0, -1)
        elif kind == "set":
            value = store.smembers(name)
        elif kind == "zset":
            value = store.zrange(name, 0, -1, withscores=True)
        else:
            value = kind
        parts.append(as_text(value) if isinstance(value, bytes) else repr(value))
    return "\n".join(parts).lower()


def found_in(haystacks: dict[str, str], person: Person) -> list[str]:
    return [
        f"{what} in {where}"
        for where, haystack in haystacks.items()
        for what, needle in person.needles().items()
        if needle.lower() in haystack
    ]


@pytest.mark.parametrize("purge", PURGES.values(), ids=PURGES.keys())
def test_after_a_purge_no_table_redis_key_or_log_line_holds_the_session(
    cached_app: Flask, purge: Callable[[Flask, FlaskClient, Person], None], capsys: pytest.CaptureFixture[str]
) -> None:
    client = cached_app.test_client()
    store = redis.Redis.from_url(shared_redis_url())
    erased, kept = Person("Ada"), Person("Grace")
    for person in (erased, kept):
        live_through_everything(client, person)
    stored_before = {**database_text(cached_app), "redis": redis_text(store)}
    assert "name in idempotency_records" in found_in(stored_before, erased), "the scans find what is there"
    assert "name in redis" in found_in(stored_before, erased)

    purge(cached_app, client, erased)

    stored = {**database_text(cached_app), "redis": redis_text(store)}
    assert found_in(stored, erased) == []
    # The other session keeps everything: its row, its stored responses, its cache entry.
    assert {"name in user_sessions", "name in idempotency_records", "email in idempotency_records"} <= set(
        found_in(stored, kept)
    )
    assert client.get(kept.path).status_code == 200
    assert "name in redis" in found_in({"redis": redis_text(store)}, kept)

    logged = capsys.readouterr()
    log_text = {"stdout": logged.out.lower(), "stderr": logged.err.lower()}
    assert '"route": "/user-sessions/{user_session_uuid}"' in log_text["stdout"], "the request lines were read"
    assert found_in(log_text, erased) == []
    assert found_in(log_text, kept) == []


def test_a_replayed_key_of_a_purged_session_does_not_answer_its_data(cached_app: Flask) -> None:
    """The stored response went with the session: the key is unknown again."""
    client = cached_app.test_client()
    person = Person("Alan")
    same_key = key()
    body = {"name": person.name, "email": person.email}
    created = client.post("/user-sessions", json=body, headers=same_key)
    assert created.status_code == 201
    person.uuid = created.get_json()["uuid"]
    replayed = client.post("/user-sessions", json=body, headers=same_key)
    assert replayed.headers.get("Idempotent-Replayed") == "true"
    assert client.delete(person.path + "?purge=true").status_code == 204

    after = client.post("/user-sessions", json=body, headers=same_key)
    assert "Idempotent-Replayed" not in after.headers
    assert after.status_code == 201
    assert after.get_json()["uuid"] != person.uuid
