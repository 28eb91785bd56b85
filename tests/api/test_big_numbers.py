"""Integers beyond 64 bits in metadata come back exactly, from every read."""

from __future__ import annotations

import json

from flask.testing import FlaskClient

BIG = 1237940039285380274899124224  # 2**90


def test_an_integer_beyond_64_bits_survives_create_read_and_list(client: FlaskClient) -> None:
    created = client.post(
        "/user-sessions", data=json.dumps({"metadata": {"n": BIG, "m": -BIG}}), content_type="application/json"
    )
    assert created.status_code == 201
    assert created.get_json()["metadata"] == {"n": BIG, "m": -BIG}
    read = client.get(created.headers["Location"])
    assert read.get_json()["metadata"] == {"n": BIG, "m": -BIG}
    listed = client.get("/user-sessions")
    assert [item["metadata"] for item in listed.get_json()["items"]] == [{"n": BIG, "m": -BIG}]
