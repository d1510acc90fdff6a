"""The shopper's chosen quantity (``complete``'s ``quantity``, the pay page's inputs) and the
test-only ``tamper`` control (not something StepPay does)."""

from __future__ import annotations

import json
from html.parser import HTMLParser
from typing import Any

import pytest
from fixtures.sandbox import SandboxClient, WebhookReceiver, v2_event
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from steppay_sandbox import cli

ONE_TIME_PRICE = 15_000  # price_onetime_demo
MONTHLY_PRICE = 9_900  # price_monthly_demo
REDIRECTS = {"successUrl": "https://shop.example.com/ok?cart=1", "lang": "en"}


class Page(HTMLParser):
    """The pay page's form: hidden inputs, number inputs and buttons (attributes by name/id)."""

    def __init__(self) -> None:
        super().__init__()
        self.hidden: dict[str, str] = {}
        self.numbers: dict[str, dict[str, str]] = {}
        self.buttons: dict[str, dict[str, str]] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {k: v or "" for k, v in attrs}
        if tag == "input" and values.get("type") == "hidden":
            self.hidden[values["name"]] = values.get("value", "")
        elif tag == "input" and values.get("type") == "number":
            self.numbers[values["name"]] = values
        elif tag == "button":
            self.buttons[values.get("id", "")] = values


def parse(html: str) -> Page:
    page = Page()
    page.feed(html)
    return page


def pay_link(client: SandboxClient, order: dict[str, Any]) -> str:
    response = client.api("GET", f"/api/v1/orders/{order['orderCode']}/pay", params=REDIRECTS)
    assert response.status_code == 302, response.text
    return str(response.headers["Location"])


def create(client: SandboxClient, *items: dict[str, Any], customer_id: int = 1001) -> dict[str, Any]:
    """An order of the given items (``kind`` one_time/recurring, ``min``, ``max``)."""
    catalogue = client.catalogue()
    body_items = []
    for item in items:
        product, price = catalogue[item.get("kind", "one_time")]
        entry: dict[str, Any] = {
            "productCode": product["code"],
            "priceCode": price["code"],
            "currency": "KRW",
            "minimumQuantity": item.get("min", 1),
        }
        if item.get("max") is not None:
            entry["maximumQuantity"] = item["max"]
        body_items.append(entry)
    response = client.api("POST", "/api/v1/orders", json={"customerId": customer_id, "items": body_items})
    assert response.status_code == 201, response.text
    return dict(response.json())


def detail(client: SandboxClient, code: str) -> dict[str, Any]:
    response = client.api("GET", f"/api/v1/orders/{code}")
    assert response.status_code == 200, response.text
    return dict(response.json())


def complete(client: SandboxClient, code: str, **body: Any) -> Any:
    return client.control("POST", f"/orders/{code}/complete", {"outcome": "success", **body})


def tamper(client: SandboxClient, code: str, body: Any) -> Any:
    return client.control("POST", f"/orders/{code}/tamper", body)


def assert_unpaid(client: SandboxClient, code: str) -> None:
    order = detail(client, code)
    assert order["paymentDate"] is None and order["paidAmount"] == 0 and order["payment"] is None
    assert [i["status"] for i in order["items"]] == ["CREATED"] * len(order["items"])
    assert not client.webhook_log(orderCode=code, event="order.payment_completed")


# -- complete with a quantity ----------------------------------------------------------------


