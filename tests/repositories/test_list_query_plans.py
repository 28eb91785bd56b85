"""On PostgreSQL, listing reads an index in order: no table scan, no sort.

50,000 sessions are seeded, vacuumed and analysed; each listing request's own SQL, as
the driver received it, is explained. A page costs the same at any depth
only if its plan walks ``(sort column, uuid)`` from the cursor and stops
after ``limit + 1`` rows.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
import pytest
from flask import Flask
from sqlalchemy import text

from service.api.listing import listing_scope
from service.api.page_tokens import make_page_token
from service.extensions import db
from service.repositories import Keyset, SortOrder
from service.schemas.fields import format_datetime
from service.schemas.user_sessions import UserSessionListArgsSchema
from tests.conftest import make_app
from tests.support.databases import fresh_postgres_database, worker_id

ROWS = 50_000
SEED = """
INSERT INTO user_sessions (uuid, email, consent_user_data, is_email_verified, metadata,
                           created_at, updated_at, completed_at, expires_at, deleted_at)
SELECT gen_random_uuid(),
       CASE WHEN i % 4 = 0 THEN NULL ELSE 'user' || (i % 20000) || '@example.com' END,
       i % 5 < 3,
       i % 5 < 2,
       jsonb_build_object('agent', 'maria', 'channel', (ARRAY['web', 'ios', 'android', 'voice'])[1 + i % 4],
                          'step', i % 12, 'conversation', 'c' || i),
       created,
       created + make_interval(secs => (i % 7) * 60),
       CASE WHEN i % 5 < 2 THEN created + interval '10 minutes' END,
       CASE WHEN i % 50 = 0 THEN now() - interval '1 day' WHEN i % 10 = 0 THEN now() + interval '1 day' END,
       CASE WHEN i % 100 = 1 THEN created + interval '1 day' END
FROM generate_series(1, :rows) AS i,
     LATERAL (SELECT now() - make_interval(secs => i * 150.0 + (i % 3)) AS created) AS moment
