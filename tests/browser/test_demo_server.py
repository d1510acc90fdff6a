"""The demo server without a browser: what it serves, what it never serves, its own event feed."""

from __future__ import annotations

import json
import re
import struct
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
import requests
from e2e.conftest import SECRET_TOKEN, Shop

from steppay_demo.server import FEED_QUEUE_NAME, SITE_DIR, DemoServer

ROOT = Path(__file__).resolve().parents[2]


def test_config_names_the_api_and_the_sandbox_and_never_the_token(demo: DemoServer, local_stack: Any) -> None:
    config = requests.get(f"{demo.url}/config.json", timeout=10).json()
    assert config == {"apiUrl": local_stack.api_url, "sandboxUrl": local_stack.sandbox_url, "feed": True}
    for path in (
        "/",
        "/index.html",
        "/result.html",
        "/app.js",
        "/style.css",
        "/config.json",
        "/catalogue.json",
        "/events",
    ):
        response = requests.get(demo.url + path, timeout=10)
        assert response.status_code == 200, path
        assert SECRET_TOKEN not in response.text, path
    for file in SITE_DIR.iterdir():
        assert SECRET_TOKEN not in file.read_text(encoding="utf-8"), file


def test_catalogue_is_the_sandbox_catalogue(demo: DemoServer, shop: Shop) -> None:
    served = requests.get(f"{demo.url}/catalogue.json", timeout=10).json()
    products = shop.steppay("GET", "/api/v1/products").json()["content"]
    expected = {
        (p["code"], price["code"], price["price"], price["currency"], bool(price.get("recurring")))
        for p in products
        for price in p["prices"]
    }
    shown = {
        (i["productCode"], i["priceCode"], i["price"], i["currency"], i["kind"] == "subscription")
        for i in served["items"]
    }
    assert shown == expected
    assert {i["kind"] for i in served["items"]} == {"one_time", "subscription"}
    customers = shop.steppay("GET", "/api/v1/customers").json()["content"]
    assert served["customer"]["id"] == customers[0]["id"]


def test_only_the_site_files_are_served_with_a_strict_policy(demo: DemoServer, local_stack: Any) -> None:
    page = requests.get(f"{demo.url}/", timeout=10)
    assert page.headers["Content-Type"].startswith("text/html")
    policy = page.headers["Content-Security-Policy"]
    assert "script-src 'self'" in policy
    assert f"connect-src 'self' {local_stack.api_url}" in policy
    assert f"frame-src 'self' {local_stack.sandbox_url}" in policy
    assert (
        requests.get(f"{demo.url}/app.js", timeout=10).headers["Content-Type"].startswith("text/javascript")
    )
    for path in (
        "/../steppay_demo/server.py",
        "/%2e%2e/steppay_demo/server.py",
        "/steppay_demo/server.py",
        "/site/index.html",
        "/.hidden.js",
        "/nothing.html",
        "/events/x",
    ):
        assert requests.get(demo.url + path, timeout=10).status_code == 404, path


