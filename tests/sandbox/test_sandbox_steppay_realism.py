"""What real StepPay orders do that a kind sandbox forgets (issue #16, point 1).

Unpaid items report ``quantity: 0``; orders carry TAX / SHIPPING / FEE / DISCOUNT lines,
first-sale discounts and 0-won free trials; virtual accounts (VBANK) wait for a deposit;
refunds are partial and repeated; the zone of zone-less date-times is selectable; failed
webhook deliveries are not retried unless asked, and a delivery can be resent as it was.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fixtures.sandbox import SECRET_TOKEN, SandboxClient, WebhookReceiver, v2_event

from steppay_sandbox import cli
from steppay_sandbox.server import SandboxServer

ONE_TIME = ("product_onetime_demo", "price_onetime_demo")
BOX = ("product_box_lines_demo", "price_box_lines_demo")
FIRST_SALE = ("product_first_sale_demo", "price_first_sale_monthly_demo")
TRIAL = ("product_trial_demo", "price_trial_monthly_demo")
LOCAL_DT = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}")


def create(client: SandboxClient, item: tuple[str, str], minimum: int = 1, maximum: int | None = None) -> Any:
    entry: dict[str, Any] = {
        "productCode": item[0],
        "priceCode": item[1],
        "currency": "KRW",
        "minimumQuantity": minimum,
    }
    if maximum is not None:
        entry["maximumQuantity"] = maximum
    response = client.api("POST", "/api/v1/orders", json={"customerId": 1001, "items": [entry]})
    assert response.status_code == 201, response.text
    return response.json()


def control(client: SandboxClient, path: str, body: Any = None, status: int = 200) -> Any:
    response = client.control("POST", path, body if body is not None else {})
    assert response.status_code == status, response.text
    return response.json()


def detail(client: SandboxClient, code: str) -> Any:
    response = client.api("GET", f"/api/v1/orders/{code}")
    assert response.status_code == 200, response.text
    return response.json()


def by_type(order: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {item["type"]: item for item in order["items"]}


# -- quantity --------------------------------------------------------------------------------


@dataclass
class Hooked:
    sandbox: SandboxClient
    receiver: WebhookReceiver


@pytest.fixture
def hooked(sandbox_webhooks: WebhookReceiver, sandbox_client: SandboxClient) -> Hooked:
    """The session sandbox's client, its webhooks going to a receiver."""
    return Hooked(sandbox_client, sandbox_webhooks)


def test_unpaid_items_report_quantity_zero_and_paid_ones_the_choice(hooked: Hooked) -> None:
    sandbox, sandbox_webhooks = hooked.sandbox, hooked.receiver
    order = create(sandbox, ONE_TIME, minimum=2, maximum=5)
    [item] = order["items"]
    assert (item["quantity"], item["minimumQuantity"], item["maximumQuantity"]) == (0, 2, 5)
    listed = sandbox.api("GET", "/api/v1/orders", params={"keyword": order["orderCode"]}).json()
    assert [i["quantity"] for i in listed["content"][0]["items"]] == [0]
    created = sandbox_webhooks.wait_for(v2_event("order.created", id=order["id"]))[0].json()
    assert [i["quantity"] for i in created["data"]["items"]] == [0]

    control(sandbox, f"/orders/{order['orderCode']}/complete", {"outcome": "failure"})
    assert detail(sandbox, order["orderCode"])["items"][0]["quantity"] == 0  # a failure chose nothing

    paid = control(sandbox, f"/orders/{order['orderCode']}/complete", {"outcome": "success", "quantity": 4})
    assert paid["items"][0]["quantity"] == 4 and paid["paidAmount"] == 4 * 15000
    hook = sandbox_webhooks.wait_for(v2_event("order.payment_completed", id=order["id"]))[0].json()
    assert [i["quantity"] for i in hook["data"]["items"]] == [4]


# -- TAX, SHIPPING, FEE and DISCOUNT lines ---------------------------------------------------


