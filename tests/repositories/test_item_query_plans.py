"""On PostgreSQL, a page of items reads the primary key (user_session_uuid, seq)
in order from its cursor and stops after limit + 1 rows: no table scan, no
sort, and the same rows read for the newest page and for a page at 90 % of the
history, at 20 items as at 100,000.

Each request's own SQL, as the driver received it, is explained with
``ANALYZE`` (reads only; the pop's DELETE is explained without it).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
import pytest
from flask import Flask
from sqlalchemy import text

from service.api.listing import items_listing_scope
from service.api.page_tokens import make_page_token
from service.extensions import db
from service.repositories import ItemFilters, Keyset
from tests.conftest import make_app
from tests.support.databases import fresh_postgres_database, worker_id

BIG = 100_000
SMALL = 20
OTHERS = 300
OTHER_ITEMS = 50
SESSIONS = "INSERT INTO user_sessions (uuid) VALUES (:uuid)"
ITEMS = """
INSERT INTO conversation_items (user_session_uuid, seq, id, type, role, content, created_at)
SELECT :uuid, i, gen_random_uuid(),
       CASE WHEN i % 3 = 0 THEN 'function_call' ELSE 'message' END,
       CASE WHEN i % 2 = 0 THEN 'assistant' ELSE 'user' END,
       jsonb_build_object('role', 'user', 'content', 'message number ' || i),
       now()
FROM generate_series(1, :count) AS i
"""
LIMIT = 20


@pytest.fixture(scope="module")
def seeded() -> Iterator[tuple[Flask, dict[str, str]]]:
    """Query plans are PostgreSQL's: skipped without ``TEST_DATABASE_URL``."""
    # Seeding 100,000 rows may take longer than the default statement timeout on a busy machine.
    app = make_app(fresh_postgres_database(f"item_plans_{worker_id()}"), DB_STATEMENT_TIMEOUT_MS="0")
    sessions = {"big": str(uuid.uuid4()), "small": str(uuid.uuid4())}
    with app.app_context():
        for name, count in (("big", BIG), ("small", SMALL)):
            db.session.execute(text(SESSIONS), {"uuid": sessions[name]})
            db.session.execute(text(ITEMS), {"uuid": sessions[name], "count": count})
            db.session.execute(
                text("UPDATE user_sessions SET last_item_seq = :count WHERE uuid = :uuid"),
                {"uuid": sessions[name], "count": count},
            )
        for _ in range(OTHERS):
            other = str(uuid.uuid4())
            db.session.execute(text(SESSIONS), {"uuid": other})
            db.session.execute(text(ITEMS), {"uuid": other, "count": OTHER_ITEMS})
        db.session.commit()
        with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.execute(text("VACUUM ANALYZE conversation_items"))
            connection.execute(text("VACUUM ANALYZE user_sessions"))
    yield app, sessions
    with app.app_context():
        db.engine.dispose()


@contextmanager
def statements(prefix: str) -> Iterator[list[tuple[str, Any]]]:
    """The statements starting with ``prefix`` the app sends to the driver, with their parameters."""
    captured: list[tuple[str, Any]] = []
    execute = psycopg.Cursor.execute

    def capture(cursor: Any, query: Any, params: Any = None, **kwargs: Any) -> Any:
        if isinstance(query, str) and query.startswith(prefix):
            captured.append((query, params))
        return execute(cursor, query, params, **kwargs)

    psycopg.Cursor.execute = capture  # type: ignore[method-assign]
    try:
        yield captured
    finally:
        psycopg.Cursor.execute = execute  # type: ignore[method-assign]


def explain(app: Flask, statement: str, parameters: Any, *, analyze: bool = True) -> list[dict[str, Any]]:
    """Every node of the statement's plan (run, with ``analyze``)."""
    options = "ANALYZE, BUFFERS, FORMAT JSON" if analyze else "FORMAT JSON"
    with app.app_context(), db.engine.connect() as connection:
        plan = connection.exec_driver_sql(f"EXPLAIN ({options}) {statement}", parameters).scalar_one()
    nodes, stack = [], [(plan if isinstance(plan, list) else json.loads(plan))[0]["Plan"]]
    while stack:
        node = stack.pop()
        nodes.append(node)
        stack.extend(node.get("Plans", []))
    return nodes


def page_plan(app: Flask, user_session_uuid: str, query: dict[str, str]) -> list[dict[str, Any]]:
    with statements("SELECT conversation_items.") as captured:
        response = app.test_client().get(f"/user-sessions/{user_session_uuid}/items", query_string=query)
        assert response.status_code == 200, response.get_json()
        assert len(response.get_json()["items"]) == int(query["limit"])
    assert len(captured) == 1
    return explain(app, *captured[0])