def test_a_chosen_quantity_is_paid_and_reported(sandbox_client: SandboxClient) -> None:
    order = create(sandbox_client, {"min": 1, "max": 5})
    assert order["amount"] == ONE_TIME_PRICE  # before payment: price x minimumQuantity
    response = complete(sandbox_client, order["orderCode"], quantity=3)
    assert response.status_code == 200, response.text
    assert response.json()["paidAmount"] == 3 * ONE_TIME_PRICE
    paid = detail(sandbox_client, order["orderCode"])
    assert paid["paidAmount"] == paid["amount"] == paid["payment"]["amount"] == 3 * ONE_TIME_PRICE
    assert paid["leftAmount"] == 0
    [item] = paid["items"]
    assert item["quantity"] == 3 and item["paidAmount"] == 3 * ONE_TIME_PRICE
    assert (item["minimumQuantity"], item["maximumQuantity"]) == (1, 5)
    receipt = sandbox_client.api("GET", f"/api/payment/receipt/{paid['idKey']}").json()
    assert receipt["amount"] == 3 * ONE_TIME_PRICE and receipt["status"] == "COMPLETE"
    # The whole (chosen) amount can be refunded, not more.
    refund = sandbox_client.control("POST", f"/orders/{order['orderCode']}/refund")
    assert refund.json()["returnedAmount"] == 3 * ONE_TIME_PRICE


@pytest.mark.parametrize("chosen", [1, 5])
def test_the_bounds_themselves_may_be_chosen(sandbox_client: SandboxClient, chosen: int) -> None:
    order = create(sandbox_client, {"min": 1, "max": 5})
    assert complete(sandbox_client, order["orderCode"], quantity=chosen).status_code == 200
    assert detail(sandbox_client, order["orderCode"])["paidAmount"] == chosen * ONE_TIME_PRICE


def test_a_quantity_map_chooses_per_price(sandbox_client: SandboxClient) -> None:
    order = create(sandbox_client, {"min": 1, "max": 4}, {"kind": "recurring", "min": 1, "max": 3})
    response = complete(sandbox_client, order["orderCode"], quantity={"price_monthly_demo": 3})
    assert response.status_code == 200, response.text
    paid = detail(sandbox_client, order["orderCode"])
    assert [i["quantity"] for i in paid["items"]] == [1, 3]  # unnamed items keep their minimum
    assert paid["paidAmount"] == ONE_TIME_PRICE + 3 * MONTHLY_PRICE
    [sub] = paid["subscriptions"]
    renewal = sandbox_client.control("POST", f"/subscriptions/{sub['id']}/renew").json()
    assert renewal["paidAmount"] == 3 * MONTHLY_PRICE  # the subscription renews the chosen quantity


def test_without_a_quantity_the_minimum_is_paid(sandbox_client: SandboxClient) -> None:
    order = create(sandbox_client, {"min": 2, "max": 5})
    assert complete(sandbox_client, order["orderCode"]).status_code == 200
    paid = detail(sandbox_client, order["orderCode"])
    assert paid["items"][0]["quantity"] == 2 and paid["paidAmount"] == 2 * ONE_TIME_PRICE


@pytest.mark.parametrize(
    ("bounds", "quantity"),
    [
        ({"min": 1, "max": 5}, 6),  # above maximumQuantity
        ({"min": 2, "max": 5}, 1),  # below minimumQuantity
        ({"min": 1}, 2),  # no maximumQuantity: only the minimum
        ({"min": 2, "max": 2}, 3),
        ({"min": 1, "max": 5}, {"price_onetime_demo": 9}),
        ({"min": 1, "max": 5}, {"price_monthly_demo": 2}),  # not a price of this order
        ({"min": 1, "max": 5}, 0),
        ({"min": 1, "max": 5}, -1),
        ({"min": 1, "max": 5}, 2.0),
        ({"min": 1, "max": 5}, "2"),
        ({"min": 1, "max": 5}, True),
        ({"min": 1, "max": 5}, {}),
        ({"min": 1, "max": 5}, {"price_onetime_demo": "2"}),
        ({"min": 1, "max": 5}, [2]),
    ],
)
def test_a_quantity_outside_the_bounds_is_refused_and_nothing_is_paid(
    sandbox_client: SandboxClient, bounds: dict[str, int], quantity: Any
) -> None:
    order = create(sandbox_client, bounds)
    response = complete(sandbox_client, order["orderCode"], quantity=quantity)
    assert response.status_code == 400, response.text
    error = response.json()
    assert error["errorCode"] == "INVALID_QUANTITY" and error["errorMessage"]
    assert set(error) == {"traceId", "errorCode", "errorMessage", "details"}
    assert_unpaid(sandbox_client, order["orderCode"])
    assert complete(sandbox_client, order["orderCode"]).status_code == 200  # still payable