def test_catalogue_lines_become_order_items_priced_from_the_chosen_quantity(
    sandbox_client: SandboxClient,
) -> None:
    order = create(sandbox_client, BOX, minimum=1, maximum=5)
    assert [item["type"] for item in order["items"]] == ["SKU", "TAX", "SHIPPING", "FEE", "DISCOUNT"]
    assert all(item["quantity"] == 0 for item in order["items"])
    # Before payment: priced for the minimum quantity (20000 + 10% + 3000 + 5000 - 2000).
    assert order["amount"] == 28000 and order["discountedAmount"] == 2000

    paid = control(sandbox_client, f"/orders/{order['orderCode']}/complete", {"quantity": 3})
    lines = by_type(paid)
    assert lines["SKU"]["paidAmount"] == 60000 and lines["SKU"]["quantity"] == 3
    assert lines["TAX"]["paidAmount"] == 6000  # 10 % of the SKU item's amount, after the choice
    assert lines["SHIPPING"]["paidAmount"] == 3000 and lines["FEE"]["paidAmount"] == 5000
    assert lines["DISCOUNT"]["paidAmount"] == -2000
    assert lines["DISCOUNT"]["discountName"] and lines["DISCOUNT"]["relatedOrderItemId"] == lines["SKU"]["id"]
    for kind in ("TAX", "SHIPPING", "FEE", "DISCOUNT"):
        assert lines[kind]["price"] is None and lines[kind]["product"] is None
        assert lines[kind]["relatedOrderItemId"] == lines["SKU"]["id"]
        assert lines[kind]["status"] == "PAID" and lines[kind]["quantity"] == 1
    assert paid["paidAmount"] == 72000 == sum(item["paidAmount"] for item in paid["items"])
    assert paid["payment"]["amount"] == 72000 and paid["discountedAmount"] == 2000
    assert paid["productName"] == paid["items"][0]["orderedProductName"]  # lines are not products


def test_first_sale_discounts_the_first_payment_only(sandbox_client: SandboxClient) -> None:
    products = sandbox_client.api("GET", "/api/v1/products", params={"size": 100}).json()["content"]
    price = next(p for product in products for p in product["prices"] if p["code"] == FIRST_SALE[1])
    assert price["enabledFirstSalePrice"] is True and price["firstSale"] == {"enabled": True, "price": 3000}

    order = create(sandbox_client, FIRST_SALE)
    paid = control(sandbox_client, f"/orders/{order['orderCode']}/complete", {})
    lines = by_type(paid)
    assert set(lines) == {"SKU", "DISCOUNT"} and lines["DISCOUNT"]["paidAmount"] == -3000
    assert paid["paidAmount"] == 9000 and paid["discountedAmount"] == 3000
    renewal = control(sandbox_client, f"/subscriptions/{paid['subscriptions'][0]['id']}/renew", {})
    assert [item["type"] for item in renewal["items"]] == ["SKU"]
    assert renewal["paidAmount"] == 12000 and renewal["discountedAmount"] == 0


def test_free_trial_is_a_zero_won_first_payment(sandbox_client: SandboxClient) -> None:
    order = create(sandbox_client, TRIAL)
    assert order["type"] == "RECURRING_INITIAL" and order["amount"] == 0
    paid = control(sandbox_client, f"/orders/{order['orderCode']}/complete", {})
    [item] = paid["items"]
    assert paid["paymentDate"] is not None and paid["paidAmount"] == 0 and item["status"] == "PAID"
    assert item["demoCycle"] == {"num": 14, "type": "DAY"}
    assert paid["payment"]["amount"] == 0
    sub = sandbox_client.api("GET", f"/api/v1/subscriptions/{paid['subscriptions'][0]['id']}").json()
    start = datetime.fromisoformat(sub["startDate"])
    assert datetime.fromisoformat(sub["nextPaymentDate"]) - start == timedelta(days=14)
    assert sub["trialPeriod"]["endDateTime"] == sub["nextPaymentDate"]
    assert paid["subscriptions"][0]["trialEndDate"] == sub["nextPaymentDate"]
    renewal = control(sandbox_client, f"/subscriptions/{sub['id']}/renew", {})
    assert renewal["paidAmount"] == 9900  # after the trial, the full price


# -- virtual accounts ------------------------------------------------------------------------


