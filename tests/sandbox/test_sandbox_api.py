"""StepPay's API as the sandbox answers it: orders, catalogue, auth, errors (over real HTTP)."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

import pytest
from fixtures.sandbox import SandboxClient

LOCAL_DT = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}$")
ERROR_KEYS = {"traceId", "errorCode", "errorMessage", "details"}


def assert_error(response: Any, status: int, code: str | None = None) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"].startswith("application/json")
    body = response.json()
    assert set(body) == ERROR_KEYS, body
    assert isinstance(body["traceId"], str) and body["traceId"]
    if code is not None:
        assert body["errorCode"] == code
    return dict(body)


# -- catalogue -------------------------------------------------------------------------------


def test_products_list_every_price_with_its_code(sandbox_client: SandboxClient) -> None:
    response = sandbox_client.api("GET", "/api/v1/products")
    assert response.status_code == 200
    page = response.json()
    assert page["totalElements"] == len(page["content"]) >= 2
    prices = {price["code"]: price for product in page["content"] for price in product["prices"]}
    one_time = prices["price_onetime_demo"]
    assert (one_time["type"], one_time["price"], one_time["currency"], one_time["recurring"]) == (
        "ONE_TIME",
        15000,
        "KRW",
        None,
    )
    monthly = prices["price_monthly_demo"]
    assert monthly["price"] == 9900
    assert monthly["recurring"]["interval"] == "MONTH"
    assert monthly["recurring"]["intervalCount"] == 1
    codes = {product["code"] for product in page["content"]}
    assert {"product_onetime_demo", "product_subscription_demo"} <= codes


def test_customers_list_ids_codes_and_uuids(sandbox_client: SandboxClient) -> None:
    response = sandbox_client.api("GET", "/api/v1/customers", params={"size": 1})
    assert response.status_code == 200
    page = response.json()
    assert page["size"] == 1 and page["numberOfElements"] == 1 and page["totalElements"] >= 2
    assert page["first"] is True and page["last"] is False
    customer = page["content"][0]
    for key in ("id", "code", "uuid", "name", "email", "phone"):
        assert customer[key], key


# -- create ----------------------------------------------------------------------------------


def test_create_one_time_order(sandbox_client: SandboxClient) -> None:
    body = sandbox_client.order_body("one_time", quantity=2)
    body["items"][0]["price"] = 1  # amounts come from the catalogue, never from the request
    body["amount"] = 1
    response = sandbox_client.api("POST", "/api/v1/orders", json=body)
    assert response.status_code == 201, response.text
    order = response.json()
    assert order["id"] == order["orderId"] and isinstance(order["id"], int)
    assert order["orderCode"] == order["code"] and re.fullmatch(r"order_[A-Za-z0-9]{10}", order["code"])
    assert re.fullmatch(r"[0-9a-f]{32}", order["idKey"])
    assert order["type"] == "ONE_TIME"
    assert order["paidAmount"] == 0
    assert order["leftAmount"] == 30000
    assert order["amount"] == 30000
    assert order["paymentDate"] is None
    assert order["subscriptions"] == [] and order["parentSubscription"] is None
    [item] = order["items"]
    assert item["status"] == "CREATED"
    # Unpaid: StepPay reports quantity 0 (the shopper has not chosen yet); the bounds say 2.
    assert item["quantity"] == 0 and item["minimumQuantity"] == 2 and item["currency"] == "KRW"
    assert item["type"] == "SKU"
    assert item["price"]["code"] == "price_onetime_demo" and item["price"]["price"] == 15000
    assert item["product"]["code"] == "product_onetime_demo"
    assert order["customer"]["id"] == body["customerId"]
    assert LOCAL_DT.match(order["createdAt"]) and LOCAL_DT.match(order["modifiedAt"])
    assert LOCAL_DT.match(order["orderLogs"][0]["createdAt"])


def test_create_recurring_order_is_recurring_initial(sandbox_client: SandboxClient) -> None:
    order = sandbox_client.create_order("recurring")
    assert order["type"] == "RECURRING_INITIAL"
    assert order["leftAmount"] == 9900
    assert order["items"][0]["price"]["recurring"]["interval"] == "MONTH"


@pytest.mark.parametrize("key", ["customerCode", "customerUuid"])
def test_customer_by_code_or_uuid(sandbox_client: SandboxClient, key: str) -> None:
    customer = sandbox_client.catalogue()["customer"]
    body = sandbox_client.order_body()
    del body["customerId"]
    body[key] = customer["code" if key == "customerCode" else "uuid"]
    response = sandbox_client.api("POST", "/api/v1/orders", json=body)
    assert response.status_code == 201, response.text
    assert response.json()["customer"]["id"] == customer["id"]


def test_order_ids_increase_and_codes_differ(sandbox_client: SandboxClient) -> None:
    first = sandbox_client.create_order()
    second = sandbox_client.create_order()
    assert second["id"] > first["id"]
    assert second["orderCode"] != first["orderCode"] and second["idKey"] != first["idKey"]


BAD_BODIES: dict[str, Callable[[dict[str, Any]], object]] = {
    "no items": lambda b: b.pop("items"),
    "empty items": lambda b: b.update(items=[]),
    "items not a list": lambda b: b.update(items={"productCode": "x"}),
    "unknown product": lambda b: b["items"][0].update(productCode="product_nope"),
    "unknown price": lambda b: b["items"][0].update(priceCode="price_nope"),
    "price of another product": lambda b: b["items"][0].update(priceCode="price_monthly_demo"),
    "unknown customer id": lambda b: b.update(customerId=424242),
    "unknown customer code": lambda b: (b.pop("customerId"), b.update(customerCode="customer_nope")),
    "bad customer uuid": lambda b: (b.pop("customerId"), b.update(customerUuid="not-a-uuid")),
    "no customer": lambda b: b.pop("customerId"),
    "customer id is a string": lambda b: b.update(customerId="1001"),
    "wrong currency": lambda b: b["items"][0].update(currency="USD"),
    "lower-case currency": lambda b: b["items"][0].update(currency="krw"),
    "no currency": lambda b: b["items"][0].pop("currency"),
    "zero quantity": lambda b: b["items"][0].update(minimumQuantity=0),
    "negative quantity": lambda b: b["items"][0].update(minimumQuantity=-1),
    "fractional quantity": lambda b: b["items"][0].update(minimumQuantity=1.5),
    "no quantity": lambda b: b["items"][0].pop("minimumQuantity"),
    "huge quantity": lambda b: b["items"][0].update(minimumQuantity=10**6),
    "maximum below minimum": lambda b: b["items"][0].update(minimumQuantity=3, maximumQuantity=2),
    "bad deadline": lambda b: b.update(purchaseDeadline="tomorrow"),
    "bad gateway": lambda b: b.update(paymentGateway="BOGUS"),
    "unknown option": lambda b: b["items"][0].update(productOption=[1]),
}


@pytest.mark.parametrize("case", sorted(BAD_BODIES))
def test_invalid_create_bodies_are_400(sandbox_client: SandboxClient, case: str) -> None:
    body = sandbox_client.order_body()
    BAD_BODIES[case](body)
    before = sandbox_client.api("GET", "/api/v1/orders", params={"size": 1}).json()["totalElements"]
    assert_error(sandbox_client.api("POST", "/api/v1/orders", json=body), 400)
    after = sandbox_client.api("GET", "/api/v1/orders", params={"size": 1}).json()["totalElements"]
    assert after == before


@pytest.mark.parametrize("raw", [b"{not json", b"", b"[1, 2]", b"null", b'{"items": NaN}', b"\xff\xfe"])
def test_invalid_json_is_400(sandbox_client: SandboxClient, raw: bytes) -> None:
    response = sandbox_client.api(
        "POST", "/api/v1/orders", data=raw, headers={"Content-Type": "application/json"}
    )
    assert_error(response, 400)


# -- detail ----------------------------------------------------------------------------------


def test_get_order_by_id_and_by_code(sandbox_client: SandboxClient) -> None:
    created = sandbox_client.create_order()
    by_code = sandbox_client.api("GET", f"/api/v1/orders/{created['orderCode']}")
    by_id = sandbox_client.api("GET", f"/api/v1/orders/{created['id']}")
    assert by_code.status_code == by_id.status_code == 200
    assert by_code.json()["id"] == by_id.json()["id"] == created["id"]
    detail = by_code.json()
    assert detail["paymentDate"] is None and detail["payment"] is None
    assert detail["paidAmount"] == 0 and detail["returnedAmount"] == 0


@pytest.mark.parametrize(
    "ref",
    ["order_doesnotexist", "999999999", "0", "-1", "%2E%2E", "order_%00", "%ED%95%9C", "1e3", "\uff11\uff12"],
)
def test_unknown_or_invalid_order_identifiers_are_404(sandbox_client: SandboxClient, ref: str) -> None:
    assert_error(sandbox_client.api("GET", f"/api/v1/orders/{ref}"), 404, "ORDER_NOT_FOUND")


def test_unknown_subscription_is_404(sandbox_client: SandboxClient) -> None:
    for ref in ("999999", "abc", "1.5"):
        assert_error(sandbox_client.api("GET", f"/api/v1/subscriptions/{ref}"), 404)


def test_unknown_api_path_is_404(sandbox_client: SandboxClient) -> None:
    assert_error(sandbox_client.api("GET", "/api/v1/nothing-here"), 404)
    assert_error(sandbox_client.api("GET", "/api/v1/orders/x/y/z"), 404)


def test_wrong_method_is_405(sandbox_client: SandboxClient) -> None:
    response = sandbox_client.api("DELETE", "/api/v1/orders")
    assert_error(response, 405)
    assert "GET" in response.headers["Allow"] and "POST" in response.headers["Allow"]


# -- auth ------------------------------------------------------------------------------------

AUTHED = [
    ("GET", "/api/v1/orders"),
    ("POST", "/api/v1/orders"),
    ("GET", "/api/v1/orders/{code}"),
    ("PATCH", "/api/v1/orders/{code}/cancel"),
    ("GET", "/api/v1/orders/{code}/pay"),
    ("GET", "/api/v1/subscriptions/1"),
    ("GET", "/api/v1/customers"),
    ("GET", "/api/v1/products"),
    ("GET", "/api/payment/receipt/{idKey}"),
    ("GET", "/api/v1/unknown"),
]


@pytest.mark.parametrize(("method", "path"), AUTHED)
def test_secret_token_missing_is_401_and_wrong_is_403(
    sandbox_client: SandboxClient, method: str, path: str
) -> None:
    order = sandbox_client.create_order()
    url = sandbox_client.base_url + path.format(code=order["orderCode"], idKey=order["idKey"])
    http = sandbox_client.http
    missing = http.request(method, url, json={}, timeout=10, allow_redirects=False)
    assert_error(missing, 401, "UNAUTHORIZED")
    empty = http.request(
        method, url, json={}, headers={"Secret-Token": ""}, timeout=10, allow_redirects=False
    )
    assert_error(empty, 401)
    for wrong in ("wrong-token", "sandbox-secret-token ", "SANDBOX-SECRET-TOKEN", "sandbox-secret-toke"):
        response = http.request(
            method, url, json={}, headers={"Secret-Token": wrong}, timeout=10, allow_redirects=False
        )
        assert_error(response, 403, "FORBIDDEN")
    # The token never comes back in an answer.
    assert "sandbox-secret-token" not in missing.text
    # Nothing changed.
    assert (
        sandbox_client.api("GET", f"/api/v1/orders/{order['orderCode']}").json()["items"][0]["status"]
        == "CREATED"
    )


def test_token_header_name_is_case_insensitive(sandbox_client: SandboxClient) -> None:
    response = sandbox_client.http.get(
        sandbox_client.base_url + "/api/v1/products",
        headers={"secret-token": "sandbox-secret-token"},
        timeout=10,
    )
    assert response.status_code == 200


# -- list ------------------------------------------------------------------------------------


def _list(client: SandboxClient, **params: Any) -> dict[str, Any]:
    response = client.api("GET", "/api/v1/orders", params=params)
    assert response.status_code == 200, response.text
    return dict(response.json())


def test_list_orders_is_a_spring_page(sandbox_client: SandboxClient) -> None:
    for _ in range(3):
        sandbox_client.create_order()
    page = _list(sandbox_client, size=2, page=0)
    for key in (
        "content",
        "totalPages",
        "totalElements",
        "last",
        "first",
        "number",
        "size",
        "empty",
        "sort",
        "pageable",
        "numberOfElements",
    ):
        assert key in page
    assert page["size"] == 2 and page["number"] == 0 and page["first"] is True
    assert len(page["content"]) == 2 and page["totalElements"] >= 3
    assert page["totalPages"] == -(-page["totalElements"] // 2)
    last = _list(sandbox_client, size=2, page=page["totalPages"] - 1)
    assert last["last"] is True and last["first"] is False
    beyond = _list(sandbox_client, size=2, page=page["totalPages"] + 5)
    assert beyond["content"] == [] and beyond["empty"] is True


def test_list_orders_newest_first_by_default_and_sort_dir(sandbox_client: SandboxClient) -> None:
    sandbox_client.create_order()
    newest = _list(sandbox_client, size=50)["content"]
    created = [datetime.fromisoformat(o["createdAt"]) for o in newest]
    assert created == sorted(created, reverse=True)
    oldest = _list(sandbox_client, size=50, sortDir="ASC")["content"]
    created_asc = [datetime.fromisoformat(o["createdAt"]) for o in oldest]
    assert created_asc == sorted(created_asc)


def test_list_orders_filters_on_created_at_range(sandbox_client: SandboxClient) -> None:
    first = sandbox_client.create_order()
    time.sleep(0.01)
    second = sandbox_client.create_order()
    time.sleep(0.01)
    third = sandbox_client.create_order()
    window = _list(sandbox_client, startDate=second["createdAt"], endDate=second["createdAt"], size=100)
    assert [o["id"] for o in window["content"]] == [second["id"]]
    assert window["totalElements"] == 1
    since = {o["id"] for o in _list(sandbox_client, startDate=second["createdAt"], size=1000)["content"]}
    assert {second["id"], third["id"]} <= since and first["id"] not in since
    until = {o["id"] for o in _list(sandbox_client, endDate=second["createdAt"], size=1000)["content"]}
    assert {first["id"], second["id"]} <= until and third["id"] not in until
    # List entries carry the order code and amounts.
    entry = window["content"][0]
    assert entry["orderCode"] == second["orderCode"] and entry["price"] == 15000
    assert entry["paidAmount"] == 0 and entry["leftAmount"] == 15000


def test_list_orders_filters_on_item_status(sandbox_client: SandboxClient) -> None:
    paid = sandbox_client.create_order()
    unpaid = sandbox_client.create_order()
    assert sandbox_client.complete(paid["orderCode"]).status_code == 200
    ids = {o["id"] for o in _list(sandbox_client, status="PAID", size=1000)["content"]}
    assert paid["id"] in ids and unpaid["id"] not in ids
    created = {o["id"] for o in _list(sandbox_client, status="CREATED", size=1000)["content"]}
    assert unpaid["id"] in created and paid["id"] not in created


@pytest.mark.parametrize(
    "params",
    [
        {"page": "-1"},
        {"size": "0"},
        {"size": "abc"},
        {"sortDir": "SIDEWAYS"},
        {"status": "NOT_A_STATUS"},
        {"startDate": "yesterday"},
        {"sort": "password"},
    ],
)
def test_list_orders_rejects_bad_parameters(sandbox_client: SandboxClient, params: dict[str, str]) -> None:
    assert_error(sandbox_client.api("GET", "/api/v1/orders", params=params), 400)


# -- cancel ----------------------------------------------------------------------------------


def _cancel(client: SandboxClient, ref: str, body: Any) -> Any:
    return client.api("PATCH", f"/api/v1/orders/{ref}/cancel", json=body)


def test_cancel_unpaid_order_cancels_its_items(sandbox_client: SandboxClient) -> None:
    order = sandbox_client.create_order()
    response = _cancel(sandbox_client, order["orderCode"], {"requestPrice": 0, "reason": "changed my mind"})
    assert response.status_code == 200, response.text
    assert set(response.json()) == {"message", "body"}
    detail = sandbox_client.api("GET", f"/api/v1/orders/{order['orderCode']}").json()
    assert [i["status"] for i in detail["items"]] == ["CANCELLED"]
    assert detail["paymentDate"] is None and detail["returnedAmount"] == 0
    assert detail["items"][0]["canceledDateTime"]
    # A cancelled order cannot be paid any more, nor cancelled again.
    assert sandbox_client.complete(order["orderCode"]).status_code == 409
    assert_error(_cancel(sandbox_client, order["orderCode"], {"requestPrice": 0}), 400)


def test_cancel_paid_order_refunds_fully(sandbox_client: SandboxClient) -> None:
    order = sandbox_client.create_order()
    sandbox_client.complete(order["orderCode"])
    response = _cancel(sandbox_client, order["id"], {"requestPrice": 15000, "reason": "refund"})
    assert response.status_code == 200, response.text
    detail = sandbox_client.api("GET", f"/api/v1/orders/{order['orderCode']}").json()
    assert detail["returnedAmount"] == 15000 and detail["paidAmount"] == 15000
    assert [i["status"] for i in detail["items"]] == ["CANCELLATION_REFUNDED"]
    assert detail["paymentDate"] is not None  # the payment happened; it was refunded
    receipt = sandbox_client.api("GET", f"/api/payment/receipt/{order['idKey']}").json()
    assert receipt["status"] == "CANCELED"
    assert_error(_cancel(sandbox_client, order["orderCode"], {"requestPrice": 1}), 400)


def test_cancel_paid_order_partially(sandbox_client: SandboxClient) -> None:
    order = sandbox_client.create_order(quantity=2)
    sandbox_client.complete(order["orderCode"])
    response = _cancel(sandbox_client, order["orderCode"], {"requestPrice": 10000})
    assert response.status_code == 200
    detail = sandbox_client.api("GET", f"/api/v1/orders/{order['orderCode']}").json()
    assert detail["returnedAmount"] == 10000
    assert [i["status"] for i in detail["items"]] == ["CANCELLATION_REFUNDED_PARTIALLY"]
    receipt = sandbox_client.api("GET", f"/api/payment/receipt/{order['idKey']}").json()
    assert receipt["status"] == "PARTIAL_CANCELED"
    # The rest, then nothing more.
    assert _cancel(sandbox_client, order["orderCode"], {"requestPrice": 20000}).status_code == 200
    detail = sandbox_client.api("GET", f"/api/v1/orders/{order['orderCode']}").json()
    assert detail["returnedAmount"] == 30000
    assert [i["status"] for i in detail["items"]] == ["CANCELLATION_REFUNDED"]


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"requestPrice": -1},
        {"requestPrice": "100"},
        {"requestPrice": 0.5},
        {"requestPrice": 15001},
        [],
        None,
    ],
)
def test_cancel_rejects_bad_refund_requests(sandbox_client: SandboxClient, body: Any) -> None:
    order = sandbox_client.create_order()
    sandbox_client.complete(order["orderCode"])
    assert_error(_cancel(sandbox_client, order["orderCode"], body), 400)
    detail = sandbox_client.api("GET", f"/api/v1/orders/{order['orderCode']}").json()
    assert detail["returnedAmount"] == 0 and detail["items"][0]["status"] == "PAID"


def test_cancel_unknown_order_is_404(sandbox_client: SandboxClient) -> None:
    assert_error(_cancel(sandbox_client, "order_doesnotexist", {"requestPrice": 0}), 404)


# -- receipt ---------------------------------------------------------------------------------


def test_receipt_follows_the_payment(sandbox_client: SandboxClient) -> None:
    order = sandbox_client.create_order()
    path = f"/api/payment/receipt/{order['idKey']}"
    before = sandbox_client.api("GET", path)
    assert before.status_code == 200
    assert before.json()["status"] == "STANDBY" and before.json()["paymentDate"] is None
    sandbox_client.complete(order["orderCode"])
    receipt = sandbox_client.api("GET", path).json()
    assert set(receipt) >= {
        "idKey",
        "orderId",
        "orderCode",
        "amount",
        "paymentDate",
        "paymentMethod",
        "paymentGateway",
        "cardNumber",
        "status",
        "errorCode",
        "errorMessage",
    }
    assert receipt["idKey"] == order["idKey"] and receipt["orderId"] == order["id"]
    assert receipt["orderCode"] == order["orderCode"] and receipt["amount"] == 15000
    assert receipt["status"] == "COMPLETE" and receipt["paymentMethod"] == "CARD"
    assert receipt["paymentGateway"] == "NICE" and receipt["errorCode"] is None
    assert re.fullmatch(r"\d{4}-\*{4}-\*{4}-\d{4}", receipt["cardNumber"])
    assert LOCAL_DT.match(receipt["paymentDate"])


def test_receipt_of_failed_payment_and_unknown_id_key(sandbox_client: SandboxClient) -> None:
    order = sandbox_client.create_order()
    sandbox_client.complete(order["orderCode"], "failure")
    receipt = sandbox_client.api("GET", f"/api/payment/receipt/{order['idKey']}").json()
    assert receipt["status"] == "FAILED" and receipt["errorCode"] and receipt["paymentDate"] is None
    assert_error(sandbox_client.api("GET", "/api/payment/receipt/deadbeef"), 404)
    assert_error(sandbox_client.api("GET", f"/api/payment/receipt/{order['orderCode']}"), 404)