def test_the_out_of_bounds_message_names_the_bounds(sandbox_client: SandboxClient) -> None:
    order = create(sandbox_client, {"min": 2, "max": 4})
    error = complete(sandbox_client, order["orderCode"], quantity=5).json()
    assert "between 2 and 4" in error["errorMessage"]
    assert error["details"] == {"field": "quantity"}


def test_a_quantity_needs_a_successful_outcome(sandbox_client: SandboxClient) -> None:
    order = create(sandbox_client, {"min": 1, "max": 5})
    response = sandbox_client.control(
        "POST", f"/orders/{order['orderCode']}/complete", {"outcome": "failure", "quantity": 2}
    )
    assert response.status_code == 400 and response.json()["errorCode"] == "INVALID_QUANTITY"
    assert detail(sandbox_client, order["orderCode"])["payment"] is None


def test_a_paid_order_is_409_even_with_a_quantity(sandbox_client: SandboxClient) -> None:
    order = create(sandbox_client, {"min": 1, "max": 5})
    assert complete(sandbox_client, order["orderCode"], quantity=2).status_code == 200
    again = complete(sandbox_client, order["orderCode"], quantity=4)
    assert again.status_code == 409 and again.json()["errorCode"] == "ORDER_ALREADY_PAID"
    assert detail(sandbox_client, order["orderCode"])["paidAmount"] == 2 * ONE_TIME_PRICE


def test_a_failed_attempt_then_a_chosen_quantity(sandbox_client: SandboxClient) -> None:
    order = create(sandbox_client, {"min": 1, "max": 5})
    sandbox_client.complete(order["orderCode"], "failure")
    assert complete(sandbox_client, order["orderCode"], quantity=4).status_code == 200
    paid = detail(sandbox_client, order["orderCode"])
    assert paid["paidAmount"] == paid["payment"]["amount"] == 4 * ONE_TIME_PRICE
    assert paid["payment"]["errorCode"] is None


def test_webhooks_carry_the_chosen_quantity_and_amount(
    sandbox_client: SandboxClient, sandbox_webhooks: WebhookReceiver
) -> None:
    order = create(sandbox_client, {"min": 1, "max": 5})
    assert complete(sandbox_client, order["orderCode"], quantity=3).status_code == 200
    [paid] = sandbox_webhooks.wait_for(v2_event("order.payment_completed", id=order["id"]))
    data = paid.json()["data"]
    assert data["paidAmount"] == 3 * ONE_TIME_PRICE and data["leftAmount"] == 0
    assert [(i["quantity"], i["paidAmount"], i["price"]) for i in data["items"]] == [
        (3, 3 * ONE_TIME_PRICE, ONE_TIME_PRICE)
    ]
    [payment] = sandbox_webhooks.wait_for(v2_event("payment.completed", orderId=order["id"]))
    assert payment.json()["data"]["paidAmount"] == 3 * ONE_TIME_PRICE


# -- the pay page ----------------------------------------------------------------------------


def quantity_inputs(html: str) -> dict[str, dict[str, str]]:
    return parse(html).numbers


def test_pay_page_shows_a_quantity_input_when_the_shopper_may_choose(sandbox_client: SandboxClient) -> None:
    order = create(sandbox_client, {"min": 2, "max": 6}, {"kind": "recurring", "min": 1})
    html = sandbox_client.http.get(pay_link(sandbox_client, order), timeout=10).text
    inputs = quantity_inputs(html)
    assert list(inputs) == ["quantity.price_onetime_demo"]  # max == min (none given): no input
    field = inputs["quantity.price_onetime_demo"]
    assert (field["min"], field["max"], field["value"]) == ("2", "6", "2")
    assert field["id"] == "quantity-price_onetime_demo" and "required" in field
    assert field["data-unit-price"] == str(ONE_TIME_PRICE)
    form = parse(html)
    assert set(form.buttons) == {"pay-button", "vbank-button", "fail-button", "cancel-button"}
    assert "formnovalidate" not in form.buttons["vbank-button"]  # a virtual account charges the choice
    assert form.hidden == REDIRECTS  # the hidden fields are unchanged
    assert "formnovalidate" in form.buttons["cancel-button"]
    assert "formnovalidate" not in form.buttons["pay-button"]


