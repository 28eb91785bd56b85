"""A client generated from ``openapi.yaml`` by openapi-python-client drives the live service.

Other teams generate their clients this way: if the spec is not exact, the
generated code fails to build, to send, or to parse what the service answers.
"""

from __future__ import annotations

import importlib
import subprocess
import sys
import uuid
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from tests.contract.conftest import API_KEY
from tests.support.live import PROJECT_ROOT, LiveServer

GENERATOR = str(Path(sys.executable).with_name("openapi-python-client"))
PACKAGE = "generated_user_sessions_client"

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> ModuleType:
    """The package openapi-python-client generates from the committed spec, imported."""
    root = tmp_path_factory.mktemp("generated")
    config = root / "config.yaml"
    config.write_text("post_hooks: []\n")
    command = [
        GENERATOR,
        "generate",
        "--path",
        str(PROJECT_ROOT / "openapi.yaml"),
        "--meta",
        "none",
        "--config",
        str(config),
        "--output-path",
        str(root / PACKAGE),
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Error" not in result.stdout, result.stdout
    sys.path.insert(0, str(root))
    try:
        return importlib.import_module(PACKAGE)
    finally:
        sys.path.remove(str(root))


def api(generated: ModuleType, name: str, tag: str = "user_sessions") -> Any:
    return importlib.import_module(f"{PACKAGE}.api.{tag}.{name}")


def models(generated: ModuleType) -> Any:
    return importlib.import_module(f"{PACKAGE}.models")


@pytest.fixture
def authenticated(generated: ModuleType, postgres_server: LiveServer) -> Any:
    return generated.AuthenticatedClient(
        base_url=postgres_server.base_url, token=API_KEY, raise_on_unexpected_status=True
    )


def test_creates_reads_patches_with_if_match_and_deletes(generated: ModuleType, authenticated: Any) -> None:
    model = models(generated)
    created = api(generated, "create_user_session").sync_detailed(
        client=authenticated,
        body=model.UserSessionCreate(name="Ada", email="ada@example.com", ttl_seconds=3600),
        idempotency_key=uuid.uuid4().hex,
    )
    assert created.status_code == 201
    user_session = created.parsed
    assert isinstance(user_session, model.UserSession)
    assert created.headers["Location"] == f"/user-sessions/{user_session.uuid}"
    assert user_session.name == "Ada"
    assert user_session.email == "ada@example.com"

    read = api(generated, "get_user_session").sync_detailed(user_session.uuid, client=authenticated)
    assert read.status_code == 200
    assert read.parsed.to_dict() == user_session.to_dict()
    etag = read.headers["ETag"]
    assert etag == '"1"'

    patch = model.UserSessionPatch(
        name="Ada Lovelace", metadata=model.UserSessionPatchMetadataType0.from_dict({"step": 2})
    )
    patched = api(generated, "update_user_session").sync_detailed(
        user_session.uuid, client=authenticated, body=patch, if_match=etag
    )
    assert patched.status_code == 200
    assert patched.parsed.name == "Ada Lovelace"
    assert patched.parsed.metadata.to_dict() == {"step": 2}
    assert patched.parsed.email == "ada@example.com"  # merge patch: untouched fields stay
    assert patched.headers["ETag"] == '"2"'

    stale = api(generated, "update_user_session").sync_detailed(
        user_session.uuid, client=authenticated, body=model.UserSessionPatch(name="lost update"), if_match=etag
    )
    assert stale.status_code == 412
    assert isinstance(stale.parsed, model.Problem)
    assert stale.parsed.code == "PRECONDITION_FAILED"

    deleted = api(generated, "delete_user_session").sync_detailed(
        user_session.uuid, client=authenticated, if_match=patched.headers["ETag"]
    )
    assert deleted.status_code == 204
    gone = api(generated, "get_user_session").sync_detailed(user_session.uuid, client=authenticated)
    assert gone.status_code == 404
    assert gone.parsed.code == "USER_SESSION_NOT_FOUND"

    head = api(generated, "head_user_session").sync_detailed(
        user_session.uuid, client=authenticated, include_deleted=True
    )
    assert head.status_code == 200
    assert head.content == b""


def test_parses_problems_with_their_field_errors(generated: ModuleType, authenticated: Any) -> None:
    model = models(generated)
    response = api(generated, "create_user_session").sync_detailed(
        client=authenticated, body=model.UserSessionCreate(name="x" * 201)
    )
    assert response.status_code == 422
    assert isinstance(response.parsed, model.Problem)
    assert response.parsed.errors.to_dict() == {"name": ["Longer than maximum length 200."]}
    assert response.parsed.correlation_id == response.headers["X-Correlation-ID"]


def test_lists_following_next_page_token(generated: ModuleType, authenticated: Any) -> None:
    model = models(generated)
    email = f"{uuid.uuid4().hex}@example.com"
    created = set()
    for _ in range(5):
        response = api(generated, "create_user_session").sync_detailed(
            client=authenticated, body=model.UserSessionCreate(email=email)
        )
        created.add(str(response.parsed.uuid))
    list_user_sessions = api(generated, "list_user_sessions")
    listed: list[str] = []
    pages = 0
    token: Any = generated.types.UNSET
    while True:
        page = list_user_sessions.sync_detailed(client=authenticated, email=email, limit=2, page_token=token)
        assert page.status_code == 200
        pages += 1
        listed += [str(item.uuid) for item in page.parsed.items]
        if not page.parsed.next_page_token:
            assert "Link" not in page.headers
            break
        assert 'rel="next"' in page.headers["Link"]
        token = page.parsed.next_page_token
    assert pages == 3
    assert sorted(listed) == sorted(created)


def test_appends_lists_pops_reads_and_clears_conversation_items(generated: ModuleType, authenticated: Any) -> None:
    model = models(generated)

    def items_api(name: str) -> Any:
        return api(generated, name, tag="conversation_items")

    user_session = (
        api(generated, "create_user_session").sync_detailed(client=authenticated, body=model.UserSessionCreate()).parsed
    )
    body = model.ItemsAppend(
        items=[
            model.ConversationItemIn.from_dict({"content": {"role": "user", "content": "Hi"}, "role": "user"}),
            model.ConversationItemIn.from_dict({"content": "tool output", "type": "function_call_output"}),
            model.ConversationItemIn.from_dict({"content": [1, 2, 3], "role": "assistant"}),
        ]
    )
    appended = items_api("append_conversation_items").sync_detailed(
        user_session.uuid, client=authenticated, body=body, idempotency_key=uuid.uuid4().hex
    )
    assert appended.status_code == 201
    stored = appended.parsed.items
    assert [item.seq for item in stored] == [1, 2, 3]
    assert stored[0].content == {"role": "user", "content": "Hi"}
    assert stored[1].type_ == "function_call_output"

    newest = items_api("list_conversation_items").sync_detailed(
        user_session.uuid, client=authenticated, order=model.ListConversationItemsOrder.DESC, limit=2
    )
    assert newest.status_code == 200
    assert [item.seq for item in newest.parsed.items] == [3, 2]
    rest = items_api("list_conversation_items").sync_detailed(
        user_session.uuid,
        client=authenticated,
        order=model.ListConversationItemsOrder.DESC,
        limit=2,
        page_token=newest.parsed.next_page_token,
    )
    assert [item.seq for item in rest.parsed.items] == [1]
    assert not rest.parsed.next_page_token

    popped = items_api("pop_conversation_item").sync_detailed(
        user_session.uuid, client=authenticated, idempotency_key=uuid.uuid4().hex
    )
    assert popped.status_code == 200
    assert popped.parsed.seq == 3
    read = items_api("get_conversation_item").sync_detailed(user_session.uuid, stored[0].id, client=authenticated)
    assert read.parsed.to_dict() == stored[0].to_dict()
    assert (
        items_api("delete_conversation_item")
        .sync_detailed(user_session.uuid, stored[0].id, client=authenticated)
        .status_code
        == 204
    )
    gone = items_api("get_conversation_item").sync_detailed(user_session.uuid, stored[0].id, client=authenticated)
    assert gone.status_code == 404
    assert gone.parsed.code == "ITEM_NOT_FOUND"
    cleared = items_api("clear_conversation_items").sync_detailed(user_session.uuid, client=authenticated)
    assert cleared.status_code == 204
    empty = items_api("list_conversation_items").sync_detailed(user_session.uuid, client=authenticated)
    assert empty.parsed.items == []
