"""The metadata bound holds on what is stored and served, not on what was sent:
PostgreSQL prints a JSON number in full (1e308 as 309 digits)."""

from __future__ import annotations

import json

from flask.testing import FlaskClient

from service.operations.documents import METADATA_BOUNDS, stored_size
from tests.support.problems import assert_problem

HUGE = [1e308] * 60  # 540 bytes as sent, 18,600 as stored


def test_numbers_count_at_the_length_they_are_printed_back_with() -> None:
    assert stored_size({"n": 1e308}) == len('{"n":' + "1" + "0" * 308 + "}")
    assert stored_size({"n": 1.5}) == len('{"n":1.5}')
    assert stored_size({"n": 1e-7}) == len('{"n":0.0000001}')
    assert stored_size({"n": 10**30}) == len('{"n":' + "1" + "0" * 30 + "}")


def test_a_create_whose_numbers_grow_past_the_bound_is_a_422(client: FlaskClient) -> None:
    assert len(json.dumps({"metadata": {"n": HUGE}})) < METADATA_BOUNDS.max_bytes
    response = client.post("/user-sessions", json={"metadata": {"n": HUGE}})
    problem = assert_problem(response, 422, "VALIDATION_FAILED")
    assert "as stored" in problem["errors"]["metadata"][0]
    assert client.get("/user-sessions?deleted=include").get_json()["items"] == []


def test_a_merge_patch_whose_numbers_grow_past_the_bound_is_a_422(client: FlaskClient) -> None:
    created = client.post("/user-sessions", json={"metadata": {"n": HUGE[:30]}}).get_json()
    response = client.patch(
        f"/user-sessions/{created['uuid']}",
        json={"metadata": {"m": HUGE[:30]}},
        headers={"Content-Type": "application/merge-patch+json"},
    )
    assert_problem(response, 422, "VALIDATION_FAILED")


def test_what_is_served_stays_within_the_bound(client: FlaskClient) -> None:
    created = client.post("/user-sessions", json={"metadata": {"n": HUGE[:50]}})
    assert created.status_code == 201
    served = client.get(f"/user-sessions/{created.get_json()['uuid']}").get_json()["metadata"]
    assert len(json.dumps(served, separators=(",", ":"))) <= METADATA_BOUNDS.max_bytes