def test_pay_page_without_a_choice_has_no_quantity_input(sandbox_client: SandboxClient) -> None:
    order = sandbox_client.create_order(quantity=2)
    html = sandbox_client.http.get(pay_link(sandbox_client, order), timeout=10).text
    assert quantity_inputs(html) == {} and "quantity-note" not in html
    assert "formnovalidate" not in html


def post_page(client: SandboxClient, order: dict[str, Any], **data: str) -> Any:
    return client.http.post(
        f"{client.base_url}/pay/{order['orderCode']}", data=data, allow_redirects=False, timeout=10
    )


def test_submitting_quantity_2_pays_twice_the_price(sandbox_client: SandboxClient) -> None:
    order = create(sandbox_client, {"min": 1, "max": 5})
    page = sandbox_client.http.get(pay_link(sandbox_client, order), timeout=10)
    form = parse(page.text)
    data = {**form.hidden, "quantity.price_onetime_demo": "2", "action": "pay"}
    response = post_page(sandbox_client, order, **data)
    assert response.status_code == 303
    assert response.headers["Location"].endswith(f"order_code={order['orderCode']}&status=success")
    paid = detail(sandbox_client, order["orderCode"])
    assert paid["paidAmount"] == 2 * ONE_TIME_PRICE and paid["items"][0]["quantity"] == 2


def test_the_preselected_quantity_pays_the_minimum(sandbox_client: SandboxClient) -> None:
    order = create(sandbox_client, {"min": 3, "max": 5})
    page = sandbox_client.http.get(pay_link(sandbox_client, order), timeout=10)
    [(name, field)] = quantity_inputs(page.text).items()
    response = post_page(sandbox_client, order, **{name: field["value"], "action": "pay"})
    assert response.status_code == 200 and "Payment complete" in response.text
    assert detail(sandbox_client, order["orderCode"])["paidAmount"] == 3 * ONE_TIME_PRICE


@pytest.mark.parametrize("value", ["6", "0", "", "two", "1.5", "-1", "99999999999"])
def test_the_pay_page_refuses_a_quantity_out_of_bounds(sandbox_client: SandboxClient, value: str) -> None:
    order = create(sandbox_client, {"min": 1, "max": 5})
    response = post_page(
        sandbox_client,
        order,
        **{"quantity.price_onetime_demo": value, "action": "pay", "successUrl": REDIRECTS["successUrl"]},
    )
    assert response.status_code == 400 and "Location" not in response.headers
    assert "text/html" in response.headers["Content-Type"]
    assert "quantity cannot be chosen" in response.text
    assert_unpaid(sandbox_client, order["orderCode"])


def test_the_pay_page_refuses_a_quantity_for_an_item_without_choice(sandbox_client: SandboxClient) -> None:
    order = create(sandbox_client, {"min": 1})
    response = post_page(sandbox_client, order, **{"quantity.price_onetime_demo": "2", "action": "pay"})
    assert response.status_code == 400
    assert_unpaid(sandbox_client, order["orderCode"])


def test_fail_and_cancel_ignore_the_quantity(sandbox_client: SandboxClient) -> None:
    order = create(sandbox_client, {"min": 1, "max": 5})
    response = post_page(sandbox_client, order, **{"quantity.price_onetime_demo": "99", "action": "fail"})
    assert response.status_code == 200 and "Payment failed" in response.text
    assert detail(sandbox_client, order["orderCode"])["items"][0]["status"] == "PAYMENT_FAILURE"
    response = post_page(sandbox_client, order, **{"quantity.price_onetime_demo": "x", "action": "cancel"})
    assert response.status_code == 200