def test_virtual_account_waits_for_the_deposit(hooked: Hooked) -> None:
    sandbox, sandbox_webhooks = hooked.sandbox, hooked.receiver
    order = create(sandbox, ONE_TIME, maximum=3)
    code = order["orderCode"]
    control(sandbox, f"/orders/{code}/deposit", status=409)  # nothing issued yet

    standby = control(sandbox, f"/orders/{code}/complete", {"outcome": "standby", "quantity": 2})
    assert {item["status"] for item in standby["items"]} == {"DEPOSIT_WAITING"}
    assert standby["paymentDate"] is None and standby["paidAmount"] == 0
    payment = standby["payment"]
    assert payment["paymentMethod"] == "VBANK" and payment["paymentDate"] is None
    assert payment["amount"] == 30000 and payment["cardNumber"] is None
    account = payment["vbankDTO"]
    assert account["bankName"] and account["accountNumber"].isdigit() and account["accountName"]
    assert LOCAL_DT.fullmatch(account["bankDate"])
    hook = sandbox_webhooks.wait_for(v2_event("payment.standby", orderId=order["id"]))[0].json()
    assert hook["data"]["status"] == "VIRTUAL_BANK_STANDBY" and hook["data"]["paidAt"] is None
    assert hook["data"]["vBank"] == account
    assert not sandbox_webhooks.matching(v2_event("payment.completed", orderId=order["id"]))

    again = sandbox.control("POST", f"/orders/{code}/complete", {"outcome": "success"})
    assert again.status_code == 409 and again.json()["errorCode"] == "ORDER_DEPOSIT_WAITING"

    paid = control(sandbox, f"/orders/{code}/deposit")
    assert paid["paymentDate"] is not None and paid["paidAmount"] == 30000
    assert paid["items"][0]["status"] == "PAID" and paid["items"][0]["quantity"] == 2
    assert paid["payment"]["paymentMethod"] == "VBANK" and paid["payment"]["vbankDTO"] == account
    completed = sandbox_webhooks.wait_for(v2_event("payment.completed", orderId=order["id"]))[0].json()
    assert completed["data"]["status"] == "COMPLETE" and completed["data"]["paymentMethod"] == "VBANK"
    sandbox_webhooks.wait_for(v2_event("order.payment_completed", id=order["id"]))
    twice = sandbox.control("POST", f"/orders/{code}/deposit", {})
    assert twice.status_code == 409 and twice.json()["errorCode"] == "ORDER_ALREADY_PAID"


def test_pay_page_offers_a_virtual_account(sandbox_client: SandboxClient) -> None:
    order = create(sandbox_client, ONE_TIME, maximum=4)
    location = sandbox_client.api("GET", f"/api/v1/orders/{order['orderCode']}/pay").headers["Location"]
    page = sandbox_client.http.get(location, timeout=10).text
    assert 'id="vbank-button"' in page and 'value="standby"' in page
    answer = sandbox_client.http.post(
        location.split("?")[0],
        data={"action": "standby", "quantity.price_onetime_demo": "3"},
        timeout=10,
        allow_redirects=False,
    )
    assert answer.status_code == 200, answer.text
    standby = detail(sandbox_client, order["orderCode"])
    account = standby["payment"]["vbankDTO"]
    assert account["accountNumber"] in answer.text and account["bankName"] in answer.text
    assert "45,000 KRW" in answer.text and standby["payment"]["amount"] == 45000
    assert standby["paymentDate"] is None
    refused = sandbox_client.http.post(
        location.split("?")[0], data={"action": "standby", "quantity.price_onetime_demo": "9"}, timeout=10
    )
    assert refused.status_code == 409  # already waiting for its deposit


# -- refunds ---------------------------------------------------------------------------------