def token_at(app: Flask, user_session_uuid: str, seq: int, query: dict[str, str]) -> str:
    """The token of the page after ``seq``, made as the view makes it."""
    filters = ItemFilters(type=query.get("type"), role=query.get("role"))
    scope = items_listing_scope(uuid.UUID(user_session_uuid), filters, descending=query.get("order") == "desc")
    with app.app_context():
        return make_page_token(Keyset((seq,)), scope)


def primary_key_scan(nodes: list[dict[str, Any]]) -> dict[str, Any]:
    types = {node["Node Type"] for node in nodes}
    assert "Seq Scan" not in types, nodes
    assert not {"Sort", "Incremental Sort", "Bitmap Heap Scan"} & types, nodes
    scans = [node for node in nodes if node.get("Index Name") == "pk_conversation_items"]
    assert len(scans) == 1, nodes
    (scan,) = scans
    assert scan["Node Type"] == "Index Scan"
    assert "user_session_uuid" in scan["Index Cond"]
    return scan


@pytest.mark.parametrize("order", ["asc", "desc"])
@pytest.mark.parametrize("depth", ["first", "deep"])
@pytest.mark.parametrize("session", ["small", "big"])
def test_a_page_walks_the_primary_key_from_its_cursor_and_reads_one_page(
    seeded: tuple[Flask, dict[str, str]], order: str, depth: str, session: str
) -> None:
    app, sessions = seeded
    count = BIG if session == "big" else SMALL
    query = {"order": order, "limit": str(LIMIT) if count > LIMIT or depth == "first" else "1"}
    if depth == "deep":
        # 90 % of the history in the listing's own direction.
        seq = int(0.9 * count) if order == "asc" else count - int(0.9 * count) + 1
        if session == "small":
            seq = 1 if order == "asc" else SMALL  # a 20-item history has no page at 90 %: the next one
        query["page_token"] = token_at(app, sessions[session], seq, query)
    scan = primary_key_scan(page_plan(app, sessions[session], query))
    assert scan["Scan Direction"] == ("Backward" if order == "desc" else "Forward")
    # One page read, whatever the depth and however long the history.
    assert scan["Actual Rows"] <= int(query["limit"]) + 1
    if depth == "deep":
        assert "seq >" in scan["Index Cond"] or "seq <" in scan["Index Cond"]


def test_the_newest_page_at_100000_items_reads_as_many_rows_as_at_20(seeded: tuple[Flask, dict[str, str]]) -> None:
    app, sessions = seeded
    query = {"order": "desc", "limit": str(LIMIT)}
    big = primary_key_scan(page_plan(app, sessions["big"], query))
    small = primary_key_scan(page_plan(app, sessions["small"], query))
    assert big["Actual Rows"] == LIMIT + 1
    assert small["Actual Rows"] == LIMIT
    assert big["Shared Hit Blocks"] + big.get("Shared Read Blocks", 0) <= 10


@pytest.mark.parametrize("query", [{"role": "user"}, {"type": "message", "role": "assistant"}])
def test_a_filtered_page_walks_the_primary_key_too(seeded: tuple[Flask, dict[str, str]], query: dict[str, str]) -> None:
    app, sessions = seeded
    full = {**query, "order": "desc", "limit": str(LIMIT)}
    full["page_token"] = token_at(app, sessions["big"], BIG // 2, full)
    primary_key_scan(page_plan(app, sessions["big"], full))


def test_reading_one_item_uses_its_unique_id(seeded: tuple[Flask, dict[str, str]]) -> None:
    app, sessions = seeded
    client = app.test_client()
    item = client.get(f"/user-sessions/{sessions['big']}/items", query_string={"limit": "1"}).get_json()["items"][0]
    with statements("SELECT conversation_items.") as captured:
        assert client.get(f"/user-sessions/{sessions['big']}/items/{item['id']}").status_code == 200
    nodes = explain(app, *captured[0])
    assert "Seq Scan" not in {node["Node Type"] for node in nodes}
    assert any(node.get("Index Name") == "uq_conversation_items_id" for node in nodes), nodes


def test_pop_finds_the_newest_item_through_the_primary_key(seeded: tuple[Flask, dict[str, str]]) -> None:
    app, sessions = seeded
    with statements("DELETE FROM conversation_items") as captured:
        response = app.test_client().post(f"/user-sessions/{sessions['big']}/items/pop")
        assert response.status_code == 200
        assert response.get_json()["seq"] == BIG
    nodes = explain(app, *captured[0], analyze=False)
    assert not {"Seq Scan", "Sort"} & {node["Node Type"] for node in nodes}
    assert any(
        node.get("Index Name") == "pk_conversation_items" and node.get("Scan Direction") == "Backward" for node in nodes
    ), nodes
