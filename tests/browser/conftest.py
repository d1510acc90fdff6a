"""Browser tests of the demo checkout: Playwright driving Debian's chromium against the local stack.

Fixtures:

* ``demo`` (session): ``DemoServer`` next to ``local_stack``, on the port whose origin the stack's
  CORS allows (``fixtures.aws.DEMO_PORT``), with its live event feed on the stack's bus.
* ``browser`` (session): headless ``/usr/bin/chromium`` (never a downloaded browser), kept off the
  network by its flags.
* ``page`` (function): a fresh browser context and page; every request it makes is recorded in
  ``page_requests`` (method, URL, lower-cased headers, body).
* ``shop`` (session): what was stored in DynamoDB Local and published on the bus (``e2e.conftest.Shop``).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from e2e.conftest import Shop
from fixtures.aws import DEMO_PORT

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "demo"))

from steppay_demo.server import DemoServer  # noqa: E402 - demo/ is not on pytest's pythonpath

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SCREENSHOTS = ROOT / "test-artifacts" / "browser"
TIMEOUT_MS = 20_000  # a Lambda worker's cold start on a busy 2-core machine takes seconds


@pytest.fixture(scope="session")
def demo(local_stack: Any) -> Iterator[DemoServer]:
    server = DemoServer(
        DEMO_PORT,
        api_url=local_stack.api_url,
        sandbox_url=local_stack.sandbox_url,
        moto_endpoint=local_stack.moto_endpoint,
        bus_name=local_stack.bus_names["EventBus"],
    ).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: run scripts/bootstrap.sh (it installs Debian's chromium)")
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=TIMEOUT_MS)

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def page_requests() -> list[dict[str, Any]]:
    return []


@pytest.fixture
def page(browser: Any, page_requests: list[dict[str, Any]]) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1200, "height": 900}, device_scale_factor=1)
    context.set_default_timeout(TIMEOUT_MS)
    context.on(
        "request",
        lambda request: page_requests.append(
            {
                "method": request.method,
                "url": request.url,
                "headers": dict(request.headers),
                "body": request.post_data,
            }
        ),
    )
    context.on("console", lambda message: print(f"[console] {message.type}: {message.text}"))
    context.on("weberror", lambda error: print(f"[page error] {error.error}"))
    page = context.new_page()
    try:
        yield page
    finally:
        context.close()


@pytest.fixture(scope="session")
def shop(local_stack: Any) -> Shop:
    return Shop(local_stack)


@pytest.fixture(scope="session")
def screenshots() -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return SCREENSHOTS