def test_partial_and_repeated_refunds(hooked: Hooked) -> None:
    sandbox, sandbox_webhooks = hooked.sandbox, hooked.receiver
    order = create(sandbox, ONE_TIME, maximum=2)
    code = order["orderCode"]
    control(sandbox, f"/orders/{code}/complete", {"quantity": 2})  # 30000 paid

    first = control(sandbox, f"/orders/{code}/refund", {"amount": 5000})
    assert (
        first["returnedAmount"] == 5000 and first["items"][0]["status"] == "CANCELLATION_REFUNDED_PARTIALLY"
    )
    answer = sandbox.api(
        "PATCH", f"/api/v1/orders/{code}/cancel", json={"requestPrice": 10000, "reason": "x"}
    )
    assert answer.status_code == 200 and answer.json()["body"]["returnedAmount"] == 15000

    over = sandbox.control("POST", f"/orders/{code}/refund", {"amount": 15001})
    assert over.status_code == 400 and over.json()["errorCode"] == "INVALID_REFUND_AMOUNT"
    assert over.json()["details"]["refundableAmount"] == 15000
    over_api = sandbox.api("PATCH", f"/api/v1/orders/{code}/cancel", json={"requestPrice": 20000})
    assert over_api.status_code == 400 and over_api.json()["errorCode"] == "INVALID_REFUND_AMOUNT"
    assert detail(sandbox, code)["returnedAmount"] == 15000  # refusals changed nothing

    rest = control(sandbox, f"/orders/{code}/refund")
    assert rest["returnedAmount"] == 30000 and rest["items"][0]["status"] == "CANCELLATION_REFUNDED"
    done = sandbox.control("POST", f"/orders/{code}/refund", {"amount": 1})
    assert done.status_code == 409 and done.json()["errorCode"] == "ORDER_ALREADY_REFUNDED"

    canceled = sandbox_webhooks.wait_for(v2_event("payment.canceled", orderId=order["id"]), count=3)
    amounts = [r.json()["data"]["cancel"]["canceledAmount"] for r in canceled]
    assert sorted(amounts) == [5000, 15000, 30000]  # a running total, one webhook per refund
    statuses = {r.json()["data"]["status"] for r in canceled}
    assert statuses == {"PARTIAL_CANCELED", "CANCELED"}
    time.sleep(0.3)
    assert len(sandbox_webhooks.matching(v2_event("payment.canceled", orderId=order["id"]))) == 3


# -- the zone of zone-less date-times --------------------------------------------------------

MOMENT = datetime(2026, 1, 1, 0, 0, tzinfo=UTC)


@pytest.fixture
def fixed_clock_sandbox() -> Iterator[SandboxServer]:
    server = SandboxServer(port=0, clock=lambda: MOMENT).start()
    try:
        yield server
    finally:
        server.stop()


def test_default_zone_is_utc_and_asia_seoul_is_selectable(fixed_clock_sandbox: SandboxServer) -> None:
    client = SandboxClient(fixed_clock_sandbox.url, SECRET_TOKEN)
    assert client.control("GET", "/config").json()["timezone"] == "UTC"
    utc = create(client, ONE_TIME)
    assert utc["createdAt"] == "2026-01-01T00:00:00.000000"  # MOMENT's wall time in UTC

    def listed(start: str) -> list[int]:
        page = client.api("GET", "/api/v1/orders", params={"startDate": start}).json()
        return [o["id"] for o in page["content"]]

    assert utc["id"] in listed("2026-01-01T00:00:00") and utc["id"] not in listed("2026-01-01T00:00:01")

    changed = client.control("POST", "/config", {"timezone": "Asia/Seoul"})
    assert changed.status_code == 200 and changed.json()["timezone"] == "Asia/Seoul"
    assert detail(client, utc["orderCode"])["createdAt"] == "2026-01-01T09:00:00.000000"
    # Zone-less request values are read in the same zone.
    assert utc["id"] in listed("2026-01-01T09:00:00") and utc["id"] not in listed("2026-01-01T09:00:01")
    deadline = create_with_deadline(client, "2026-01-02T09:00:00")
    assert deadline["purchaseDeadline"] == "2026-01-02T09:00:00.000000"

    bad = client.control(
        "POST", "/config", {"timezone": "Europe/Paris", "webhookUrl": "http://127.0.0.1:9/x"}
    )
    assert bad.status_code == 400
    config = client.control("GET", "/config").json()
    assert config["timezone"] == "Asia/Seoul" and config["webhookUrl"] is None  # nothing changed
    client.http.close()