"""
SORTS = ("-created_at", "created_at", "-updated_at", "updated_at")
COMMON_FILTERS: list[dict[str, str]] = [
    {},
    {"deleted": "include"},
    {"consent_user_data": "true"},
    {"is_email_verified": "false", "completed": "false"},
    {"created_after": "2000-01-01T00:00:00Z"},
]


@pytest.fixture(scope="module")
def seeded_app() -> Iterator[Flask]:
    """Query plans are PostgreSQL's: skipped without ``TEST_DATABASE_URL``.

    ``VACUUM`` as well as ``ANALYZE``: until a vacuum flushes the metadata GIN
    index's pending list, the planner prices that index at the cost of walking
    the whole table, and whether autovacuum has got there first is a race.
    """
    app = make_app(fresh_postgres_database(f"plans_{worker_id()}"))
    with app.app_context():
        db.session.execute(text(SEED), {"rows": ROWS})
        db.session.commit()
        with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.execute(text("VACUUM ANALYZE user_sessions"))
    yield app
    with app.app_context():
        db.engine.dispose()


@contextmanager
def listing_statements(app: Flask) -> Iterator[list[tuple[str, Any]]]:
    """The SELECTs of user sessions the app sends to the driver, with their parameters,
    seen at the driver's cursor (listings run past SQLAlchemy's execution events)."""
    captured: list[tuple[str, Any]] = []
    execute = psycopg.Cursor.execute

    def capture(cursor: Any, query: Any, params: Any = None, **kwargs: Any) -> Any:
        if isinstance(query, str) and query.startswith("SELECT user_sessions.uuid"):
            captured.append((query, params))
        return execute(cursor, query, params, **kwargs)

    psycopg.Cursor.execute = capture  # type: ignore[method-assign]
    try:
        yield captured
    finally:
        psycopg.Cursor.execute = execute  # type: ignore[method-assign]


def plan_nodes(app: Flask, query: dict[str, str]) -> list[dict[str, Any]]:
    """Every node of the plan of the page query ``GET /user-sessions?query`` runs."""
    with listing_statements(app) as captured:
        response = app.test_client().get("/user-sessions", query_string=query)
        assert response.status_code == 200, response.get_json()
    assert len(captured) == 1
    statement, parameters = captured[0]
    with app.app_context(), db.engine.connect() as connection:
        plan = connection.exec_driver_sql("EXPLAIN (FORMAT JSON) " + statement, parameters).scalar_one()
    nodes, stack = [], [(plan if isinstance(plan, list) else json.loads(plan))[0]["Plan"]]
    while stack:
        node = stack.pop()
        nodes.append(node)
        stack.extend(node.get("Plans", []))
    return nodes


def node_types(nodes: list[dict[str, Any]]) -> set[str]:
    return {node["Node Type"] for node in nodes}


def deep_token(app: Flask, query: dict[str, str]) -> str:
    """The token of a page at about 90 % depth of the listing ``query``, made as the view makes it."""
    args = UserSessionListArgsSchema().load(query)
    sort = SortOrder.parse(args["sort"])
    direction = "DESC" if sort.descending else "ASC"
    with app.app_context():
        row = db.session.execute(
            text(
                f"SELECT {sort.field}, uuid FROM user_sessions "  # noqa: S608 (a column name from SORTS)
                f"ORDER BY {sort.field} {direction}, uuid {direction} OFFSET :deep LIMIT 1"
            ),
            {"deep": int(0.9 * ROWS)},
        ).one()
        return make_page_token(Keyset((row[0], row[1])), listing_scope(args["filters"], sort))


@pytest.mark.parametrize("sort", SORTS)
@pytest.mark.parametrize("filters", COMMON_FILTERS, ids=lambda query: "&".join(query) or "default")
@pytest.mark.parametrize("depth", ["first", "deep"])
def test_every_sort_reads_its_index_in_order(seeded_app: Flask, sort: str, filters: dict[str, str], depth: str) -> None:
    query = {"sort": sort, "limit": "50", **filters}
    if depth == "deep":
        query["page_token"] = deep_token(seeded_app, query)
    nodes = plan_nodes(seeded_app, query)
    assert "Seq Scan" not in node_types(nodes)
    assert not {"Sort", "Incremental Sort"} & node_types(nodes)
    index = f"ix_user_sessions_{SortOrder.parse(sort).field}_uuid"
    assert any(node.get("Index Name") == index for node in nodes), nodes


def test_the_default_listing_and_a_deep_page_read_at_most_a_page_of_index_rows(seeded_app: Flask) -> None:
    """What the two pages of the benchmark run: the first, and one at 90 % depth."""
    for query in ({"limit": "50"}, {"limit": "50", "page_token": deep_token(seeded_app, {})}):
        nodes = plan_nodes(seeded_app, query)
        assert node_types(nodes) == {"Limit", "Index Scan"}, nodes
        scan = next(node for node in nodes if node["Node Type"] == "Index Scan")
        assert scan["Index Name"] == "ix_user_sessions_created_at_uuid"
        assert scan["Scan Direction"] == "Backward"
        if "page_token" in query:
            assert "ROW(created_at, uuid) <" in scan["Index Cond"]


@pytest.mark.parametrize(
    "filters",
    [{"email": "USER42@example.com"}, {"metadata.channel": "voice"}, {"deleted": "only"}],
    ids=["email", "metadata", "deleted-only"],
)
def test_other_filters_use_an_index_too(seeded_app: Flask, filters: dict[str, str]) -> None:
    nodes = plan_nodes(seeded_app, {"limit": "50", **filters})
    assert "Seq Scan" not in node_types(nodes), nodes


@pytest.mark.parametrize(
    ("filters", "index"),
    [
        ({"email": "USER42@example.com"}, "ix_user_sessions_lower_email"),
        ({"metadata.conversation": "c4242"}, "ix_user_sessions_metadata"),
    ],
    ids=["email", "metadata"],
)
def test_a_selective_filter_reads_only_its_matches_through_its_index(
    seeded_app: Flask, filters: dict[str, str], index: str
) -> None:
    nodes = plan_nodes(seeded_app, {"limit": "50", **filters})
    assert any(node.get("Index Name") == index for node in nodes), nodes
    assert "Seq Scan" not in node_types(nodes)


def test_a_bound_read_back_bounds_the_deep_page_the_benchmark_finds(seeded_app: Flask) -> None:
    """The benchmark's probe: ``?limit=1&created_before=T`` then the token with the same bound."""
    client = seeded_app.test_client()
    with seeded_app.app_context():
        before = db.session.execute(
            text("SELECT created_at FROM user_sessions ORDER BY created_at DESC OFFSET 45000 LIMIT 1")
        ).scalar_one()
    probe = client.get("/user-sessions", query_string={"limit": "1", "created_before": format_datetime(before)})
    token = probe.get_json()["next_page_token"]
    nodes = plan_nodes(seeded_app, {"limit": "50", "created_before": format_datetime(before), "page_token": token})
    assert node_types(nodes) == {"Limit", "Index Scan"}, nodes
