"""Every sandbox answer we rely on validates against StepPay's OpenAPI spec.

Run with the spec present (``../shared/steppay/steppay-v1.openapi.json`` or
``STEPPAY_OPENAPI_SPEC``); without it these tests are skipped with a reason.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from contract.conftest import Contract, load_spec, spec_path
from fixtures.sandbox import SandboxClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from steppay_sandbox.server import SandboxServer

pytestmark = pytest.mark.contract


def get(client: SandboxClient, path: str, **kwargs: Any) -> Any:
    response = client.api("GET", path, **kwargs)
    assert response.status_code == 200, response.text
    return response.json()


# -- the spec and the validator themselves ---------------------------------------------------


def test_spec_location_honours_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    missing = tmp_path / "nope.json"
    monkeypatch.setenv("STEPPAY_OPENAPI_SPEC", str(missing))
    assert spec_path() == missing
    assert load_spec() is None
    monkeypatch.delenv("STEPPAY_OPENAPI_SPEC")
    assert spec_path().parts[-3:] == ("shared", "steppay", "steppay-v1.openapi.json")


@pytest.mark.parametrize(
    ("path", "method", "status", "schema"),
    [
        ("/api/v1/orders", "post", "201", "ProductOrderdto"),
        ("/api/v1/orders", "post", "400", "ProductErrorresponse"),
        ("/api/v1/orders", "get", "200", "OrderListPageV1DTO"),
        ("/api/v1/orders/{orderIdOrCode}", "get", "200", "OrderV1DTO"),
        ("/api/v1/orders/{orderIdOrCode}", "get", "403", "ProductErrorresponse"),
        ("/api/v1/orders/{orderIdOrCode}/cancel", "patch", "200", "ProductApiresponse"),
        ("/api/v1/subscriptions/{id}", "get", "200", "SubscriptionV1DTO"),
        ("/api/v1/customers", "get", "200", "CustomerListPageDTO"),
        ("/api/v1/products", "get", "200", "ProductListPageDTO"),
    ],
)
def test_the_spec_names_the_schemas_checked_here(
    contract: Contract, path: str, method: str, status: str, schema: str
) -> None:
    assert contract.response_schema(path, method, status) == schema


def test_the_validator_is_strict(contract: Contract, sandbox_client: SandboxClient) -> None:
    order = get(sandbox_client, f"/api/v1/orders/{sandbox_client.create_order()['orderCode']}")
    contract.check("OrderV1DTO", order)
    mutations: list[Callable[[dict[str, Any]], object]] = [
        lambda o: o.pop("orderCode"),  # required
        lambda o: o.update(orderLogs=None),  # required, so not nullable
        lambda o: o.update(type="SOMETIMES"),  # enum
        lambda o: o.update(createdAt="2023-06-19T06:19:55+09:00"),  # StepPay's date-times are zone-less
        lambda o: o.update(createdAt="yesterday"),
        lambda o: o.update(id=2**63),  # int64
        lambda o: o["items"][0].update(status="PAYMENT_FAILED"),  # not the spec's spelling
        lambda o: o["items"][0]["price"].pop("code"),
        lambda o: o["customer"].update(uuid="not-a-uuid"),
    ]
    for mutate in mutations:
        broken = copy.deepcopy(order)
        mutate(broken)
        assert contract.errors("OrderV1DTO", broken), mutate
    # Optional fields may be null (Jackson writes them so).
    contract.check("OrderV1DTO", {**order, "paymentDate": None, "payment": None})


# -- orders ----------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["one_time", "recurring"])
def test_order_create_response(contract: Contract, sandbox_client: SandboxClient, kind: str) -> None:
    body = sandbox_client.order_body(kind)
    contract.check("OrderCreateV1DTO", body, request=True)
    response = sandbox_client.api("POST", "/api/v1/orders", json=body)
    assert response.status_code == 201
    contract.check("ProductOrderdto", response.json())
    contract.check("OrderV1DTO", response.json())


def test_order_detail_through_its_life(contract: Contract, sandbox_client: SandboxClient) -> None:
    order = sandbox_client.create_order(quantity=2)
    ref = f"/api/v1/orders/{order['orderCode']}"
    contract.check("OrderV1DTO", get(sandbox_client, ref))  # unpaid
    sandbox_client.complete(order["orderCode"], "failure")
    contract.check("OrderV1DTO", get(sandbox_client, ref))  # failed
    sandbox_client.complete(order["orderCode"])
    paid = get(sandbox_client, ref)
    contract.check("OrderV1DTO", paid)  # paid
    assert paid["payment"]["paymentDate"] is not None
    sandbox_client.api("PATCH", f"{ref}/cancel", json={"requestPrice": 1000})
    contract.check("OrderV1DTO", get(sandbox_client, ref))  # partially refunded
    sandbox_client.control("POST", f"/orders/{order['orderCode']}/refund")
    refunded = get(sandbox_client, ref)
    contract.check("OrderV1DTO", refunded)  # refunded
    assert refunded["items"][0]["status"] == "CANCELLATION_REFUNDED"

    cancelled = sandbox_client.create_order()
    sandbox_client.api("PATCH", f"/api/v1/orders/{cancelled['id']}/cancel", json={"requestPrice": 0})
    contract.check("OrderV1DTO", get(sandbox_client, f"/api/v1/orders/{cancelled['id']}"))


def _order_with_choice(client: SandboxClient, *kinds: str, maximum: int = 5) -> dict[str, Any]:
    """An order whose items let the shopper choose 1..maximum (the create body checked too)."""
    catalogue = client.catalogue()
    items = []
    for kind in kinds:
        product, price = catalogue[kind]
        items.append(
            {
                "productCode": product["code"],
                "priceCode": price["code"],
                "currency": "KRW",
                "minimumQuantity": 1,
                "maximumQuantity": maximum,
            }
        )
    body = {"customerId": catalogue["customer"]["id"], "items": items}
    response = client.api("POST", "/api/v1/orders", json=body)
    assert response.status_code == 201, response.text
    return dict(response.json())


def test_order_completed_with_a_chosen_quantity(contract: Contract, sandbox_client: SandboxClient) -> None:
    order = _order_with_choice(sandbox_client, "one_time")
    contract.check("ProductOrderdto", order)
    code = order["orderCode"]
    refused = sandbox_client.control("POST", f"/orders/{code}/complete", {"quantity": 6})
    assert refused.status_code == 400
    contract.check("ProductErrorresponse", refused.json())
    paid = sandbox_client.control("POST", f"/orders/{code}/complete", {"outcome": "success", "quantity": 3})
    assert paid.status_code == 200, paid.text
    contract.check("OrderV1DTO", paid.json())
    detail = get(sandbox_client, f"/api/v1/orders/{code}")
    contract.check("OrderV1DTO", detail)
    price = order["items"][0]["price"]["price"]
    assert detail["items"][0]["quantity"] == 3 and detail["paidAmount"] == 3 * price
    assert detail["payment"]["amount"] == 3 * price
    page = get(sandbox_client, "/api/v1/orders", params={"keyword": code, "type": "orderCode"})
    contract.check("OrderListPageV1DTO", page)
    assert [o["orderCode"] for o in page["content"]] == [code]
    sandbox_client.api("PATCH", f"/api/v1/orders/{code}/cancel", json={"requestPrice": 3 * price})
    contract.check("OrderV1DTO", get(sandbox_client, f"/api/v1/orders/{code}"))


def test_subscription_started_with_a_chosen_quantity(
    contract: Contract, sandbox_client: SandboxClient
) -> None:
    order = _order_with_choice(sandbox_client, "one_time", "recurring", maximum=3)
    prices = [item["price"]["code"] for item in order["items"]]
    paid = sandbox_client.control(
        "POST", f"/orders/{order['orderCode']}/complete", {"quantity": {prices[1]: 3}}
    )
    assert paid.status_code == 200, paid.text
    contract.check("OrderV1DTO", paid.json())
    sub_id = paid.json()["subscriptions"][0]["id"]
    sub = get(sandbox_client, f"/api/v1/subscriptions/{sub_id}")
    contract.check("SubscriptionV1DTO", sub)
    assert [item["quantity"] for item in paid.json()["items"]] == [1, 3]


def test_tampered_orders(contract: Contract, sandbox_client: SandboxClient) -> None:
    order = _order_with_choice(sandbox_client, "one_time")
    code = order["orderCode"]
    bodies = [
        {"items": [{"minimumQuantity": 2, "maximumQuantity": 9}]},
        {"items": [{"priceCode": "price_monthly_demo"}]},
        {"items": [{"productCode": "product_onetime_demo", "priceCode": "price_onetime_demo"}]},
        {"customerId": 1002},
    ]
    for body in bodies:
        response = sandbox_client.control("POST", f"/orders/{code}/tamper", body)
        assert response.status_code == 200, response.text
        contract.check("OrderV1DTO", response.json())
        contract.check("OrderV1DTO", get(sandbox_client, f"/api/v1/orders/{code}"))
    refused = sandbox_client.control("POST", f"/orders/{code}/tamper", {"customerId": 424242})
    assert refused.status_code == 400
    contract.check("ProductErrorresponse", refused.json())
    paid = sandbox_client.control("POST", f"/orders/{code}/complete", {"quantity": 9})
    contract.check("OrderV1DTO", paid.json())
    again = sandbox_client.control("POST", f"/orders/{code}/tamper", {"customerId": 1001})
    assert again.status_code == 409
    contract.check("ProductErrorresponse", again.json())


def test_subscription_orders_and_detail(contract: Contract, sandbox_client: SandboxClient) -> None:
    initial, sub_id = sandbox_client.paid_subscription()
    contract.check("OrderV1DTO", initial)
    assert initial["subscriptions"]
    contract.check("SubscriptionV1DTO", get(sandbox_client, f"/api/v1/subscriptions/{sub_id}"))
    for outcome in ("failure", "success"):
        renewal = sandbox_client.control(
            "POST", f"/subscriptions/{sub_id}/renew", {"outcome": outcome}
        ).json()
        contract.check("OrderV1DTO", renewal)
        contract.check("OrderV1DTO", get(sandbox_client, f"/api/v1/orders/{renewal['orderCode']}"))
        assert renewal["parentSubscription"]["id"] == sub_id
    contract.check("OrderV1DTO", get(sandbox_client, f"/api/v1/orders/{initial['orderCode']}"))
    detail = get(sandbox_client, f"/api/v1/subscriptions/{sub_id}")
    assert len(detail["relatedOrders"]) == 2
    contract.check("SubscriptionV1DTO", detail)
    sandbox_client.control("POST", f"/subscriptions/{sub_id}/status", {"status": "CANCELED"})
    contract.check("SubscriptionV1DTO", get(sandbox_client, f"/api/v1/subscriptions/{sub_id}"))


# -- lines, first sale, trials, virtual accounts, refunds, zones (issue #16) --------------------


def _create(client: SandboxClient, product: str, price: str, maximum: int | None = None) -> dict[str, Any]:
    item: dict[str, Any] = {
        "productCode": product,
        "priceCode": price,
        "currency": "KRW",
        "minimumQuantity": 1,
    }
    if maximum is not None:
        item["maximumQuantity"] = maximum
    response = client.api("POST", "/api/v1/orders", json={"customerId": 1001, "items": [item]})
    assert response.status_code == 201, response.text
    return dict(response.json())


def test_orders_with_tax_shipping_fee_and_discount_lines(
    contract: Contract, sandbox_client: SandboxClient
) -> None:
    order = _create(sandbox_client, "product_box_lines_demo", "price_box_lines_demo", maximum=3)
    contract.check("ProductOrderdto", order)
    contract.check("OrderV1DTO", order)
    assert {item["type"] for item in order["items"]} == {"SKU", "TAX", "SHIPPING", "FEE", "DISCOUNT"}
    paid = sandbox_client.control("POST", f"/orders/{order['orderCode']}/complete", {"quantity": 2})
    assert paid.status_code == 200, paid.text
    contract.check("OrderV1DTO", paid.json())
    contract.check("OrderV1DTO", get(sandbox_client, f"/api/v1/orders/{order['orderCode']}"))
    refund = sandbox_client.api(
        "PATCH", f"/api/v1/orders/{order['orderCode']}/cancel", json={"requestPrice": 100}
    )
    contract.check("ProductApiresponse", refund.json())
    contract.check("OrderListPageV1DTO", get(sandbox_client, "/api/v1/orders", params={"size": 5}))


def test_first_sale_and_trial_prices_products_and_subscriptions(
    contract: Contract, sandbox_client: SandboxClient
) -> None:
    products = get(sandbox_client, "/api/v1/products", params={"size": 100})
    contract.check("ProductListPageDTO", products)
    demo = {product["code"]: product for product in products["content"]}
    assert demo["product_trial_demo"]["enabledDemo"] is True
    for product, price in (
        ("product_first_sale_demo", "price_first_sale_monthly_demo"),
        ("product_trial_demo", "price_trial_monthly_demo"),
    ):
        order = _create(sandbox_client, product, price)
        paid = sandbox_client.control("POST", f"/orders/{order['orderCode']}/complete", {})
        assert paid.status_code == 200, paid.text
        contract.check("OrderV1DTO", paid.json())
        sub_id = paid.json()["subscriptions"][0]["id"]
        contract.check("SubscriptionV1DTO", get(sandbox_client, f"/api/v1/subscriptions/{sub_id}"))
        renewal = sandbox_client.control("POST", f"/subscriptions/{sub_id}/renew", {})
        contract.check("OrderV1DTO", renewal.json())
    trial_sub = get(sandbox_client, f"/api/v1/subscriptions/{sub_id}")
    assert trial_sub["trialPeriod"] is not None  # the trial's schema (ProductPerioddto) was checked


def test_virtual_account_orders(contract: Contract, sandbox_client: SandboxClient) -> None:
    order = _create(sandbox_client, "product_onetime_demo", "price_onetime_demo", maximum=2)
    code = order["orderCode"]
    standby = sandbox_client.control(
        "POST", f"/orders/{code}/complete", {"outcome": "standby", "quantity": 2}
    )
    assert standby.status_code == 200, standby.text
    contract.check("OrderV1DTO", standby.json())
    waiting = get(sandbox_client, f"/api/v1/orders/{code}")
    contract.check("OrderV1DTO", waiting)
    contract.check("VBankV1DTO", waiting["payment"]["vbankDTO"])
    assert waiting["items"][0]["status"] == "DEPOSIT_WAITING"
    contract.check("ProductErrorresponse", sandbox_client.control("POST", f"/orders/{code}/complete").json())
    paid = sandbox_client.control("POST", f"/orders/{code}/deposit", {})
    contract.check("OrderV1DTO", paid.json())
    contract.check("OrderV1DTO", get(sandbox_client, f"/api/v1/orders/{code}"))


def test_repeated_refunds_and_their_refusal(contract: Contract, sandbox_client: SandboxClient) -> None:
    order = sandbox_client.create_order()
    code = order["orderCode"]
    sandbox_client.complete(code)
    for amount in (1000, 2000):
        answer = sandbox_client.api("PATCH", f"/api/v1/orders/{code}/cancel", json={"requestPrice": amount})
        assert answer.status_code == 200
        contract.check("ProductApiresponse", answer.json())
        contract.check("OrderV1DTO", get(sandbox_client, f"/api/v1/orders/{code}"))
    over = sandbox_client.api("PATCH", f"/api/v1/orders/{code}/cancel", json={"requestPrice": 10**6})
    assert over.status_code == 400
    contract.check("ProductErrorresponse", over.json())
    control_refund = sandbox_client.control("POST", f"/orders/{code}/refund")
    contract.check("OrderV1DTO", control_refund.json())


@pytest.mark.parametrize("zone", ["UTC", "Asia/Seoul"])
def test_answers_in_either_zone(contract: Contract, zone: str) -> None:
    with SandboxServer(port=0, timezone=zone) as server:
        client = SandboxClient(server.url)
        order = client.create_order("recurring")
        paid = client.complete(order["orderCode"]).json()
        contract.check("OrderV1DTO", paid)
        sub_id = paid["subscriptions"][0]["id"]
        contract.check("SubscriptionV1DTO", get(client, f"/api/v1/subscriptions/{sub_id}"))
        client.http.close()


def test_order_list(contract: Contract, sandbox_client: SandboxClient) -> None:
    paid = sandbox_client.create_order()
    sandbox_client.complete(paid["orderCode"])
    sandbox_client.paid_subscription()
    page = get(sandbox_client, "/api/v1/orders", params={"size": 50})
    assert page["content"]
    contract.check("OrderListPageV1DTO", page)
    contract.check("OrderListPageV1DTO", get(sandbox_client, "/api/v1/orders", params={"page": 10_000}))


def test_catalogue_lists(contract: Contract, sandbox_client: SandboxClient) -> None:
    contract.check("CustomerListPageDTO", get(sandbox_client, "/api/v1/customers"))
    contract.check("ProductListPageDTO", get(sandbox_client, "/api/v1/products"))


def test_cancel_responses(contract: Contract, sandbox_client: SandboxClient) -> None:
    unpaid = sandbox_client.create_order()
    body = {"requestPrice": 0, "reason": "test"}
    contract.check("ReqV1", body, request=True)
    response = sandbox_client.api("PATCH", f"/api/v1/orders/{unpaid['orderCode']}/cancel", json=body)
    assert response.status_code == 200
    contract.check("ProductApiresponse", response.json())
    paid = sandbox_client.create_order()
    sandbox_client.complete(paid["orderCode"])
    body = {"requestPrice": 15000}
    contract.check("ReqV1", body, request=True)
    response = sandbox_client.api("PATCH", f"/api/v1/orders/{paid['orderCode']}/cancel", json=body)
    contract.check("ProductApiresponse", response.json())


def test_error_bodies(contract: Contract, sandbox_client: SandboxClient) -> None:
    base = sandbox_client.base_url
    answers = [
        sandbox_client.api("POST", "/api/v1/orders", json={"items": []}),  # 400
        sandbox_client.api("POST", "/api/v1/orders", data=b"{", headers={"Content-Type": "application/json"}),
        sandbox_client.http.get(f"{base}/api/v1/orders", timeout=10),  # 401
        sandbox_client.http.get(f"{base}/api/v1/orders", headers={"Secret-Token": "x"}, timeout=10),  # 403
        sandbox_client.api("GET", "/api/v1/orders/order_doesnotexist"),  # 404
        sandbox_client.api("GET", "/api/v1/subscriptions/424242"),
        sandbox_client.api("GET", "/api/payment/receipt/nothing"),
        sandbox_client.api("PATCH", "/api/v1/orders/order_doesnotexist/cancel", json={"requestPrice": 0}),
        sandbox_client.api("DELETE", "/api/v1/orders"),  # 405
    ]
    sandbox_client.control("POST", "/faults", {"path": "/api/v1/products", "status": 503})
    answers.append(sandbox_client.api("GET", "/api/v1/products"))
    assert sorted({a.status_code for a in answers}) == [400, 401, 403, 404, 405, 503]
    for answer in answers:
        contract.check("ProductErrorresponse", answer.json())


# -- request bodies --------------------------------------------------------------------------


def test_request_bodies_used_here_are_valid(contract: Contract, sandbox_client: SandboxClient) -> None:
    customer = sandbox_client.catalogue()["customer"]
    variants = [sandbox_client.order_body(), sandbox_client.order_body("recurring", quantity=3)]
    by_code = sandbox_client.order_body()
    del by_code["customerId"]
    by_code["customerCode"] = customer["code"]
    by_uuid = sandbox_client.order_body()
    by_uuid["customerUuid"] = customer["uuid"]
    extras = sandbox_client.order_body(quantity=2)
    extras.update(purchaseDeadline="2099-12-31T23:59:59", paymentGateway="NICE")
    extras["items"][0].update(maximumQuantity=5, productOption=[])
    variants += [by_code, by_uuid, extras]
    for body in variants:
        contract.check("OrderCreateV1DTO", body, request=True)
        response = sandbox_client.api("POST", "/api/v1/orders", json=body)
        assert response.status_code == 201, response.text
        contract.check("ProductOrderdto", response.json())


_DELETE = object()
_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-2, 12_000),
    st.sampled_from([0, 2**31, 2**40, 2**64, 1.5, -1]),
    st.text(max_size=4),
    st.just([]),
    st.just({}),
    st.lists(st.integers(0, 3), max_size=2),
    st.sampled_from(
        [
            "KRW",
            "USD",
            "krw",
            "NICE",
            "TOSS",
            "BOGUS",
            "product_onetime_demo",
            "product_subscription_demo",
            "price_onetime_demo",
            "price_monthly_demo",
            "customer_Q7mK2pXa9",
            "customer_nope",
            "2f6c1e0a-8b3d-4e7f-9a21-6c5d4b3a2e10",
            "2f6c1e0a8b3d4e7f9a216c5d4b3a2e10",
            "2099-01-01T00:00:00",
            "2099-01-01T00:00:00+09:00",
            "2099-01-01",
            "soon",
        ]
    ),
)
_BODY_KEYS = ["customerId", "customerCode", "customerUuid", "items", "purchaseDeadline", "paymentGateway"]
_ITEM_KEYS = ["productCode", "priceCode", "currency", "minimumQuantity", "maximumQuantity", "productOption"]


@st.composite
def _bodies(draw: st.DrawFn) -> Any:
    """A valid create body, then up to three random changes (so both outcomes are common)."""
    product, price = draw(
        st.sampled_from(
            [
                ("product_onetime_demo", "price_onetime_demo"),
                ("product_subscription_demo", "price_monthly_demo"),
            ]
        )
    )
    item: dict[str, Any] = {
        "productCode": product,
        "priceCode": price,
        "currency": "KRW",
        "minimumQuantity": draw(st.integers(1, 5)),
    }
    body: dict[str, Any] = {"items": [item]}
    customer = draw(st.sampled_from(["customerId", "customerCode", "customerUuid"]))
    body[customer] = {
        "customerId": 1001,
        "customerCode": "customer_Q7mK2pXa9",
        "customerUuid": "2f6c1e0a-8b3d-4e7f-9a21-6c5d4b3a2e10",
    }[customer]
    for _ in range(draw(st.integers(0, 3))):
        target = body if draw(st.booleans()) else item
        key = draw(st.sampled_from(_BODY_KEYS if target is body else _ITEM_KEYS))
        value = draw(st.one_of(st.just(_DELETE), _VALUES))
        if value is _DELETE:
            target.pop(key, None)
        else:
            target[key] = value
    if draw(st.integers(0, 20)) == 0:
        return draw(_VALUES)  # sometimes not an object at all
    return body


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(body=_bodies())
def test_the_sandbox_accepts_only_spec_valid_create_bodies(
    contract: Contract, sandbox: SandboxServer, body: Any
) -> None:
    client = SandboxClient(sandbox.url)
    valid = not contract.errors("OrderCreateV1DTO", body, request=True)
    response = client.api("POST", "/api/v1/orders", json=body)
    assert response.status_code in (201, 400), response.text
    if response.status_code == 201:
        assert valid, f"accepted a body the spec refuses: {body!r}"
        contract.check("ProductOrderdto", response.json())
    if not valid:
        assert response.status_code == 400
        contract.check("ProductErrorresponse", response.json())