def create_with_deadline(client: SandboxClient, deadline: str) -> Any:
    body = {
        "customerId": 1001,
        "purchaseDeadline": deadline,
        "items": [
            {"productCode": ONE_TIME[0], "priceCode": ONE_TIME[1], "currency": "KRW", "minimumQuantity": 1}
        ],
    }
    response = client.api("POST", "/api/v1/orders", json=body)
    assert response.status_code == 201, response.text
    return response.json()


# -- webhook delivery ------------------------------------------------------------------------


@pytest.fixture
def default_sandbox(webhook_receiver: WebhookReceiver) -> Iterator[SandboxServer]:
    """A sandbox with the defaults (no retry settings given), sending to the receiver."""
    server = SandboxServer(port=0, webhook_url=webhook_receiver.url).start()
    try:
        yield server
    finally:
        server.stop()


def test_failed_deliveries_are_not_retried_by_default(
    default_sandbox: SandboxServer, webhook_receiver: WebhookReceiver
) -> None:
    webhook_receiver.status = 500
    client = SandboxClient(default_sandbox.url)
    order = create(client, ONE_TIME)
    assert default_sandbox.wait_for_webhooks(10)
    time.sleep(0.3)
    assert len(webhook_receiver.matching(v2_event("order.created", id=order["id"]))) == 1
    [entry] = default_sandbox.webhook_log(orderId=order["id"])
    assert (entry["outcome"], entry["attempt"], entry["maxAttempts"], entry["willRetry"]) == (
        "failed",
        1,
        1,
        False,
    )
    assert client.control("GET", "/config").json()["webhookRetryDelaysMs"] == []

    # Retries are an option.
    configured = client.control("POST", "/config", {"webhookRetryDelaysMs": [20, 40]})
    assert configured.json()["webhookRetryDelaysMs"] == [20, 40]
    retried = create(client, ONE_TIME)
    assert default_sandbox.wait_for_webhooks(10)
    assert len(webhook_receiver.matching(v2_event("order.created", id=retried["id"]))) == 3
    client.http.close()


def test_resend_sends_the_original_signed_request(
    default_sandbox: SandboxServer, webhook_receiver: WebhookReceiver
) -> None:
    webhook_receiver.statuses.extend([503])
    client = SandboxClient(default_sandbox.url)
    order = create(client, ONE_TIME)
    assert default_sandbox.wait_for_webhooks(10)
    [entry] = default_sandbox.webhook_log(orderId=order["id"], event="order.created")
    assert entry["outcome"] == "failed"
    default_sandbox.configure_webhooks(key="rotated-key")  # a resend is not signed again
    time.sleep(1.1)  # a re-signed request would carry a later timestamp

    answer = client.control("POST", f"/webhooks/{entry['deliveryId']}/resend")
    assert answer.status_code == 202 and answer.json()["deliveryId"] == entry["deliveryId"]
    assert default_sandbox.wait_for_webhooks(10)
    first, second = webhook_receiver.matching(v2_event("order.created", id=order["id"]))
    assert second.body == first.body
    assert second.headers["steppay-signature"] == first.headers["steppay-signature"] == entry["signature"]
    log = default_sandbox.webhook_log(deliveryId=entry["deliveryId"])
    assert [(e["attempt"], e["outcome"], e["resend"]) for e in log] == [
        (1, "failed", False),
        (2, "delivered", True),
    ]
    assert json.loads(second.body)["data"]["id"] == order["id"]

    missing = client.control("POST", "/webhooks/999999/resend")
    assert missing.status_code == 404 and missing.json()["errorCode"] == "DELIVERY_NOT_FOUND"
    assert client.control("POST", "/webhooks/abc/resend").status_code == 404
    client.http.close()


# -- the CLI ---------------------------------------------------------------------------------


def run(capsys: pytest.CaptureFixture[str], url: str, *args: str) -> tuple[int, Any]:
    code = cli.main(["--url", url, *args])
    return code, json.loads(capsys.readouterr().out)


