"""The demo server without a browser: what it serves, what it never serves, its own event feed, and
its merchant-backend route (``POST /api/checkout``: the server's choice, registered signed)."""

from __future__ import annotations

import json
import os
import re
import struct
import subprocess
import sys
import textwrap
import time
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import requests
from e2e.conftest import SECRET_TOKEN, Shop

from steppay_demo.server import FEED_QUEUE_NAME, MERCHANT_DIR, SITE_DIR, DemoServer

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
        text = file.read_text(encoding="utf-8")
        assert SECRET_TOKEN not in text, file
        # The page neither prices nor registers anything itself: no bundle route but the verification.
        assert "/payments/pay-url" not in text and "/checkouts" not in text.replace("POST /checkouts", ""), (
            file
        )


def test_checkout_is_registered_signed_with_the_servers_choice(demo: DemoServer, shop: Shop) -> None:
    """``POST /api/checkout`` answers the pay link only; the bundle holds the server's line."""
    product, price = shop.catalogue()["one_time"]
    before = dict(demo.registered)
    response = requests.post(
        f"{demo.url}/api/checkout", json={"product": price["code"], "mode": "redirect"}, timeout=30
    )
    assert response.status_code == 201, response.text
    answer = response.json()
    assert set(answer) == {"payUrl", "orderCode"}
    assert answer["payUrl"].startswith(shop.stack.sandbox_url + "/")
    assert answer["orderCode"] in answer["payUrl"]
    assert set(demo.registered) - set(before) == {answer["orderCode"]}

    view = requests.get(f"{demo.url}/api/checkout/{answer['orderCode']}", timeout=30).json()
    assert view == shop.backend_get(f"/checkouts/{view['checkoutId']}").json()  # signed: the same
    assert view["state"] == "PENDING"
    assert view["merchantRef"].startswith("demo-")
    assert view["customer"]["id"] == shop.catalogue()["customer"]["id"]
    assert view["items"] == [
        {
            "productCode": product["code"],
            "priceCode": price["code"],
            "currency": "KRW",
            "quantity": 1,
            "maxQuantity": None,
        }
    ]
    assert Decimal(str(view["expectedAmount"])) == Decimal(str(price["price"]))
    # The merchantRef is the shop's: the same one is not handed out twice.
    again = requests.post(
        f"{demo.url}/api/checkout", json={"product": price["code"], "mode": "redirect"}, timeout=30
    ).json()
    assert again["orderCode"] != answer["orderCode"]
    # The verification the page makes gives the verdict only, nothing of the merchant's record.
    verified = shop.post("/payments/verify", {"orderCode": answer["orderCode"]}).json()
    assert set(verified) == {"verified", "verdict", "orderCode", "amount", "currency", "paidAt"}
    assert verified["verdict"] == "NOT_PAID"


def test_the_merchant_client_is_found_without_pytests_path(tmp_path: Path) -> None:
    """Started as the local stack starts it (only demo/ on the path), the demo still signs."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PYTHONPATH"] = str(ROOT / "demo")
    code = (
        "import sys, steppay_demo.server as s\n"
        "assert 'steppay_merchant' not in sys.modules\n"
        "print(s.merchant_module().__file__)\n"
        "s.DemoServer(0, api_url='http://127.0.0.1:9', sandbox_url='http://127.0.0.1:9').checkout_client()\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert Path(done.stdout.strip()) == MERCHANT_DIR / "steppay_merchant.py"


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
        # Its choice is checked before anything is asked; then, no catalogue: no checkout.
        crafted = requests.post(
            f"{server.url}/api/checkout", json={"product": "p", "mode": "iframe", "quantity": 9}, timeout=10
        )
        assert crafted.status_code == 400 and "quantity" in crafted.json()["error"]["message"]
        honest = requests.post(
            f"{server.url}/api/checkout", json={"product": "p", "mode": "iframe"}, timeout=10
        )
        assert honest.status_code == 502
        assert honest.json()["error"]["code"] == "catalogue_unavailable"
        assert server.registered == {}
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


# -- the demo's README and its screenshot -------------------------------------------------------


def _demo_readme() -> str:
    """demo/README.md (README.md links to it for the demo shop)."""
    return (ROOT / "demo" / "README.md").read_text(encoding="utf-8")


def test_readme_mode_snippets_are_taken_from_the_demo_page() -> None:
    section = _demo_readme()
    app_js = (SITE_DIR / "app.js").read_text(encoding="utf-8")
    # (a snippet inside a list item is indented as the item)
    snippets = [textwrap.dedent(s) for s in re.findall(r"```js\n(.*?)```", section, re.S)]
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
        'shopServer("/api/checkout", { product: item.priceCode, mode, lang })',
    ):
        assert needle in joined, needle
    assert "../docs/images/demo.png" in section
    assert "make screenshot" in section
    for route in ("POST /api/checkout", "GET /api/checkout/<orderCode>", "POST /checkouts"):
        assert route in section, route
    assert "/payments/pay-url" not in section


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
