"""Reading ``Idempotency-Key`` and fingerprinting the body, without a database."""

from __future__ import annotations

import pytest
from flask import Flask

from service.api.idempotency import idempotency_key, request_fingerprint
from service.errors import InvalidHeader


def app_with(api_keys: dict[str, bool]) -> Flask:
    app = Flask(__name__)
    app.config.update(API_KEYS=api_keys, SECRET_KEY="secret")
    return app


def key_of(headers: dict[str, str]) -> str | None:
    with app_with({}).test_request_context(headers=headers):
        return idempotency_key()


def test_a_request_without_the_header_has_no_key() -> None:
    assert key_of({}) is None


@pytest.mark.parametrize("key", ["a", "~" * 255, "2f1c-ABC_def.ghi:42!"])
def test_visible_ascii_keys_up_to_255_are_read_as_sent(key: str) -> None:
    assert key_of({"Idempotency-Key": key}) == key


# "a,b" is what a server hands on for the header sent twice (a, then b).
@pytest.mark.parametrize("key", ["", " ", "a b", "k" * 256, "\u00e9t\u00e9", "x\x7f", "a,b"])
def test_other_keys_are_refused(key: str) -> None:
    with pytest.raises(InvalidHeader) as refused:
        key_of({"Idempotency-Key": key})
    assert refused.value.status == 400
    assert refused.value.errors is not None
    assert list(refused.value.errors) == ["Idempotency-Key"]


def fingerprint(body: bytes, secret_key: str | None = None) -> str:
    app = app_with({})
    if secret_key is not None:
        app.config["SECRET_KEY"] = secret_key
    with app.test_request_context(method="POST", data=body, content_type="application/json"):
        return request_fingerprint()


def test_the_fingerprint_is_of_the_parsed_json_and_keyed() -> None:
    reference = fingerprint(b'{"a": 1, "b": [true, null]}')
    assert fingerprint(b'{"b":[true,null],"a":1}') == reference
    assert fingerprint(b'{"a": 2, "b": [true, null]}') != reference
    assert fingerprint(b'{"a": 1, "b": [true, null]}', secret_key="other") != reference
    assert fingerprint(b"") == fingerprint(b"{}")
    assert fingerprint(b"not json") != fingerprint(b"not json either")
