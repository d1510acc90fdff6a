"""The demo checkout in a real browser: each pay-page mode (redirect, popup, iframe) and outcome.

Each test clicks through the real pages (the demo shop, whose server registers the checkout with a
signed ``POST /checkouts``; the sandbox's pay page; the demo's result page, which verifies), asserts
what the shopper sees, then what the merchant's backend sees (``GET /checkouts/{id}``), what the
bundle stored in DynamoDB Local and announced on the bus (read from ``local-event-tap``), and saves
a screenshot under test-artifacts/browser/.
"""

from __future__ import annotations

import re
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from browser.shopper import (
    AMOUNT,
    PAY_PAGE,
    assert_registered_by_the_shop_server,
    assert_the_servers_choice,
    merchant_record,
    open_shop,
)
from e2e.conftest import SECRET_TOKEN, Shop
from playwright.sync_api import expect

from steppay_demo.server import DemoServer

MODES = ("redirect", "popup", "iframe")
OUTCOMES = ("pay", "fail", "cancel")
BUTTON = {"pay": "#pay-button", "fail": "#fail-button", "cancel": "#cancel-button"}
SHOWN = {"pay": "paid", "fail": "failed", "cancel": "cancelled"}
# Both languages are exercised: redirect and iframe in English, popup in Korean.
LANG = {"redirect": "en", "popup": "ko", "iframe": "en"}
TITLE = {
    "en": {"paid": "Paid", "failed": "Payment failed", "cancelled": "Cancelled", "pending": "Not paid"},
    "ko": {"paid": "결제 완료", "failed": "결제 실패", "cancelled": "결제 취소", "pending": "결제되지 않음"},
}
FORGED_MESSAGE = """() => {
  const message = {type: "steppay-demo:result",
                   result: {outcome: "paid", verdict: "PAID", orderCode: "order_forged", amount: "1"}};
  (window.opener || window.parent).postMessage(message, "*");
}"""


def _product(mode: str, outcome: str) -> str:
    # The monthly subscription once (a paid popup checkout), the one-time product otherwise.
    return "subscription" if (mode, outcome) == ("popup", "pay") else "one_time"


def _assert_origin_check(shop_page: Any, pay_context: Any) -> None:
    """A result message from the pay page's origin (StepPay's, not the shop's) is ignored."""
    pay_context.evaluate(FORGED_MESSAGE)
    shop_page.wait_for_timeout(300)
    expect(shop_page.locator("#result")).to_be_hidden()


def _settled(shop: Shop) -> None:
    """Every webhook the sandbox meant to send is sent, and every event source has delivered."""
    assert shop.stack.sandbox.wait_for_webhooks(timeout=15)
    shop.settle_publisher()


@pytest.mark.parametrize(("mode", "outcome"), [(m, o) for m in MODES for o in OUTCOMES])
def test_checkout(
    mode: str,
    outcome: str,
    page: Any,
    page_requests: list[dict[str, Any]],
    demo: DemoServer,
    shop: Shop,
    screenshots: Path,
) -> None:
    lang, product, shown = LANG[mode], _product(mode, outcome), SHOWN[outcome]
    price_code = open_shop(page, demo, lang, product, mode)

    if mode == "redirect":
        page.locator("#pay").click()
        page.wait_for_url(PAY_PAGE)
        with page.expect_navigation(url=re.compile(rf"^{re.escape(demo.url)}/result\.html\?")):
            page.locator(BUTTON[outcome]).click()
        assert parse_qs(urlsplit(page.url).query)["mode"] == ["redirect"]
    elif mode == "popup":
        with page.expect_popup() as popup_info:
            page.locator("#pay").click()
        popup = popup_info.value
        popup.wait_for_url(PAY_PAGE)
        _assert_origin_check(page, popup)
        with popup.expect_event("close"):  # the result page closes its own popup
            popup.locator(BUTTON[outcome]).click()
        assert popup.is_closed()
    else:
        page.locator("#pay").click()
        expect(page.locator("#overlay")).to_be_visible()
        frame = page.locator("#pay-frame").element_handle().content_frame()
        frame.wait_for_url(PAY_PAGE)
        _assert_origin_check(page, frame)
        frame.locator(BUTTON[outcome]).click()
        expect(page.locator("#overlay")).to_be_hidden()

    # What the shopper sees: the verified result, with the order code and the amount.
    result = page.locator("#result")
    expect(result).to_have_attribute("data-result", shown)
    expect(page.locator("#result-title")).to_have_text(TITLE[lang][shown])
    code = result.get_attribute("data-order-code")
    assert code and code.startswith("order_")
    expect(page.locator("#result-order-code")).to_have_text(code)
    expect(page.locator("#result-amount")).to_have_text(AMOUNT[(lang, product)])
    expect(page.locator("#result-verdict")).to_have_text(
        {"pay": "PAID", "fail": "FAILED", "cancel": "NOT_PAID"}[outcome]
    )
    if mode != "redirect":
        assert page.url.startswith(f"{demo.url}/?")  # the shop page itself got the result
        assert page.locator("body").get_attribute("data-order-code") == code

    # The live feed shows "Payment Verified" for a paid order, and nothing for the others.
    verified_in_feed = page.locator(
        f'#events li[data-order-code="{code}"][data-detail-type="Payment Verified"]'
    )
    if outcome == "pay":
        expect(verified_in_feed).to_have_count(1, timeout=20_000)
        expect(verified_in_feed).to_have_class(re.compile(r"\bmine\b"))
    page.screenshot(path=str(screenshots / f"{mode}-{outcome}.png"), full_page=True, animations="disabled")

    # The demo server registered the checkout (signed), and chose what it holds.
    assert_registered_by_the_shop_server(page_requests, demo, price_code, mode, lang)
    expected_amount = 9900 if product == "subscription" else 15000
    checkout = merchant_record(demo, shop, code)
    assert_the_servers_choice(checkout, shop, price_code, expected_amount)
    assert checkout["orderCode"] == code
    # The result shows what the verification answers, nothing of the merchant's record (the live
    # feed beside it is the bus's, merchant-side: its events do carry the merchantRef).
    assert checkout["merchantRef"] not in result.inner_html()

    # What the bundle stored and announced.
    record = shop.record(code)
    assert record is not None
    assert record["amount"] == expected_amount
    if outcome == "pay":
        assert record["state"] == "PAID"
        assert record["order_type"] == ("RECURRING_INITIAL" if product == "subscription" else "ONE_TIME")
        assert len(shop.wait_for_events(code, 1)) >= 1
        _settled(shop)
        verified = [e for e in shop.events_for(code, max_wait=1) if e["detail-type"] == "Payment Verified"]
        assert len(verified) == 1, verified  # the redirect and StepPay's webhook: announced once
        assert verified[0]["detail"]["amount"] == str(expected_amount)
        paid = merchant_record(demo, shop, code)
        assert paid["state"] == "PAID"
        assert Decimal(str(paid["paidAmount"])) == expected_amount
        assert paid["paidAt"]
    else:
        assert record["state"] != "PAID"
        _settled(shop)
        assert shop.record(code)["state"] != "PAID"  # type: ignore[index]
        assert merchant_record(demo, shop, code)["state"] != "PAID"
        assert shop.events_for(code, max_wait=1) == []
        expect(page.locator(f'#events li[data-order-code="{code}"]')).to_have_count(0)

    # The browser never saw the Secret-Token: no request carried it, no page held it.
    for request in page_requests:
        assert "secret-token" not in request["headers"], request["url"]
        assert SECRET_TOKEN not in request["url"]
    assert SECRET_TOKEN not in page.content()


