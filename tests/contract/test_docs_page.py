"""``/docs`` in headless Chromium: it renders the spec's operations, "Try it out"
works, and the page never reaches past 127.0.0.1.

Uses Debian's ``chromium`` (skipped without it; ``.ci/run`` installs it) driven by Playwright;
Playwright's own browser downloads are never used.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests
import yaml

from tests.contract.conftest import start_postgres_server
from tests.support.live import PROJECT_ROOT, LiveServer
from tests.support.requirements import require_program

# No network of its own: no updates, no sync, no QUIC, no first-run fetches.
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
    "--disable-extensions",
]
TIMEOUT_MS = 20_000

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def open_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """No API keys configured, so "Try it out" needs no credentials."""
    server = start_postgres_server(tmp_path_factory, "docs_page")
    yield server
    server.stop()


@pytest.fixture(scope="module")
def browser_context(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    chromium = require_program("chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            user_data_dir=str(tmp_path_factory.mktemp("chromium-profile")),
            executable_path=chromium,
            headless=True,
            args=CHROMIUM_FLAGS,
        )
        yield context
        context.close()


@pytest.fixture
def page(browser_context: Any) -> Iterator[Any]:
    page = browser_context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    page.requested = []
    page.console_errors = []
    page.on("request", lambda request: page.requested.append(request.url))
    page.on("console", lambda message: message.type == "error" and page.console_errors.append(message.text))
    yield page
    page.close()


def operations_in_spec() -> list[tuple[str, str]]:
    document = yaml.safe_load((PROJECT_ROOT / "openapi.yaml").read_text())
    found = []
    for item in document["paths"].values():
        for operation in item.values():
            if isinstance(operation, dict) and "operationId" in operation:
                found.append((operation["tags"][0], operation["operationId"]))
    return found


def assert_only_loopback(requested: list[str], server: LiveServer) -> None:
    origin = urlsplit(server.base_url)
    for url in requested:
        parts = urlsplit(url)
        if parts.scheme == "data":
            continue
        assert (parts.hostname, parts.port) == (origin.hostname, origin.port), url


def test_renders_every_operation_of_the_spec_from_local_assets(page: Any, open_server: LiveServer) -> None:
    page.goto(open_server.url("/docs"))
    page.wait_for_selector(".opblock")
    for tag, operation_id in operations_in_spec():
        assert page.locator(f"#operations-{tag}-{operation_id}").count() == 1, operation_id
    assert page.locator(".info .title").inner_text().startswith("User sessions")
    assert any(url.endswith("/docs/swagger-ui-bundle.js") for url in page.requested)
    assert any(url.endswith("/openapi.json") for url in page.requested)
    assert_only_loopback(page.requested, open_server)
    assert page.console_errors == []


def test_try_it_out_creates_a_session(page: Any, open_server: LiveServer, tmp_path: Path) -> None:
    page.goto(open_server.url("/docs"))
    operation = page.locator("#operations-user_sessions-createUserSession")
    operation.locator(".opblock-summary").click()
    operation.locator("button.try-out__btn").click()
    operation.locator("textarea.body-param__text").fill('{"name": "made in the docs"}')
    operation.locator("button.execute").click()
    status = operation.locator(".live-responses-table .response .response-col_status").first
    status.wait_for()
    page.screenshot(path=str(tmp_path / "docs.png"), full_page=False)
    assert status.inner_text().strip() == "201"
    body = operation.locator(".live-responses-table .response-col_description pre").first.inner_text()
    created_uuid = yaml.safe_load(body)["uuid"]
    read = requests.get(open_server.url(f"/user-sessions/{created_uuid}"), timeout=5)
    assert read.status_code == 200
    assert read.json()["name"] == "made in the docs"
    assert_only_loopback(page.requested, open_server)
    assert page.console_errors == []