# -- tamper (test only: not something StepPay does) -------------------------------------------


def test_tamper_raises_the_maximum_so_complete_pays_more(sandbox_client: SandboxClient) -> None:
    order = create(sandbox_client, {"min": 1, "max": 2})
    response = tamper(sandbox_client, order["orderCode"], {"items": [{"maximumQuantity": 10}]})
    assert response.status_code == 200, response.text
    answered = response.json()
    assert answered["orderCode"] == order["orderCode"] and answered["items"][0]["maximumQuantity"] == 10
    assert complete(sandbox_client, order["orderCode"], quantity=10).status_code == 200
    paid = detail(sandbox_client, order["orderCode"])
    assert paid["paidAmount"] == 10 * ONE_TIME_PRICE and paid["items"][0]["quantity"] == 10


def test_tamper_changes_the_minimum(sandbox_client: SandboxClient) -> None:
    order = create(sandbox_client, {"min": 1})
    answered = tamper(
        sandbox_client, order["orderCode"], {"items": [{"minimumQuantity": 4, "maximumQuantity": 4}]}
    ).json()
    assert answered["amount"] == answered["leftAmount"] == 4 * ONE_TIME_PRICE
    assert complete(sandbox_client, order["orderCode"]).status_code == 200
    assert detail(sandbox_client, order["orderCode"])["paidAmount"] == 4 * ONE_TIME_PRICE


def test_tamper_swaps_the_price(sandbox_client: SandboxClient) -> None:
    order = create(sandbox_client, {"kind": "recurring", "min": 1})
    assert order["type"] == "RECURRING_INITIAL"
    answered = tamper(sandbox_client, order["orderCode"], {"items": [{"priceCode": "price_onetime_demo"}]})
    assert answered.status_code == 200, answered.text
    item = answered.json()["items"][0]
    assert (item["price"]["code"], item["product"]["code"]) == ("price_onetime_demo", "product_onetime_demo")
    assert answered.json()["type"] == "ONE_TIME"  # the order now is what its item says
    assert complete(sandbox_client, order["orderCode"]).status_code == 200
    paid = detail(sandbox_client, order["orderCode"])
    assert paid["paidAmount"] == ONE_TIME_PRICE and paid["subscriptions"] == []


def test_tamper_by_product_code_takes_its_only_price(sandbox_client: SandboxClient) -> None:
    order = create(sandbox_client, {"min": 2})
    answered = tamper(
        sandbox_client, order["orderCode"], {"items": [{"productCode": "product_subscription_demo"}]}
    ).json()
    assert answered["items"][0]["price"]["code"] == "price_monthly_demo"
    assert answered["type"] == "RECURRING_INITIAL"
    paid = complete(sandbox_client, order["orderCode"]).json()
    assert paid["paidAmount"] == 2 * MONTHLY_PRICE and paid["subscriptions"]


def test_tamper_changes_the_customer(sandbox_client: SandboxClient) -> None:
    order = create(sandbox_client, {"min": 1})
    answered = tamper(sandbox_client, order["orderCode"], {"customerId": 1002})
    assert answered.status_code == 200 and answered.json()["customer"]["id"] == 1002
    complete(sandbox_client, order["orderCode"])
    assert detail(sandbox_client, order["orderCode"])["customer"]["id"] == 1002


def test_tamper_leaves_other_items_and_sends_no_webhook(
    sandbox_client: SandboxClient, sandbox_webhooks: WebhookReceiver
) -> None:
    order = create(sandbox_client, {"min": 1, "max": 3}, {"min": 2})
    sandbox_webhooks.wait_for(v2_event("order.created", id=order["id"]))
    answered = tamper(sandbox_client, order["orderCode"], {"items": [{}, {"maximumQuantity": 5}]}).json()
    assert [(i["minimumQuantity"], i["maximumQuantity"]) for i in answered["items"]] == [(1, 3), (2, 5)]
    assert [e["event"] for e in sandbox_client.webhook_log(orderCode=order["orderCode"])] == ["order.created"]
    assert "tamper" not in json.dumps(detail(sandbox_client, order["orderCode"])["orderLogs"])


