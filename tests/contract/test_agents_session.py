"""The OpenAI Agents SDK (``agents.Runner``) remembering a conversation in the service.

A fake model (no network, no API key) answers from a script and records the
input the SDK gave it each turn; the session is
``UserSessionsAgentSession`` against a real gunicorn on PostgreSQL.
"""

from __future__ import annotations

import asyncio
import copy
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import requests

from tests.contract.conftest import API_KEY
from tests.support.live import LiveServer
from tests.support.requirements import require_module
from user_sessions_client import NotFound, UserSessionsClient

require_module("agents", "pip install -e './clients/python[agents]' (openai-agents)")

from agents import Agent, Model, ModelResponse, Runner, Usage, set_tracing_disabled  # noqa: E402
from openai.types.responses import ResponseOutputMessage, ResponseOutputText  # noqa: E402

from user_sessions_client.agents import UserSessionsAgentSession  # noqa: E402

pytestmark = pytest.mark.slow


class ScriptedModel(Model):
    """Answers each turn with the next reply of its script; keeps every input it was given."""

    def __init__(self, replies: list[str]) -> None:
        self.replies = list(replies)
        self.inputs: list[list[dict[str, Any]]] = []

    async def get_response(
        self,
        system_instructions: str | None,
        input: str | list[Any],
        model_settings: Any,
        tools: list[Any],
        output_schema: Any,
        handoffs: list[Any],
        tracing: Any,
        *,
        previous_response_id: str | None,
        conversation_id: str | None,
        prompt: Any,
    ) -> ModelResponse:
        given = [{"role": "user", "content": input}] if isinstance(input, str) else input
        self.inputs.append(copy.deepcopy([dict(item) for item in given]))
        text = self.replies.pop(0)
        reply = ResponseOutputMessage(
            id=f"msg_{len(self.inputs)}",
            type="message",
            role="assistant",
            status="completed",
            content=[ResponseOutputText(type="output_text", text=text, annotations=[])],
        )
        return ModelResponse(output=[reply], usage=Usage(), response_id=None)

    def stream_response(self, *args: Any, **kwargs: Any) -> AsyncIterator[Any]:
        raise NotImplementedError("the test runs without streaming")


def texts(items: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """(role, text) of each message item, whether its content is a string or output parts."""
    found = []
    for item in items:
        content = item.get("content")
        if isinstance(content, list):
            content = "".join(part.get("text", "") for part in content)
        found.append((item.get("role"), content))
    return found


@pytest.fixture(autouse=True)
def _offline(monkeypatch: pytest.MonkeyPatch) -> None:
    """No OpenAI key and no tracing: nothing may leave the machine."""
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    set_tracing_disabled(True)


@pytest.fixture
def sessions(postgres_server: LiveServer) -> Iterator[UserSessionsClient]:
    with UserSessionsClient(postgres_server.base_url, api_key=API_KEY) as client:
        yield client


def stored_items(server: LiveServer, user_session_uuid: str) -> list[dict[str, Any]]:
    """The session's items as the service lists them, read with plain HTTP."""
    response = requests.get(
        server.url(f"/user-sessions/{user_session_uuid}/items"),
        headers={"Authorization": f"Bearer {API_KEY}"},
        timeout=5,
    )
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


def test_the_second_turns_model_input_is_the_history_read_back_from_the_service(
    postgres_server: LiveServer, sessions: UserSessionsClient
) -> None:
    user_session = sessions.create(name="Ada")
    model = ScriptedModel(["Hello Ada!", "You said hi, then asked what I remember."])
    agent = Agent(name="Maria", instructions="Be brief.", model=model)

    # Turn one, as one agent process would run it.
    with UserSessionsClient(postgres_server.base_url, api_key=API_KEY) as first_process:
        memory = UserSessionsAgentSession(session_id=user_session["uuid"], client=first_process)
        first = asyncio.run(Runner.run(agent, "Hi, I am Ada", session=memory))
    assert first.final_output == "Hello Ada!"
    assert texts(model.inputs[0]) == [("user", "Hi, I am Ada")]

    after_first = stored_items(postgres_server, user_session["uuid"])
    assert [(item["seq"], item["type"], item["role"]) for item in after_first] == [
        (1, "message", "user"),
        (2, "message", "assistant"),
    ]
    assert texts([item["content"] for item in after_first]) == [("user", "Hi, I am Ada"), ("assistant", "Hello Ada!")]

    # Another agent instance adds to the conversation in the service between the turns.
    sessions.append_items(user_session, [{"role": "user", "content": {"role": "user", "content": "(by the way)"}}])

    # Turn two, in another process: a new client and a new session object, nothing kept in memory.
    with UserSessionsClient(postgres_server.base_url, api_key=API_KEY) as second_process:
        memory = UserSessionsAgentSession(session_id=user_session["uuid"], client=second_process)
        second = asyncio.run(Runner.run(agent, "What do you remember?", session=memory))
    assert second.final_output == "You said hi, then asked what I remember."
    assert texts(model.inputs[1]) == [
        ("user", "Hi, I am Ada"),
        ("assistant", "Hello Ada!"),
        ("user", "(by the way)"),  # only the service knew of it
        ("user", "What do you remember?"),
    ]

    after_second = stored_items(postgres_server, user_session["uuid"])
    assert [item["seq"] for item in after_second] == [1, 2, 3, 4, 5]
    assert texts([item["content"] for item in after_second]) == [
        ("user", "Hi, I am Ada"),
        ("assistant", "Hello Ada!"),
        ("user", "(by the way)"),
        ("user", "What do you remember?"),
        ("assistant", "You said hi, then asked what I remember."),
    ]
    assert sessions.get(user_session)["version"] == user_session["version"]  # items never change the session


def test_the_sessions_own_methods_against_the_service(sessions: UserSessionsClient) -> None:
    user_session = sessions.create()
    memory = UserSessionsAgentSession(session_id=user_session["uuid"], client=sessions)
    items: list[Any] = [
        {"role": "user", "content": "Find flights"},
        {"type": "function_call", "call_id": "c1", "name": "search", "arguments": '{"to": "OSL"}'},
        {"type": "function_call_output", "call_id": "c1", "output": "3 flights"},
    ]

    async def use() -> None:
        await memory.add_items(items)
        assert await memory.get_items() == items
        assert await memory.get_items(limit=2) == items[1:]
        assert await memory.pop_item() == items[2]
        assert await memory.get_items() == items[:2]
        await memory.clear_session()
        assert await memory.get_items() == []
        assert await memory.pop_item() is None

    asyncio.run(use())
    stored = [(item["type"], item["role"]) for item in sessions.iter_items(user_session)]
    assert stored == []

    missing = UserSessionsAgentSession(session_id="6f1c0000-0000-4000-8000-000000000000", client=sessions)
    with pytest.raises(NotFound):
        asyncio.run(missing.add_items(items))


def test_items_keep_their_type_and_role_in_the_service(sessions: UserSessionsClient) -> None:
    user_session = sessions.create()
    memory = UserSessionsAgentSession(session_id=user_session["uuid"], client=sessions)
    asyncio.run(
        memory.add_items(
            [
                {"role": "user", "content": "Find flights"},
                {"type": "function_call", "call_id": "c1", "name": "search", "arguments": "{}"},
            ]
        )
    )
    assert [(item["type"], item["role"]) for item in sessions.iter_items(user_session)] == [
        ("message", "user"),
        ("function_call", None),
    ]
    assert [item["content"]["call_id"] for item in sessions.iter_items(user_session, type="function_call")] == ["c1"]