def test_hand_edited_success_url_for_an_unpaid_order_shows_not_paid(
    page: Any, demo: DemoServer, shop: Shop, screenshots: Path
) -> None:
    open_shop(page, demo, "en", "one_time", "redirect")
    page.locator("#pay").click()
    page.wait_for_url(PAY_PAGE)
    code = urlsplit(page.url).path.rsplit("/", 1)[-1]
    success_url = parse_qs(urlsplit(page.url).query)["successUrl"][0]
    order_id = shop.record(code)["order_id"]  # type: ignore[index]

    # Instead of paying, the shopper types the success URL with status=success into the address bar.
    page.goto(f"{success_url}&order_id={order_id}&order_code={code}&status=success")
    expect(page.locator("#result")).to_have_attribute("data-result", "pending")
    expect(page.locator("#result-title")).to_have_text("Not paid")
    expect(page.locator("#result-note")).to_contain_text("no payment")
    expect(page.locator("#result-order-code")).to_have_text(code)
    expect(page.locator("#result-verdict")).to_have_text("NOT_PAID")
    page.screenshot(
        path=str(screenshots / "redirect-forged-success.png"), full_page=True, animations="disabled"
    )

    assert shop.record(code)["state"] == "PENDING"  # type: ignore[index]
    _settled(shop)
    assert shop.events_for(code, max_wait=1) == []


@pytest.mark.parametrize("mode", ["popup", "iframe"])
def test_closing_the_pay_window_before_paying_shows_cancelled(
    mode: str, page: Any, demo: DemoServer, shop: Shop, screenshots: Path
) -> None:
    open_shop(page, demo, "ko", "one_time", mode)
    if mode == "popup":
        with page.expect_popup() as popup_info:
            page.locator("#pay").click()
        popup = popup_info.value
        popup.wait_for_url(PAY_PAGE)
        popup.close()  # the shopper closes the window
    else:
        page.locator("#pay").click()
        frame = page.locator("#pay-frame").element_handle().content_frame()
        frame.wait_for_url(PAY_PAGE)
        page.locator("#overlay-close").click()  # the shopper closes the frame
        expect(page.locator("#overlay")).to_be_hidden()

    # The shop page asks the API itself: StepPay has no payment, so the checkout is cancelled.
    expect(page.locator("#result")).to_have_attribute("data-result", "cancelled")
    expect(page.locator("#result-title")).to_have_text("결제 취소")
    expect(page.locator("#result-note")).to_have_text("결제창을 닫았습니다.")
    expect(page.locator("#result-verdict")).to_have_text("NOT_PAID")
    expect(page.locator("#pay")).to_be_enabled()
    code = page.locator("#result").get_attribute("data-order-code")
    assert code == page.locator("body").get_attribute("data-order-code")
    page.screenshot(path=str(screenshots / f"{mode}-closed-early.png"), full_page=True, animations="disabled")
    assert shop.record(code)["state"] == "PENDING"  # type: ignore[index]