@pytest.mark.parametrize(
    "body",
    [
        {},
        [],
        {"items": [{"maximumQuantity": 0}]},
        {"items": [{"minimumQuantity": 3}]},  # above the current maximum (2)
        {"items": [{"minimumQuantity": 1, "maximumQuantity": 0}]},
        {"items": [{"priceCode": "price_nope"}]},
        {"items": [{"productCode": "product_nope"}]},
        {"items": [{"priceCode": "price_onetime_demo", "productCode": "product_subscription_demo"}]},
        {"items": [{"quantity": 3}]},
        {"items": [{}, {}]},  # more entries than items
        {"items": {"0": {}}},
        {"items": ["x"]},
        {"customerId": 999_999},
        {"customerId": "1002"},
        {"customerCode": "customer_Zr4Tn8LbE"},
        {"amount": 1},
    ],
)
def test_tamper_refuses_what_it_cannot_do(sandbox_client: SandboxClient, body: Any) -> None:
    order = create(sandbox_client, {"min": 1, "max": 2})
    before = detail(sandbox_client, order["orderCode"])
    response = tamper(sandbox_client, order["orderCode"], body)
    assert response.status_code == 400, response.text
    assert set(response.json()) == {"traceId", "errorCode", "errorMessage", "details"}
    after = detail(sandbox_client, order["orderCode"])
    assert after["items"] == before["items"] and after["customer"] == before["customer"]


def test_tamper_needs_a_json_body(sandbox_client: SandboxClient) -> None:
    order = create(sandbox_client, {"min": 1})
    response = sandbox_client.http.post(
        f"{sandbox_client.base_url}/_sandbox/orders/{order['orderCode']}/tamper", data=b"{", timeout=10
    )
    assert response.status_code == 400 and response.json()["errorCode"] == "INVALID_JSON"
    assert tamper(sandbox_client, "order_doesnotexist", {"customerId": 1002}).status_code == 404


def test_tamper_on_a_paid_order_is_refused(sandbox_client: SandboxClient) -> None:
    order = create(sandbox_client, {"min": 1, "max": 3})
    complete(sandbox_client, order["orderCode"], quantity=2)
    before = detail(sandbox_client, order["orderCode"])
    for body in ({"items": [{"maximumQuantity": 9}]}, {"customerId": 1002}, {"bogus": 1}):
        response = tamper(sandbox_client, order["orderCode"], body)
        assert response.status_code == 409 and response.json()["errorCode"] == "ORDER_ALREADY_PAID"
    assert detail(sandbox_client, order["orderCode"])["items"] == before["items"]


def test_tamper_on_a_cancelled_order_is_refused(sandbox_client: SandboxClient) -> None:
    order = create(sandbox_client, {"min": 1})
    sandbox_client.api("PATCH", f"/api/v1/orders/{order['orderCode']}/cancel", json={"requestPrice": 0})
    response = tamper(sandbox_client, order["orderCode"], {"customerId": 1002})
    assert response.status_code == 409 and response.json()["errorCode"] == "ORDER_CANCELLED"


def test_tamper_after_a_failed_attempt_is_allowed(sandbox_client: SandboxClient) -> None:
    order = create(sandbox_client, {"min": 1})
    sandbox_client.complete(order["orderCode"], "failure")
    assert tamper(sandbox_client, order["orderCode"], {"items": [{"maximumQuantity": 3}]}).status_code == 200
    assert complete(sandbox_client, order["orderCode"], quantity=3).json()["paidAmount"] == 3 * ONE_TIME_PRICE


# -- the CLI ---------------------------------------------------------------------------------


def run(capsys: pytest.CaptureFixture[str], url: str, *args: str) -> tuple[int, Any]:
    code = cli.main(["--url", url, *args])
    out = capsys.readouterr().out
    return code, json.loads(out) if out else None