def test_cli_standby_deposit_resend_and_zone(
    default_sandbox: SandboxServer, webhook_receiver: WebhookReceiver, capsys: pytest.CaptureFixture[str]
) -> None:
    url = default_sandbox.url
    client = SandboxClient(url)
    order = create(client, ONE_TIME)
    code, standby = run(capsys, url, "complete", order["orderCode"], "--outcome", "standby")
    assert code == 0 and standby["items"][0]["status"] == "DEPOSIT_WAITING"
    code, paid = run(capsys, url, "deposit", order["orderCode"])
    assert code == 0 and paid["paymentDate"] is not None
    code, again = run(capsys, url, "deposit", order["orderCode"])
    assert code == 1 and again["errorCode"] == "ORDER_ALREADY_PAID"

    assert default_sandbox.wait_for_webhooks(10)
    delivery = default_sandbox.webhook_log(event="payment.standby")[0]["deliveryId"]
    code, resent = run(capsys, url, "resend", str(delivery))
    assert code == 0 and resent["deliveryId"] == delivery
    assert default_sandbox.wait_for_webhooks(10)
    assert len(webhook_receiver.matching(v2_event("payment.standby", orderId=order["id"]))) == 2

    code, config = run(
        capsys, url, "config", "--timezone", "Asia/Seoul", "--webhook-retry-delays-ms", "10,20"
    )
    assert code == 0 and config["timezone"] == "Asia/Seoul" and config["webhookRetryDelaysMs"] == [10, 20]
    assert default_sandbox.timezone == "Asia/Seoul"
    with pytest.raises(SystemExit):
        cli.main(["--url", url, "config", "--timezone", "Mars/Olympus"])
    capsys.readouterr()
    client.http.close()


def test_serve_takes_the_timezone_and_retry_options() -> None:
    args = cli.build_parser().parse_args(
        ["serve", "--port", "0", "--timezone", "Asia/Seoul", "--webhook-retry-delays-ms", "100,200"]
    )
    assert args.timezone == "Asia/Seoul" and cli._delays_ms(args.webhook_retry_delays_ms) == [100, 200]
    defaults = cli.build_parser().parse_args(["serve"])
    assert defaults.timezone == "UTC" and cli._delays_ms(defaults.webhook_retry_delays_ms) == []


def test_cancelling_a_waiting_virtual_account(sandbox_client: SandboxClient) -> None:
    order = create(sandbox_client, ONE_TIME)
    code = order["orderCode"]
    control(sandbox_client, f"/orders/{code}/complete", {"outcome": "standby"})
    answer = sandbox_client.api("PATCH", f"/api/v1/orders/{code}/cancel", json={"requestPrice": 0})
    assert answer.status_code == 200
    receipt = sandbox_client.api("GET", f"/api/payment/receipt/{order['idKey']}").json()
    assert receipt["status"] == "CANCELED" and receipt["paymentMethod"] == "VBANK"
    late = sandbox_client.control("POST", f"/orders/{code}/deposit", {})
    assert late.status_code == 409 and late.json()["errorCode"] == "ORDER_NOT_DEPOSIT_WAITING"
    assert detail(sandbox_client, code)["paymentDate"] is None


def test_state_file_keeps_lines_trials_and_virtual_accounts(tmp_path: Path) -> None:
    state_file = tmp_path / "state.json"
    with SandboxServer(port=0, state_file=state_file) as first:
        client = SandboxClient(first.url)
        box = create(client, BOX)
        control(client, f"/orders/{box['orderCode']}/complete", {"outcome": "standby"})
        trial = create(client, TRIAL)
        paid_trial = control(client, f"/orders/{trial['orderCode']}/complete", {})
        before = detail(client, box["orderCode"])
        client.http.close()
    with SandboxServer(port=0, state_file=state_file) as second:
        client = SandboxClient(second.url)
        assert detail(client, box["orderCode"]) == before  # lines, account and due date survive
        paid = control(client, f"/orders/{box['orderCode']}/deposit")
        assert paid["paidAmount"] == 28000 and paid["payment"]["vbankDTO"] == before["payment"]["vbankDTO"]
        sub = client.api("GET", f"/api/v1/subscriptions/{paid_trial['subscriptions'][0]['id']}").json()
        assert sub["trialPeriod"] is not None and sub["nextPaymentDate"] == sub["trialPeriod"]["endDateTime"]
        client.http.close()
