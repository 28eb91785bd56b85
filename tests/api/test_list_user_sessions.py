"""``GET /user-sessions``: the page shape, the tokens, each filter and every bad parameter."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import timedelta, timezone
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from itsdangerous import URLSafeSerializer

from service.api.page_tokens import make_page_token
from service.repositories import Keyset
from service.schemas.fields import format_datetime, parse_datetime
from tests.support.listing import list_all

CreateSession = Callable[..., dict[str, Any]]


def listing(client: FlaskClient, query: Any = None) -> Any:
    response = client.get("/user-sessions", query_string=query or [])
    assert response.status_code == 200, response.get_json()
    return response


def uuids(response: Any) -> list[str]:
    return [item["uuid"] for item in response.get_json()["items"]]


def assert_bad_parameter(client: FlaskClient, query: Any, parameter: str) -> dict[str, Any]:
    response = client.get("/user-sessions", query_string=query)
    assert response.status_code == 400, response.get_json()
    assert response.mimetype == "application/problem+json"
    body: dict[str, Any] = response.get_json()
    assert body["code"] == "INVALID_QUERY_PARAMETER"
    assert body["status"] == 400
    assert list(body["errors"]) == [parameter], body["errors"]
    assert all(isinstance(message, str) for message in body["errors"][parameter])
    return body


class TestPages:
    def test_an_empty_listing_is_one_empty_last_page(self, client: FlaskClient) -> None:
        response = listing(client)
        assert response.get_json() == {"items": [], "next_page_token": None}
        assert "Link" not in response.headers
        assert response.headers["Cache-Control"] == "private, no-cache"

    def test_items_are_full_representations_newest_first(
        self, client: FlaskClient, create_session: CreateSession
    ) -> None:
        first = create_session(name="first", metadata={"a": 1})
        second = create_session(name="second")
        response = listing(client)
        assert response.get_json() == {"items": [second, first], "next_page_token": None}

    def test_every_page_but_the_last_is_full_and_links_to_the_next(
        self, client: FlaskClient, create_session: CreateSession
    ) -> None:
        made = [create_session()["uuid"] for _ in range(5)][::-1]
        first = listing(client, {"limit": "2", "consent_user_data": "false"})
        token = first.get_json()["next_page_token"]
        assert uuids(first) == made[:2]
        link = first.headers["Link"]
        assert link.startswith("</user-sessions?")
        assert link.endswith('>; rel="next"')
        assert parse_qsl(urlsplit(link[1 : -len('>; rel="next"')]).query) == [
            ("limit", "2"),
            ("consent_user_data", "false"),
            ("page_token", token),
        ]
        second = client.get(link[1 : -len('>; rel="next"')])
        assert uuids(second) == made[2:4]
        third = listing(
            client, {"limit": "2", "consent_user_data": "false", "page_token": second.get_json()["next_page_token"]}
        )
        assert uuids(third) == made[4:]
        assert third.get_json()["next_page_token"] is None
        assert "Link" not in third.headers

    def test_the_link_keeps_the_query_as_sent_and_replaces_any_old_token(
        self, client: FlaskClient, create_session: CreateSession
    ) -> None:
        for _ in range(3):
            create_session(metadata={"city": "M\u00fcnchen"})
        # An encoded parameter name, an empty token, a repeated key, an escaped
        # offset, and raw UTF-8 bytes, which the link escapes.
        sent = "limit=1&page%5Ftoken=&metadata.city=M%C3%BCnchen&created_after=2026-01-01T00:00:00%2B02:00"
        raw = "&metadata.city=M\u00fcnchen".encode().decode("latin-1")
        first = client.get("/user-sessions", environ_overrides={"QUERY_STRING": sent + raw})
        assert first.status_code == 200, first.get_json()
        token = first.get_json()["next_page_token"]
        link = first.headers["Link"]
        assert link == (
            "</user-sessions?limit=1&metadata.city=M%C3%BCnchen&created_after=2026-01-01T00:00:00%2B02:00"
            f'&metadata.city=M%C3%BCnchen&page_token={token}>; rel="next"'
        )
        second = client.get(link[1 : -len('>; rel="next"')])
        assert second.status_code == 200
        assert second.get_json()["items"][0]["uuid"] != first.get_json()["items"][0]["uuid"]

    def test_a_listing_that_ends_on_a_full_page_needs_no_empty_page_after_it(
        self, client: FlaskClient, create_session: CreateSession
    ) -> None:
        for _ in range(4):
            create_session()
        first = listing(client, {"limit": "2"})
        second = listing(client, {"limit": "2", "page_token": first.get_json()["next_page_token"]})
        assert len(uuids(second)) == 2
        assert second.get_json()["next_page_token"] is None
        assert "Link" not in second.headers

    def test_limit_and_count_may_change_between_pages(self, client: FlaskClient, create_session: CreateSession) -> None:
        made = [create_session()["uuid"] for _ in range(6)][::-1]
        first = listing(client, {"limit": "1", "count": "true"})
        assert first.get_json()["total_count"] == 6
        token = first.get_json()["next_page_token"]
        second = listing(client, {"limit": "3", "page_token": token})
        assert uuids(second) == made[1:4]
        assert "total_count" not in second.get_json()
        third = listing(client, {"limit": "500", "count": "true", "page_token": second.get_json()["next_page_token"]})
        assert uuids(third) == made[4:]
        assert third.get_json()["total_count"] == 6  # every match, not what is left

    def test_count_counts_what_the_filters_match(self, client: FlaskClient, create_session: CreateSession) -> None:
        create_session(consent_user_data=True)
        create_session(consent_user_data=False)
        gone = create_session(consent_user_data=True)
        assert client.delete(f"/user-sessions/{gone['uuid']}").status_code == 204
        body = listing(client, {"count": "true", "consent_user_data": "true"}).get_json()
        assert body["total_count"] == 1
        assert listing(client, {"count": "false"}).get_json().keys() == {"items", "next_page_token"}

    def test_an_empty_page_token_asks_for_the_first_page(
        self, client: FlaskClient, create_session: CreateSession
    ) -> None:
        made = create_session()
        assert uuids(listing(client, {"page_token": ""})) == [made["uuid"]]

    def test_a_token_from_another_instance_with_the_same_key_is_accepted(
        self, app: Flask, client: FlaskClient, create_session: CreateSession
    ) -> None:
        older, newer = create_session(), create_session()
        keyset = Keyset((parse_datetime(newer["created_at"]), uuid.UUID(newer["uuid"])))
        scope = {"filters": _default_filters(), "sort": "-created_at"}
        token = make_page_token(keyset, scope, secret_key=app.config["SECRET_KEY"])
        assert uuids(listing(client, {"page_token": token})) == [older["uuid"]]


def _default_filters() -> dict[str, Any]:
    return {
        "email": None,
        "is_email_verified": None,
        "consent_user_data": None,
        "completed": None,
        "created_after": None,
        "created_before": None,
        "updated_after": None,
        "updated_before": None,
        "deleted": "exclude",
        "metadata": (),
    }


class TestFilters:
    def test_email_matches_exactly_whatever_the_case(self, client: FlaskClient, create_session: CreateSession) -> None:
        kept = create_session(email="Ana.Garcia@Example.com")
        create_session(email="ana.garcia@example.org")
        create_session(email="xana.garcia@example.com")
        create_session()
        assert uuids(listing(client, {"email": "ANA.GARCIA@example.COM"})) == [kept["uuid"]]
        assert listing(client, {"email": "ana.garcia@example.com"}).get_json()["items"][0]["email"] == (
            "Ana.Garcia@Example.com"
        )

    @pytest.mark.parametrize("field", ["consent_user_data"])
    def test_booleans_select_true_or_false(
        self, client: FlaskClient, create_session: CreateSession, field: str
    ) -> None:
        yes, no = create_session(**{field: True}), create_session(**{field: False})
        assert uuids(listing(client, {field: "true"})) == [yes["uuid"]]
        assert uuids(listing(client, {field: "false"})) == [no["uuid"]]

    def test_is_email_verified_selects_unverified_sessions(
        self, client: FlaskClient, create_session: CreateSession
    ) -> None:
        made = create_session(email="a@example.com")
        assert uuids(listing(client, {"is_email_verified": "false"})) == [made["uuid"]]
        assert uuids(listing(client, {"is_email_verified": "true"})) == []

    def test_completed_selects_by_completed_at(self, client: FlaskClient, create_session: CreateSession) -> None:
        done = create_session(completed_at="2026-01-01T00:00:00Z")
        open_ = create_session()
        assert uuids(listing(client, {"completed": "true"})) == [done["uuid"]]
        assert uuids(listing(client, {"completed": "false"})) == [open_["uuid"]]

    def test_a_bound_read_back_from_a_session_excludes_it(
        self, client: FlaskClient, create_session: CreateSession
    ) -> None:
        old, middle, new = create_session(), create_session(), create_session()
        at = middle["created_at"]
        assert uuids(listing(client, {"created_after": at})) == [new["uuid"]]
        assert uuids(listing(client, {"created_before": at})) == [old["uuid"]]
        assert uuids(listing(client, {"created_after": old["created_at"], "created_before": new["created_at"]})) == [
            middle["uuid"]
        ]
        assert uuids(listing(client, {"updated_after": middle["updated_at"]})) == [new["uuid"]]
        assert uuids(listing(client, {"updated_before": middle["updated_at"]})) == [old["uuid"]]

    def test_bounds_take_any_offset_and_a_plus_that_arrived_as_a_space(
        self, client: FlaskClient, create_session: CreateSession
    ) -> None:
        made = create_session()
        created = parse_datetime(made["created_at"])
        later = (created + timedelta(seconds=1)).astimezone(timezone(timedelta(hours=2)))
        text = later.isoformat()  # ...+02:00
        assert "+02:00" in text
        assert uuids(listing(client, {"created_before": text})) == [made["uuid"]]  # %2B on the wire
        raw = client.get(f"/user-sessions?created_before={text}")  # a bare "+": a space
        assert raw.status_code == 200, raw.get_json()
        assert uuids(raw) == [made["uuid"]]
        assert uuids(listing(client, {"created_after": text})) == []

    def test_deleted_excludes_includes_or_keeps_only_deleted_and_expired(
        self, client: FlaskClient, create_session: CreateSession
    ) -> None:
        live = create_session(ttl_seconds=3600)
        deleted = create_session()
        expired = create_session(ttl_seconds=3600)
        assert client.delete(f"/user-sessions/{deleted['uuid']}").status_code == 204
        patch = client.patch(f"/user-sessions/{expired['uuid']}", json={"expires_at": "2020-01-01T00:00:00Z"})
        assert patch.status_code == 200
        assert uuids(listing(client)) == [live["uuid"]]
        assert uuids(listing(client, {"deleted": "exclude"})) == [live["uuid"]]
        assert uuids(listing(client, {"deleted": "only"})) == [expired["uuid"], deleted["uuid"]]
        assert uuids(listing(client, {"deleted": "include"})) == [expired["uuid"], deleted["uuid"], live["uuid"]]

    def test_metadata_matches_string_values_of_top_level_keys(
        self, client: FlaskClient, create_session: CreateSession
    ) -> None:
        web = create_session(metadata={"channel": "web", "step": "3", "a.b": "x", "nested": {"channel": "ios"}})
        create_session(metadata={"channel": "ios", "step": 3})
        create_session(metadata={"channel": ["web"], "flag": True, "none": None})
        create_session()
        assert uuids(listing(client, {"metadata.channel": "web"})) == [web["uuid"]]
        assert uuids(listing(client, {"metadata.step": "3"})) == [web["uuid"]]  # the number 3 is not "3"
        assert uuids(listing(client, {"metadata.a.b": "x"})) == [web["uuid"]]  # a key with a dot
        assert uuids(listing(client, {"metadata.channel": "ios"})) != [web["uuid"]]
        assert uuids(listing(client, {"metadata.flag": "true"})) == []
        assert uuids(listing(client, {"metadata.none": "null"})) == []
        assert uuids(listing(client, {"metadata.nested": '{"channel": "ios"}'})) == []

    def test_metadata_parameters_are_anded(self, client: FlaskClient, create_session: CreateSession) -> None:
        both = create_session(metadata={"channel": "web", "locale": "de-DE"})
        create_session(metadata={"channel": "web", "locale": "fr-FR"})
        query = [("metadata.channel", "web"), ("metadata.locale", "de-DE")]
        assert uuids(listing(client, query)) == [both["uuid"]]
        assert uuids(listing(client, [("metadata.channel", "web"), ("metadata.channel", "ios")])) == []

    def test_metadata_keys_and_values_may_hold_any_text(
        self, client: FlaskClient, create_session: CreateSession
    ) -> None:
        odd = create_session(metadata={'we"ird \\ key': "ünï 'quoted' \"text\"", "%": "&="})
        assert uuids(listing(client, {'metadata.we"ird \\ key': "ünï 'quoted' \"text\""})) == [odd["uuid"]]
        assert uuids(listing(client, {"metadata.%": "&="})) == [odd["uuid"]]

    def test_filters_combine(self, client: FlaskClient, create_session: CreateSession) -> None:
        match = create_session(email="a@example.com", consent_user_data=True, metadata={"channel": "web"})
        create_session(email="a@example.com", consent_user_data=False, metadata={"channel": "web"})
        create_session(email="b@example.com", consent_user_data=True, metadata={"channel": "web"})
        query = {"email": "A@example.com", "consent_user_data": "true", "metadata.channel": "web", "completed": "false"}
        assert uuids(listing(client, query)) == [match["uuid"]]


class TestSorts:
    @pytest.mark.parametrize(
        ("sort", "order"),
        [("-created_at", [2, 1, 0]), ("created_at", [0, 1, 2]), ("-updated_at", [1, 2, 0]), ("updated_at", [0, 2, 1])],
    )
    def test_each_sort_orders_by_its_column(
        self, client: FlaskClient, create_session: CreateSession, sort: str, order: list[int]
    ) -> None:
        made = [create_session() for _ in range(3)]
        assert client.patch(f"/user-sessions/{made[1]['uuid']}", json={"name": "touched"}).status_code == 200
        expected = [made[index]["uuid"] for index in order]
        assert list_all(client, [("sort", sort)], limit=1) == expected


class TestPageTokens:
    @pytest.fixture
    def token(self, client: FlaskClient, create_session: CreateSession) -> str:
        for _ in range(3):
            create_session(metadata={"channel": "web"})
        response = listing(client, {"limit": "1", "metadata.channel": "web", "sort": "created_at"})
        token: str = response.get_json()["next_page_token"]
        return token

    def test_a_token_continues_its_own_listing(self, client: FlaskClient, token: str) -> None:
        query = {"limit": "1", "metadata.channel": "web", "sort": "created_at", "page_token": token}
        assert len(uuids(listing(client, query))) == 1

    @pytest.mark.parametrize(
        "changed",
        [
            {"sort": "-created_at"},
            {"sort": "updated_at"},
            {"metadata.channel": "ios"},
            {"metadata.channel": "web", "metadata.other": "x"},
            {"deleted": "include"},
            {"email": "a@example.com"},
            {"created_after": "2020-01-01T00:00:00Z"},
        ],
    )
    def test_a_token_with_other_filters_or_another_sort_is_refused(
        self, client: FlaskClient, token: str, changed: dict[str, str]
    ) -> None:
        query = {"limit": "1", "metadata.channel": "web", "sort": "created_at", "page_token": token, **changed}
        body = assert_bad_parameter(client, query, "page_token")
        assert "other filters or another sort" in body["errors"]["page_token"][0]

    def test_a_token_without_its_filters_is_refused(self, client: FlaskClient, token: str) -> None:
        assert_bad_parameter(client, {"page_token": token}, "page_token")

    def test_an_altered_token_is_refused(self, client: FlaskClient, token: str) -> None:
        # A compressed payload starts with "." (itsdangerous): split at the signature's dot.
        payload, signature = token.rsplit(".", 1)
        first = 1 if payload.startswith(".") else 0
        altered = payload[:first] + ("A" if payload[first] != "A" else "B") + payload[first + 1 :] + "." + signature
        # The signature's first character carries six bits of it (the last
        # one's low bits are base64 padding: changing them may change nothing).
        resigned = payload + "." + ("A" if signature[0] != "A" else "B") + signature[1:]
        query = {"limit": "1", "metadata.channel": "web", "sort": "created_at"}
        for bad in (altered, resigned, token + "x"):
            assert_bad_parameter(client, {**query, "page_token": bad}, "page_token")

    @pytest.mark.parametrize("forged", ["garbage", "a.b", "~~~", "eyJ2IjoxfQ", "x" * 2048])
    def test_a_forged_token_is_refused(self, client: FlaskClient, forged: str) -> None:
        assert_bad_parameter(client, {"page_token": forged}, "page_token")

    def test_a_token_signed_with_another_key_is_refused(self, client: FlaskClient) -> None:
        other = URLSafeSerializer("another-secret", salt="user-sessions.page-token")
        forged = other.dumps({"v": 1, "s": "x", "k": []})
        assert_bad_parameter(client, {"page_token": forged}, "page_token")

    def test_a_properly_signed_token_of_an_unknown_shape_is_refused(self, app: Flask, client: FlaskClient) -> None:
        signer = URLSafeSerializer(app.config["SECRET_KEY"], salt="user-sessions.page-token")
        for payload in ({"v": 2, "s": "x", "k": []}, {"v": 1}, ["v"], {"v": 1, "s": "x", "k": [["q", "1"]]}):
            assert_bad_parameter(client, {"page_token": signer.dumps(payload)}, "page_token")

    def test_an_overlong_token_is_refused(self, client: FlaskClient) -> None:
        assert_bad_parameter(client, {"page_token": "x" * 2049}, "page_token")


class TestBadParameters:
    @pytest.mark.parametrize("name", ["bogus", "offset", "metadata", "include_deleted", "Limit"])
    def test_an_unknown_parameter_is_refused_by_name(self, client: FlaskClient, name: str) -> None:
        body = assert_bad_parameter(client, {name: "1"}, name)
        assert body["errors"][name] == ["Unknown query parameter."]

    @pytest.mark.parametrize("name", ["is_email_verified", "consent_user_data", "completed", "count"])
    @pytest.mark.parametrize("value", ["", "1", "0", "yes", "True", "TRUE", "on"])
    def test_a_boolean_is_true_or_false(self, client: FlaskClient, name: str, value: str) -> None:
        assert_bad_parameter(client, {name: value}, name)

    @pytest.mark.parametrize("name", ["created_after", "created_before", "updated_after", "updated_before"])
    @pytest.mark.parametrize(
        "value",
        [
            "",
            "yesterday",
            "2026-01-01",
            "2026-01-01T00:00:00",
            "2026-13-01T00:00:00Z",
            "2026-01-01T00:00:00+25:00",
            "1700000000",
        ],
    )
    def test_a_datetime_is_rfc_3339_with_an_offset(self, client: FlaskClient, name: str, value: str) -> None:
        assert_bad_parameter(client, {name: value}, name)

    @pytest.mark.parametrize("value", ["0", "501", "-1", "", "abc", "1.5", "5_0", " 5", "+5", "99999999999999999999"])
    def test_limit_is_a_whole_number_from_1_to_500(self, client: FlaskClient, value: str) -> None:
        assert_bad_parameter(client, {"limit": value}, "limit")

    @pytest.mark.parametrize("value", ["1", "500"])
    def test_limit_takes_both_ends_of_its_range(self, client: FlaskClient, value: str) -> None:
        listing(client, {"limit": value})

    @pytest.mark.parametrize(
        ("name", "value"),
        [("sort", "name"), ("sort", ""), ("sort", "+created_at"), ("deleted", "all"), ("deleted", "")],
    )
    def test_sort_and_deleted_take_only_their_values(self, client: FlaskClient, name: str, value: str) -> None:
        assert_bad_parameter(client, {name: value}, name)

    @pytest.mark.parametrize("value", ["", "x" * 255])
    def test_an_email_is_not_empty_nor_too_long(self, client: FlaskClient, value: str) -> None:
        assert_bad_parameter(client, {"email": value}, "email")

    @pytest.mark.parametrize("name", ["limit", "sort", "email", "page_token", "count"])
    def test_a_parameter_given_twice_is_refused(self, client: FlaskClient, name: str) -> None:
        body = assert_bad_parameter(client, [(name, "1"), (name, "2")], name)
        assert body["errors"][name] == ["Give this parameter once."]

    @pytest.mark.parametrize(
        ("query", "name"),
        [
            ({"email": "a\x00@example.com"}, "email"),
            ({"metadata.channel": "w\x00b"}, "metadata.channel"),
            ({"metadata.ch\x00": "web"}, "metadata.ch\x00"),
        ],
    )
    def test_a_nul_character_is_refused_not_sent_to_the_database(
        self, client: FlaskClient, query: dict[str, str], name: str
    ) -> None:
        assert_bad_parameter(client, query, name)

    def test_a_metadata_parameter_names_a_key(self, client: FlaskClient) -> None:
        assert_bad_parameter(client, {"metadata.": "web"}, "metadata.")

    def test_every_bad_parameter_is_named_at_once(self, client: FlaskClient) -> None:
        response = client.get(
            "/user-sessions", query_string={"limit": "0", "sort": "x", "completed": "maybe", "z": "1"}
        )
        assert response.status_code == 400
        assert set(response.get_json()["errors"]) == {"limit", "sort", "completed", "z"}


def test_the_openapi_document_describes_the_listing(client: FlaskClient) -> None:
    operation = client.get("/openapi.json").get_json()["paths"]["/user-sessions"]["get"]
    parameters = {parameter["name"]: parameter for parameter in operation["parameters"] if "name" in parameter}
    assert set(parameters) == {
        "email",
        "is_email_verified",
        "consent_user_data",
        "completed",
        "created_after",
        "created_before",
        "updated_after",
        "updated_before",
        "deleted",
        "metadata.KEY",
        "sort",
        "limit",
        "page_token",
        "count",
    }
    assert parameters["limit"]["schema"] == {"type": "integer", "default": 50, "minimum": 1, "maximum": 500}
    assert parameters["created_after"]["schema"]["format"] == "date-time"
    assert "metadata." in operation["description"]
    assert set(operation["responses"]) >= {"200", "400"}


def test_format_of_a_listed_datetime_is_an_exact_bound() -> None:
    moment = parse_datetime("2026-11-27T05:00:00.123456Z")
    assert parse_datetime(format_datetime(moment)) == moment


NAMES = [
    "email",
    "is_email_verified",
    "consent_user_data",
    "completed",
    "created_after",
    "created_before",
    "updated_after",
    "updated_before",
    "deleted",
    "metadata.channel",
    "metadata.",
    "metadata",
    "sort",
    "limit",
    "page_token",
    "count",
]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    query=st.lists(
        st.tuples(
            st.one_of(st.sampled_from(NAMES), st.text(max_size=12)),
            st.one_of(
                st.text(max_size=40),
                st.sampled_from(["true", "0", "50", "-created_at", "only", "9999-12-31T23:59:59-01:00"]),
                st.sampled_from(["0001-01-01T00:00:00+01:00", "2026-01-01T00:00:00.1234567891Z", "1" * 30]),
            ),
        ),
        max_size=5,
    )
)
def test_no_query_string_makes_a_server_error(client: FlaskClient, query: list[tuple[str, str]]) -> None:
    response = client.get("/user-sessions", query_string=query)
    assert response.status_code in (200, 400), response.get_json()
    if response.status_code == 400:
        assert response.get_json()["errors"]