def test_cli_complete_with_a_quantity(
    sandbox_client: SandboxClient, capsys: pytest.CaptureFixture[str]
) -> None:
    url = sandbox_client.base_url
    order = create(sandbox_client, {"min": 1, "max": 5})
    code, error = run(capsys, url, "complete", order["orderCode"], "--quantity", "6")
    assert code == 1 and error["errorCode"] == "INVALID_QUANTITY"
    code, paid = run(capsys, url, "complete", order["orderCode"], "--quantity", "3")
    assert code == 0 and paid["paidAmount"] == 3 * ONE_TIME_PRICE
    both = create(sandbox_client, {"min": 1, "max": 5}, {"kind": "recurring", "min": 1, "max": 2})
    code, paid = run(
        capsys,
        url,
        "complete",
        both["orderCode"],
        "--quantity",
        "price_onetime_demo=2",
        "--quantity",
        "price_monthly_demo=2",
    )
    assert code == 0 and paid["paidAmount"] == 2 * ONE_TIME_PRICE + 2 * MONTHLY_PRICE
    assert cli.main(["--url", url, "complete", both["orderCode"], "--quantity", "two"]) == 2
    assert (
        cli.main(["--url", url, "complete", both["orderCode"], "--quantity", "2", "--quantity", "x=1"]) == 2
    )


def test_cli_tamper(sandbox_client: SandboxClient, capsys: pytest.CaptureFixture[str]) -> None:
    url = sandbox_client.base_url
    order = create(sandbox_client, {"min": 1}, {"min": 1})
    code, answered = run(
        capsys,
        url,
        "tamper",
        order["orderCode"],
        "--item",
        "1",
        "--max-quantity",
        "4",
        "--customer-id",
        "1002",
    )
    assert code == 0 and answered["items"][1]["maximumQuantity"] == 4 and answered["customer"]["id"] == 1002
    code, answered = run(
        capsys,
        url,
        "tamper",
        order["orderCode"],
        "--body",
        '{"items": [{"priceCode": "price_monthly_demo"}]}',
    )
    assert code == 0 and answered["items"][0]["price"]["code"] == "price_monthly_demo"
    code, error = run(capsys, url, "tamper", order["orderCode"], "--price-code", "price_nope")
    assert code == 1 and error["errorCode"] == "PRICE_NOT_FOUND"
    assert cli.main(["--url", url, "tamper", order["orderCode"]]) == 2
    assert cli.main(["--url", url, "tamper", order["orderCode"], "--body", "{"]) == 2


_CHOICES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-2, 12),
    st.sampled_from([2**31, 2.0, 1.5, "2", [], [2], {}]),
    st.dictionaries(
        st.sampled_from(["price_onetime_demo", "price_monthly_demo", "price_nope"]),
        st.one_of(st.integers(-1, 7), st.just("3"), st.none()),
        max_size=3,
    ),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(choice=_CHOICES, low=st.integers(1, 3), spread=st.integers(0, 3))
def test_complete_pays_only_a_quantity_within_the_bounds(
    sandbox_client: SandboxClient, choice: Any, low: int, spread: int
) -> None:
    order = create(sandbox_client, {"min": low, "max": low + spread})
    response = complete(sandbox_client, order["orderCode"], quantity=choice)
    if choice is None:
        expected: int | None = low
    elif isinstance(choice, dict):
        value = choice.get("price_onetime_demo", low) if set(choice) <= {"price_onetime_demo"} else None
        expected = value if choice and type(value) is int and low <= value <= low + spread else None
    else:
        expected = choice if type(choice) is int and low <= choice <= low + spread else None
    if expected is None:
        assert response.status_code == 400, (choice, response.text)
        assert response.json()["errorCode"] == "INVALID_QUANTITY"
        assert detail(sandbox_client, order["orderCode"])["payment"] is None
    else:
        assert response.status_code == 200, (choice, response.text)
        paid = detail(sandbox_client, order["orderCode"])
        assert paid["paidAmount"] == expected * ONE_TIME_PRICE and paid["items"][0]["quantity"] == expected
