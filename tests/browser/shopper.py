"""What the browser tests share: opening the shop page, and what the merchant's backend sees."""

from __future__ import annotations

import json
import re
from decimal import Decimal
from typing import Any

import requests
from e2e.conftest import Shop
from playwright.sync_api import expect

from steppay_demo.server import DemoServer

AMOUNT = {
    ("en", "one_time"): "₩15,000",
    ("ko", "one_time"): "15,000원",
    ("en", "subscription"): "₩9,900",
    ("ko", "subscription"): "9,900원",
}
PAY_PAGE = re.compile(r"^http://127\.0\.0\.1:\d+/pay/order_\w+\?")


def open_shop(page: Any, demo: DemoServer, lang: str, product: str, mode: str) -> str:
    """The shop page with ``product`` and ``mode`` chosen; returns the product's price code."""
    page.goto(f"{demo.url}/?lang={lang}")
    expect(page.locator("body")).to_have_attribute("data-ready", "true")
    # The sandbox's catalogue lists the plain demo products first (newest first); later ones
    # (tax lines, trials) are of the same kinds.
    choice = page.locator(f"input[name=product][data-kind={product}]").first
    choice.check()
    page.locator(f"input[name=mode][value={mode}]").check()
    price = AMOUNT[(lang, product)] + (
        {"en": "/month", "ko": "/월"}[lang] if product == "subscription" else ""
    )
    expect(page.locator("#total")).to_have_text(price)
    return str(choice.get_attribute("value"))


def assert_registered_by_the_shop_server(
    page_requests: list[dict[str, Any]], demo: DemoServer, price_code: str, mode: str, lang: str
) -> None:
    """The page asked its own server for the checkout, with its choice only, and never the bundle."""
    asked = [r for r in page_requests if r["method"] == "POST" and r["url"] == f"{demo.url}/api/checkout"]
    assert len(asked) == 1, [r["url"] for r in page_requests]
    assert json.loads(asked[0]["body"]) == {"product": price_code, "mode": mode, "lang": lang}
    for request in page_requests:
        assert "/checkouts" not in request["url"] and "/payments/pay-url" not in request["url"], request
        assert "authorization" not in request["headers"] and "x-amz-date" not in request["headers"]


def merchant_record(demo: DemoServer, shop: Shop, code: str) -> dict[str, Any]:
    """The checkout as the merchant's backend sees it: the demo's view, equal to the bundle's own."""
    view = requests.get(f"{demo.url}/api/checkout/{code}", timeout=30)
    assert view.status_code == 200, view.text
    record = dict(view.json())
    direct = shop.backend_get(f"/checkouts/{record['checkoutId']}")
    assert direct.status_code == 200, direct.text
    assert direct.json() == record
    return record


def assert_the_servers_choice(record: dict[str, Any], shop: Shop, price_code: str, amount: int) -> None:
    """What was registered is what the demo server sells: one line, quantity 1, at its price."""
    catalogue = shop.catalogue()
    product = next(p for p in (catalogue["one_time"], catalogue["recurring"]) if p[1]["code"] == price_code)
    assert record["merchantRef"].startswith("demo-")
    assert record["customer"]["id"] == catalogue["customer"]["id"]
    assert record["items"] == [
        {
            "productCode": product[0]["code"],
            "priceCode": price_code,
            "currency": "KRW",
            "quantity": 1,
            "maxQuantity": None,
        }
    ]
    assert Decimal(str(record["expectedAmount"])) == amount
    assert Decimal(str(record["amount"])) == amount


def checkout_count(shop: Shop) -> int:
    """How many checkouts the bundle has registered (its CHECKOUT# records)."""
    items = shop.table().scan(ConsistentRead=True, ProjectionExpression="pk")["Items"]
    return sum(1 for item in items if str(item["pk"]).startswith("CHECKOUT#"))
