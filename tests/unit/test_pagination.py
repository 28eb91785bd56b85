"""Page tokens on their own: round trip, binding, tampering."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
from itsdangerous import URLSafeSerializer

from service.api import page_tokens
from service.api.listing import listing_scope
from service.api.page_tokens import InvalidPageToken, make_page_token, read_page_token, scope_digest
from service.repositories import Keyset, SortOrder
from service.schemas.user_sessions import UserSessionListArgsSchema

KEY = "unit-test-key"
SCOPE = {"filters": {"email": "a@example.com", "metadata": [["channel", "web"]]}, "sort": "-created_at"}
KEYSET = Keyset(
    (datetime(2026, 11, 27, 5, 0, 0, 123456, tzinfo=UTC), uuid.UUID("0b6f8e3c-6d2a-4f6e-9d3b-1f2e3d4c5b6a"))
)


def test_a_token_gives_back_its_keyset_to_the_same_scope() -> None:
    token = make_page_token(KEYSET, SCOPE, secret_key=KEY)
    assert read_page_token(token, dict(reversed(SCOPE.items())), secret_key=KEY) == KEYSET


def test_a_token_is_url_safe_and_says_nothing_of_the_filters() -> None:
    token = make_page_token(KEYSET, SCOPE, secret_key=KEY)
    assert set(token) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.")
    assert "example" not in token


def test_the_same_page_gets_the_same_token() -> None:
    assert make_page_token(KEYSET, SCOPE, secret_key=KEY) == make_page_token(KEYSET, SCOPE, secret_key=KEY)


@pytest.mark.parametrize(
    "other",
    [
        {**SCOPE, "sort": "created_at"},
        {**SCOPE, "filters": {"email": "b@example.com", "metadata": [["channel", "web"]]}},
        {**SCOPE, "filters": {"email": "a@example.com", "metadata": []}},
    ],
)
def test_a_token_is_refused_for_another_scope(other: dict[str, object]) -> None:
    token = make_page_token(KEYSET, SCOPE, secret_key=KEY)
    with pytest.raises(InvalidPageToken) as raised:
        read_page_token(token, other, secret_key=KEY)
    assert raised.value.status == 400
    assert list(raised.value.errors or {}) == ["page_token"]


def test_a_token_is_never_compressed_and_one_compressed_before_still_reads() -> None:
    """A keyset that zlib would shrink (a long run of zeros) is written plain,
    in itsdangerous's own format; a compressed token, as earlier releases could
    issue, is still read."""
    keyset = Keyset((10**300,))
    token = make_page_token(keyset, SCOPE, secret_key=KEY)
    assert not token.startswith(".")
    stock = URLSafeSerializer(KEY, salt="user-sessions.page-token")
    assert stock.loads(token) == {"v": 1, "s": scope_digest(SCOPE), "k": [["i", str(10**300)]]}
    compressed = stock.dumps({"v": 1, "s": scope_digest(SCOPE), "k": [["i", str(10**300)]]})
    assert compressed.startswith(".") and len(compressed) < len(token)
    assert read_page_token(compressed, SCOPE, secret_key=KEY) == keyset


def test_a_token_is_what_itsdangerous_writes() -> None:
    """Written past the serializer's layers, a token is still byte for byte its own."""
    stock = URLSafeSerializer(KEY, salt="user-sessions.page-token")
    payload = {
        "v": 1,
        "s": scope_digest(SCOPE),
        "k": [["t", "2026-11-27T05:00:00.123456Z"], ["u", KEYSET.values[1].hex]],
    }
    assert make_page_token(KEYSET, SCOPE, secret_key=KEY) == stock.dumps(payload)


def test_a_remembered_digest_is_the_digest_it_stands_for() -> None:
    """Digests are remembered by the scope's orjson form; a datetime is read as ``str``
    reads it, as the canonical form does, never as its ISO text."""
    moment = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    as_datetime = {"filters": {"created_after": moment, "n": None, "b": True}, "sort": "x"}
    first = scope_digest(as_datetime)
    assert scope_digest(dict(as_datetime)) == first
    assert scope_digest({**as_datetime, "filters": {**as_datetime["filters"], "created_after": str(moment)}}) == first
    iso = {**as_datetime, "filters": {**as_datetime["filters"], "created_after": moment.isoformat()}}
    assert scope_digest(iso) != first
    assert scope_digest({1: "a"}) == scope_digest({"1": "a"})  # keys JSON writes as strings: not remembered
    for index in range(2 * page_tokens.DIGESTS_KEPT):
        assert scope_digest({"items_of": str(index)}) == page_tokens._digest({"items_of": str(index)})
    assert len(page_tokens._DIGESTS) <= page_tokens.DIGESTS_KEPT
    assert scope_digest(as_datetime) == first


def test_a_token_is_refused_under_another_key() -> None:
    token = make_page_token(KEYSET, SCOPE, secret_key=KEY)
    with pytest.raises(InvalidPageToken):
        read_page_token(token, SCOPE, secret_key="another-key")


def test_every_changed_character_is_noticed() -> None:
    token = make_page_token(KEYSET, SCOPE, secret_key=KEY)
    for index in range(len(token)):
        replacement = "A" if token[index] != "A" else "B"
        with pytest.raises(InvalidPageToken):
            read_page_token(token[:index] + replacement + token[index + 1 :], SCOPE, secret_key=KEY)


def test_the_digest_does_not_depend_on_key_order() -> None:
    assert scope_digest({"a": 1, "b": [1, 2]}) == scope_digest({"b": [1, 2], "a": 1})
    assert scope_digest({"a": 1}) != scope_digest({"a": 2})


def test_only_datetimes_and_uuids_go_into_a_token() -> None:
    with pytest.raises(TypeError):
        make_page_token(Keyset((1.5,)), SCOPE, secret_key=KEY)


@pytest.mark.parametrize(
    ("query", "digest"),
    [
        (
            {
                "email": "ada@example.org",
                "is_email_verified": "true",
                "consent_user_data": "false",
                "completed": "true",
                "created_after": "2026-01-02T03:04:05.000006Z",
                "created_before": "2026-11-27T05:00:00.123456Z",
                "updated_after": "2025-01-01T00:00:00Z",
                "updated_before": "2027-01-01T00:00:00Z",
                "deleted": "only",
                "metadata.channel": "web",
                "metadata.a.b": "\u00fc",
                "sort": "-updated_at",
            },
            # What the release before the declared filters (e46f98c) answered for this query.
            "9SY0V-UZdhC0epmvMOi8kw",
        ),
        ({}, "MgTBicH85x4fAjbVF6BGBw"),
    ],
)
def test_a_listing_binds_its_tokens_as_released_listings_did(query: dict[str, str], digest: str) -> None:
    """Tokens never expire: the digest of a listing's scope must not change between releases."""
    args = UserSessionListArgsSchema().load(query)
    assert scope_digest(listing_scope(args["filters"], SortOrder.parse(args["sort"]))) == digest