def test_feed_has_its_own_queue_and_leaves_the_tap_alone(demo: DemoServer, local_stack: Any) -> None:
    """An event put on the bus reaches both the demo's feed (its own rule) and local-event-tap."""
    sqs = local_stack.client("sqs")
    assert sqs.get_queue_url(QueueName=FEED_QUEUE_NAME)["QueueUrl"]
    rules = local_stack.client("events").list_rules(EventBusName=local_stack.bus_names["EventBus"])["Rules"]
    feed_rule = next(r for r in rules if r["Name"] == "local-demo-feed")
    assert json.loads(feed_rule["EventPattern"]) == {"source": [{"prefix": ""}]}

    marker = f"order_demo{uuid.uuid4().hex[:8]}"
    local_stack.client("events").put_events(
        Entries=[
            {
                "EventBusName": local_stack.bus_names["EventBus"],
                "Source": "demo.tests",
                "DetailType": "Demo Feed Check",
                "Detail": json.dumps({"orderCode": marker, "amount": "1", "currency": "KRW"}),
            }
        ]
    )
    deadline = time.monotonic() + 15
    seen: list[dict[str, Any]] = []
    while time.monotonic() < deadline and not seen:
        events = requests.get(f"{demo.url}/events", params={"after": 0}, timeout=10).json()["events"]
        seen = [e for e in events if e["orderCode"] == marker]
        time.sleep(0.2)
    assert len(seen) == 1
    assert seen[0]["detailType"] == "Demo Feed Check"
    assert seen[0]["source"] == "demo.tests"
    later = requests.get(f"{demo.url}/events", params={"after": seen[0]["seq"]}, timeout=10).json()["events"]
    assert all(e["seq"] > seen[0]["seq"] for e in later)

    tapped: list[dict[str, Any]] = []
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and not tapped:
        tapped = [
            e for e in local_stack.read_tap(max_wait=1) if e.get("detail", {}).get("orderCode") == marker
        ]
    assert len(tapped) == 1  # the tap got its own copy: the feed did not take it


def test_feed_keeps_the_last_fifty_events() -> None:
    server = DemoServer(0, api_url="http://127.0.0.1:9", sandbox_url="http://127.0.0.1:9").start()
    try:
        assert server.feed is None
        assert requests.get(f"{server.url}/events", timeout=10).json() == {"feed": "off", "events": []}
        assert requests.get(f"{server.url}/config.json", timeout=10).json()["feed"] is False
        catalogue = requests.get(f"{server.url}/catalogue.json", timeout=10)
        assert catalogue.status_code == 502
        assert catalogue.json()["error"]["code"] == "catalogue_unavailable"
    finally:
        server.stop()
    from steppay_demo.server import EventFeed

    feed = EventFeed("http://127.0.0.1:9", "bus")
    for n in range(60):
        feed.add({"detail-type": "X", "source": "s", "detail": {"orderCode": f"order_{n}"}})
    kept = feed.since(0)
    assert len(kept) == 50
    assert kept[0]["orderCode"] == "order_10" and kept[-1]["orderCode"] == "order_59"
    assert [e["seq"] for e in feed.since(58)] == [59, 60]


# -- the README section and its screenshot --------------------------------------------------------


def _demo_section() -> str:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    match = re.search(r"^## Demo checkout \(redirect, popup, iframe\)\n(.*?)^## ", readme, re.M | re.S)
    assert match, "README.md has no 'Demo checkout (redirect, popup, iframe)' section"
    return match.group(1)


def test_readme_mode_snippets_are_taken_from_the_demo_page() -> None:
    section = _demo_section()
    app_js = (SITE_DIR / "app.js").read_text(encoding="utf-8")
    snippets = re.findall(r"```js\n(.*?)```", section, re.S)
    assert len(snippets) >= 3
    for snippet in snippets:
        assert snippet.strip() in app_js, snippet
    joined = "\n".join(snippets)
    for needle in (
        "window.location.assign(payUrl)",
        "window.open(",
        "frame.src = payUrl",
        "postMessage(message, SHOP_ORIGIN)",
        "event.origin !== SHOP_ORIGIN",
    ):
        assert needle in joined, needle
    assert "docs/images/demo.png" in section
    assert "make screenshot" in section


def test_readme_screenshot_is_a_real_png() -> None:
    data = (ROOT / "docs/images/demo.png").read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    assert width >= 800 and height >= 600


@pytest.mark.parametrize("path", ["index.html", "result.html"])
def test_pages_are_plain_static_files(path: str) -> None:
    html = (SITE_DIR / path).read_text(encoding="utf-8")
    assert '<script src="/app.js" defer></script>' in html
    assert "<script>" not in html and "style=" not in html  # nothing inline: the policy forbids it
    assert re.search(r"https?://(?!127\.0\.0\.1)", html) is None  # no external resources
