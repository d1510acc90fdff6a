"""The demo server is the merchant's backend: it decides what is sold and registers it, signed.

* The page sends its choice only (``POST /api/checkout`` ``{product, mode, lang}``); a crafted
  request carrying a price, a quantity, items, a customer, a merchantRef or return URLs is refused
  and registers nothing; an honest one registers the server's line (quantity 1, its price), which
  the pay page offers no way to change.
* The browser cannot register a checkout itself: ``POST /checkouts`` unsigned is refused.
* With wrong credentials the demo server's signed call is refused (403 from the API): the page shows
  the error and nothing is registered.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from browser.shopper import PAY_PAGE, assert_the_servers_choice, checkout_count, merchant_record, open_shop
from e2e.conftest import Shop
from playwright.sync_api import expect

from steppay_demo.server import DemoServer

CRAFTED_FIELDS: dict[str, Any] = {
    "price": 1,
    "amount": 1,
    "expectedAmount": 1,
    "quantity": 50,
    "maxQuantity": 1000,
    "items": [{"productCode": "x", "priceCode": "y", "currency": "KRW", "quantity": 50}],
    "customerId": 1,
    "merchantRef": "cart-forged",
    "successUrl": "https://evil.example/ok",
    "currency": "USD",
}

# The page's own fetch, as a shopper's devtools would send it; answers {status, body}.
FETCH = """async (body) => {
  const response = await fetch("/api/checkout", {
    method: "POST", headers: {"Content-Type": "application/json"}, body: JSON.stringify(body)});
  return {status: response.status, body: await response.json()};
}"""


def test_the_page_cannot_choose_the_price_or_the_quantity(page: Any, demo: DemoServer, shop: Shop) -> None:
    price_code = open_shop(page, demo, "en", "one_time", "iframe")
    choice = {"product": price_code, "mode": "iframe", "lang": "en"}
    before, registered = checkout_count(shop), dict(demo.registered)

    for field, value in CRAFTED_FIELDS.items():
        answer = page.evaluate(FETCH, {**choice, field: value})
        assert answer["status"] == 400, (field, answer)
        assert answer["body"]["error"]["code"] == "invalid_request"
        assert field in answer["body"]["error"]["message"]
    for crafted in (
        {**choice, "product": "price_forged"},  # not on sale in the shop's catalogue
        {**choice, "mode": "window"},
        {**choice, "lang": "fr"},
        {"mode": "iframe"},
        [choice],
    ):
        answer = page.evaluate(FETCH, crafted)
        assert answer["status"] == 400, (crafted, answer)
        assert answer["body"]["error"]["code"] in ("invalid_request", "unknown_product")
    assert checkout_count(shop) == before  # nothing was registered
    assert demo.registered == registered

    # The honest request: the answer is the pay link and the order code, nothing else ...
    answer = page.evaluate(FETCH, choice)
    assert answer["status"] == 201, answer
    assert set(answer["body"]) == {"payUrl", "orderCode"}
    code = answer["body"]["orderCode"]
    assert checkout_count(shop) == before + 1
    # ... and what was registered is the server's line: quantity 1 at the catalogue's price.
    assert_the_servers_choice(merchant_record(demo, shop, code), shop, price_code, 15000)
    assert merchant_record(demo, shop, code)["state"] == "PENDING"

    # The pay page offers no quantity to change (the shop did not register a maxQuantity).
    page.goto(answer["body"]["payUrl"])
    page.wait_for_url(PAY_PAGE)
    expect(page.locator("#pay-button")).to_be_visible()
    expect(page.locator("input.quantity")).to_have_count(0)


def test_the_browser_cannot_register_a_checkout_itself(page: Any, demo: DemoServer, shop: Shop) -> None:
    """``POST /checkouts`` from the page (unsigned: it holds no AWS key) is refused by the API."""
    open_shop(page, demo, "en", "one_time", "redirect")
    ref = f"cart-browser-{uuid.uuid4().hex[:12]}"
    body = shop.checkout_body("one_time", merchantRef=ref, expectedAmount=1)
    answer = page.evaluate(
        """async ([url, body]) => {
          try {
            const response = await fetch(url, {method: "POST",
              headers: {"Content-Type": "application/json"}, body: JSON.stringify(body)});
            return {status: response.status};
          } catch (error) {
            return {status: 0, error: String(error)};  // refused before that (CORS)
          }
        }""",
        [f"{shop.stack.api_url}/checkouts", body],
    )
    assert answer["status"] in (0, 403), answer
    assert shop.backend_get(f"/checkouts?merchantRef={ref}").status_code == 404


@pytest.fixture
def wrong_key_demo(local_stack: Any) -> Iterator[DemoServer]:
    """A demo server whose signing secret is wrong (the local API accepts only local/local)."""
    server = DemoServer(
        0,
        api_url=local_stack.api_url,
        sandbox_url=local_stack.sandbox_url,
        merchant_credentials=("local", "not-the-local-secret"),
    ).start()
    try:
        yield server
    finally:
        server.stop()


def _ask(server: DemoServer, body: Any, **headers: str) -> requests.Response:
    return requests.post(
        f"{server.url}/api/checkout",
        data=json.dumps(body),
        headers={"Content-Type": "application/json", **headers},
        timeout=30,
    )


@pytest.mark.parametrize("credentials", [("local", "not-the-local-secret"), ("AKIDNOTLOCAL", "local")])
def test_a_wrong_signing_key_is_refused_and_registers_nothing(
    credentials: tuple[str, str], local_stack: Any, shop: Shop
) -> None:
    server = DemoServer(
        0, api_url=local_stack.api_url, sandbox_url=local_stack.sandbox_url, merchant_credentials=credentials
    ).start()
    try:
        price_code = shop.catalogue()["one_time"][1]["code"]
        before = checkout_count(shop)
        response = _ask(server, {"product": price_code, "mode": "redirect", "lang": "en"})
        assert response.status_code == 502, response.text
        error = response.json()["error"]
        assert error["code"] == "checkout_refused"
        assert "403" in error["message"]
        assert "not-the-local-secret" not in response.text
        assert server.registered == {}
        assert checkout_count(shop) == before
    finally:
        server.stop()


def test_a_refused_registration_is_shown_on_the_page(
    page: Any, wrong_key_demo: DemoServer, shop: Shop, screenshots: Any
) -> None:
    before = checkout_count(shop)
    open_shop(page, wrong_key_demo, "en", "one_time", "iframe")
    page.locator("#pay").click()
    result = page.locator("#result")
    expect(result).to_have_attribute("data-result", "error")
    expect(page.locator("#result-verdict")).to_have_text("error: checkout_refused")
    expect(page.locator("#result-note")).to_contain_text("403")
    expect(page.locator("#overlay")).to_be_hidden()  # no pay page was opened
    expect(page.locator("#pay")).to_be_enabled()
    page.screenshot(path=str(screenshots / "refused-checkout.png"), full_page=True, animations="disabled")
    assert wrong_key_demo.registered == {}
    assert checkout_count(shop) == before


def test_the_checkout_route_refuses_other_sites_and_other_bodies(demo: DemoServer, shop: Shop) -> None:
    price_code = shop.catalogue()["one_time"][1]["code"]
    choice = {"product": price_code, "mode": "popup", "lang": "ko"}
    before = checkout_count(shop)
    refused = _ask(demo, choice, Origin="https://evil.example")
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "forbidden_origin"
    form = requests.post(f"{demo.url}/api/checkout", data={"product": price_code}, timeout=30)
    assert form.status_code == 415  # a plain HTML form (cross-site or not) cannot ask
    too_big = _ask(demo, {**choice, "lang": "ko" + " " * 5000})
    assert too_big.status_code == 413
    assert requests.post(f"{demo.url}/api/other", json=choice, timeout=30).status_code == 404
    assert checkout_count(shop) == before
    # The merchant's view is of this shop's own checkouts only.
    for code in ("order_unknown", "..%2fchk", "x" * 100):
        assert requests.get(f"{demo.url}/api/checkout/{code}", timeout=30).status_code == 404


def test_the_return_urls_are_the_shops_own_result_page(demo: DemoServer, shop: Shop) -> None:
    """Registered through ``localhost``, the result page comes back on ``localhost`` (the page's origin)."""
    price_code = shop.catalogue()["recurring"][1]["code"]
    port = demo.url.rsplit(":", 1)[1]
    answer = requests.post(
        f"http://localhost:{port}/api/checkout",
        json={"product": price_code, "mode": "popup", "lang": "ko"},
        headers={"Origin": f"http://localhost:{port}"},
        timeout=30,
    )
    assert answer.status_code == 201, answer.text
    record = merchant_record(demo, shop, answer.json()["orderCode"])
    assert Decimal(str(record["amount"])) == 9900
    view = shop.backend_get(f"/checkouts/{record['checkoutId']}").json()
    assert view == record
    success = _success_url(answer.json()["payUrl"])
    assert success == f"http://localhost:{port}/result.html?mode=popup&return=success&lang=ko"
    # A Host header naming another site is not believed: the shop's own address is used.
    other = _ask(demo, {"product": price_code, "mode": "redirect", "lang": "en"}, Host="evil.example")
    assert other.status_code == 201, other.text
    assert _success_url(other.json()["payUrl"]).startswith(f"{demo.url}/result.html?mode=redirect&")


def _success_url(pay_url: str) -> str:
    return parse_qs(urlsplit(pay_url).query)["successUrl"][0]
