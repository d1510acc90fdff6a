"""StepPay models: tolerant of additions, strict on what we decide with, exact money, aware times."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from pydantic import ValidationError

from steppay import settings as settings_module
from steppay.errors import WebhookShapeError
from steppay.listing_models import OrderPage
from steppay.models import (
    TIMEZONE_CONTEXT_KEY,
    OrderCreateItem,
    OrderCreateRequest,
    OrderDetail,
    OrderItemStatus,
    OrderType,
    PaymentReceipt,
    SubscriptionStatus,
    WebhookPaymentStatus,
    dumps_json,
    parse_json,
)
from steppay.subscription_models import Subscription
from steppay.webhook_models import (
    WebhookEnvelope,
    WebhookOrder,
    WebhookPayment,
    WebhookSubscription,
    WebhookV1Order,
    WebhookV1Subscription,
    parse_webhook,
)

SEOUL = ZoneInfo("Asia/Seoul")
STEPPAY_ZONE = ZoneInfo("UTC")  # the default reading of StepPay's zone-less times (docs/STEPPAY.md)

# An order detail as StepPay's spec describes it (OrderV1DTO), trimmed to what matters.
ORDER_JSON = """
{
  "id": 1001, "orderId": 1001, "orderCode": "order_Xb3kR9pQ2mZt", "code": "order_Xb3kR9pQ2mZt",
  "type": "ONE_TIME", "paidAmount": 9900.10, "returnedAmount": 0, "leftAmount": 9900.10,
  "discountedAmount": 0, "productName": "커피 구독", "paymentDate": "2023-06-19T06:19:55.403711",
  "idKey": "idkey_123", "createdAt": "2023-06-19T06:10:00", "modifiedAt": "2023-06-19T06:19:55.403711",
  "items": [{"id": 1, "code": "item_1", "status": "PAID", "currency": "KRW", "paidAmount": 9900.10,
             "quantity": 1, "type": "SKU", "price": {"id": 3, "code": "price_1", "price": 9900.10,
             "type": "ONE_TIME"}, "product": {"id": 2, "code": "product_1", "name": "커피"}}],
  "payment": {"amount": 9900, "discount": 0, "paymentMethod": "CARD", "paymentGateway": "NICE",
              "paymentDate": "2023-06-19T06:19:55.403711", "cardNumber": "5365-****-****-1234"},
  "customer": {"id": 7, "uuid": "0b6f3c1e-4f8e-4b8a-9f5e-1c2d3e4f5a6b", "name": "홍길동",
               "email": "hong@example.com", "phone": "010-0000-0000"},
  "subscriptions": [], "parentSubscription": null, "orderLogs": [], "relatedOrders": []
}
"""


@pytest.fixture(autouse=True)
def _default_settings(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.delenv("STEPPAY_TIMEZONE", raising=False)
    settings_module.get_settings.cache_clear()
    yield
    settings_module.get_settings.cache_clear()


def order_data(**overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = parse_json(ORDER_JSON)
    data.update(overrides)
    return data


# -- money ------------------------------------------------------------------------------


def test_money_is_exact_decimal_never_float() -> None:
    order = OrderDetail.model_validate(order_data())
    assert order.paid_amount == Decimal("9900.10")
    assert str(order.paid_amount) == "9900.10"  # not 9900.1000000000003638
    assert isinstance(order.paid_amount, Decimal)
    assert order.items[0].price is not None and order.items[0].price.price == Decimal("9900.10")


def test_a_float_amount_is_refused_rather_than_rounded() -> None:
    data = json.loads(ORDER_JSON)  # plain json.loads: 9900.10 became a float
    with pytest.raises(ValidationError, match="never a float"):
        OrderDetail.model_validate(data)


@pytest.mark.parametrize("bad", [True, "abc", "1e5", "NaN", None, [1]])
def test_paid_amount_must_be_a_number(bad: Any) -> None:
    with pytest.raises(ValidationError):
        OrderDetail.model_validate(order_data(paidAmount=bad))


def test_decimal_text_reads_back_from_a_json_dump() -> None:
    order = OrderDetail.model_validate(order_data())
    dumped = order.model_dump(mode="json", by_alias=True)
    assert dumped["paidAmount"] == "9900.10"
    again = OrderDetail.model_validate(dumped)
    assert again.paid_amount == Decimal("9900.10")
    assert again.payment_date == order.payment_date
    assert again.payment_date_raw == "2023-06-19T06:19:55.403711"  # the original string survives


def test_parse_json_refuses_nan() -> None:
    with pytest.raises(ValueError):
        parse_json('{"paidAmount": NaN}')


def test_dumps_json_writes_decimals_exactly_and_refuses_floats() -> None:
    text = dumps_json({"requestPrice": Decimal("9900.10"), "big": Decimal("12345678901234567890.12"), "n": 1})
    assert text == '{"requestPrice":9900.10,"big":12345678901234567890.12,"n":1}'
    assert parse_json(text)["big"] == Decimal("12345678901234567890.12")
    assert dumps_json({"reason": "고객 요청"}) == '{"reason":"고객 요청"}'
    with pytest.raises(TypeError):
        dumps_json({"x": 1.5})
    with pytest.raises(ValueError):
        dumps_json({"x": Decimal("Infinity")})


# -- date-times ---------------------------------------------------------------------------


def test_zone_less_times_are_read_in_the_default_zone_and_the_original_string_is_kept() -> None:
    order = OrderDetail.model_validate(order_data())
    assert order.payment_date == datetime(2023, 6, 19, 6, 19, 55, 403711, tzinfo=STEPPAY_ZONE)
    assert order.payment_date is not None and order.payment_date.utcoffset() == timedelta(0)
    assert order.payment_date_raw == "2023-06-19T06:19:55.403711"
    assert order.payment is not None and order.payment.payment_date_raw == "2023-06-19T06:19:55.403711"
    assert order.created_at is not None and order.created_at.tzinfo is not None


def test_an_explicit_offset_is_respected() -> None:
    order = OrderDetail.model_validate(order_data(paymentDate="2023-06-19T06:19:55+00:00"))
    assert order.payment_date == datetime(2023, 6, 19, 6, 19, 55, tzinfo=UTC)
    assert order.payment_date is not None and order.payment_date.utcoffset() == timedelta(0)
    assert order.payment_date_raw == "2023-06-19T06:19:55+00:00"
    order = OrderDetail.model_validate(order_data(paymentDate="2023-06-19T06:19:55Z"))
    assert order.payment_date == datetime(2023, 6, 19, 6, 19, 55, tzinfo=UTC)


def test_the_zone_is_configurable_by_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STEPPAY_TIMEZONE", "Asia/Seoul")
    settings_module.get_settings.cache_clear()
    order = OrderDetail.model_validate(order_data())
    assert order.payment_date == datetime(2023, 6, 19, 6, 19, 55, 403711, tzinfo=SEOUL)
    assert order.payment_date is not None and order.payment_date.utcoffset() == timedelta(hours=9)


def test_the_zone_is_configurable_by_validation_context() -> None:
    zone = timezone(timedelta(hours=-5))
    order = OrderDetail.model_validate(order_data(), context={TIMEZONE_CONTEXT_KEY: zone})
    assert order.payment_date is not None and order.payment_date.utcoffset() == timedelta(hours=-5)


@pytest.mark.parametrize("bad", ["not a date", "", 1687155595, True, "2023-13-40T00:00:00"])
def test_payment_date_is_strict(bad: Any) -> None:
    with pytest.raises(ValidationError):
        OrderDetail.model_validate(order_data(paymentDate=bad))


def test_unpaid_order_has_no_payment_date() -> None:
    order = OrderDetail.model_validate(order_data(paymentDate=None, paidAmount=0))
    assert order.payment_date is None and order.payment_date_raw is None
    assert order.paid_amount == 0


# -- identity and strictness ----------------------------------------------------------------


def test_either_twin_name_is_accepted_and_exposed_as_order_id_and_order_code() -> None:
    only_short = order_data()
    del only_short["orderId"], only_short["orderCode"]
    only_long = order_data()
    del only_long["id"], only_long["code"]
    mixed = order_data()
    del mixed["id"], mixed["orderCode"]  # ProductOrderdto style: orderId and code
    for data in (only_short, only_long, mixed):
        order = OrderDetail.model_validate(data)
        assert (order.order_id, order.order_code) == (1001, "order_Xb3kR9pQ2mZt")


def test_contradicting_twins_are_refused() -> None:
    with pytest.raises(ValidationError, match="disagree"):
        OrderDetail.model_validate(order_data(id=1002))
    with pytest.raises(ValidationError, match="disagree"):
        OrderDetail.model_validate(order_data(code="order_other"))


def test_populate_by_python_name() -> None:
    order = OrderDetail(order_id=1, order_code="order_a", type=OrderType.ONE_TIME, paid_amount=Decimal(0))
    assert order.order_id == 1 and order.items == []


@pytest.mark.parametrize(
    ("field", "bad"),
    [
        ("orderId", "1001"),
        ("orderId", True),
        ("orderId", 0),
        ("orderId", 1001.0),
        ("orderCode", 1001),
        ("orderCode", ""),
        ("type", None),
        ("type", ""),
    ],
)
def test_fields_we_decide_with_are_strict(field: str, bad: Any) -> None:
    data = order_data()
    data.pop({"orderId": "id", "orderCode": "code"}.get(field, "_"), None)
    data[field] = bad
    with pytest.raises(ValidationError):
        OrderDetail.model_validate(data)


@pytest.mark.parametrize(
    ("field", "bad"), [("status", None), ("status", ""), ("currency", "krw"), ("currency", None)]
)
def test_item_status_and_currency_are_strict(field: str, bad: Any) -> None:
    data = order_data()
    data["items"][0][field] = bad
    with pytest.raises(ValidationError):
        OrderDetail.model_validate(data)


def test_additions_and_unknown_informative_values_do_not_break_parsing() -> None:
    data = order_data(brandNewField={"x": 1})
    data["payment"]["paymentGateway"] = "SOME_NEW_PG"
    data["payment"]["paymentMethod"] = "CRYPTO"
    data["items"][0]["type"] = "NEW_ITEM_TYPE"
    data["items"][0]["newItemField"] = True
    data["subscriptions"] = [{"id": 5, "status": "SOME_NEW_STATUS", "interval": "FORTNIGHT"}]
    order = OrderDetail.model_validate(data)
    assert order.payment is not None and order.payment.payment_gateway == "SOME_NEW_PG"
    assert order.subscriptions[0].status == "SOME_NEW_STATUS"
    assert order.model_extra is not None and order.model_extra["brandNewField"] == {"x": 1}
    assert order.items[0].model_extra == {"newItemField": True}


def test_known_enum_values_become_enums() -> None:
    data = order_data(subscriptions=[{"id": 5, "status": "ACTIVE"}])
    order = OrderDetail.model_validate(data)
    assert order.type is OrderType.ONE_TIME
    assert order.items[0].status is OrderItemStatus.PAID
    assert order.subscriptions[0].status is SubscriptionStatus.ACTIVE
    assert order.currency == "KRW"


def test_missing_optional_fields_are_fine() -> None:
    order = OrderDetail.model_validate(
        {"orderId": 1, "orderCode": "order_a", "type": "RECURRING", "paidAmount": 0}
    )
    assert order.payment is None and order.customer is None and order.items == []
    assert order.currency is None


def test_personal_data_stays_out_of_reprs() -> None:
    order = OrderDetail.model_validate(order_data())
    text = repr(order)
    for secret in ("홍길동", "hong@example.com", "010-0000-0000", "5365-****-****-1234"):
        assert secret not in text
    assert order.customer is not None and order.customer.email == "hong@example.com"


# -- other shapes ---------------------------------------------------------------------------


def test_order_page() -> None:
    page = OrderPage.model_validate(
        parse_json(
            """{"content": [{"id": 1, "type": "ONE_TIME", "paidAmount": 100.5, "paymentDate": null,
                 "createdAt": "2023-06-19T06:10:00", "claimMethodType": "PRE", "items": []},
                {"id": 2, "type": "FUTURE_TYPE", "paidAmount": 0, "paymentDate": "2023-06-19T06:10:00"}],
                "totalPages": 3, "totalElements": 5, "number": 0, "size": 2, "last": false, "first": true,
                "empty": false, "numberOfElements": 2, "pageable": {"pageNumber": 0}}"""
        )
    )
    assert [o.id for o in page.content] == [1, 2]
    assert page.content[0].paid_amount == Decimal("100.5")
    assert page.content[1].type == "FUTURE_TYPE"  # a list row is informative: tolerant
    assert page.content[1].payment_date == datetime(2023, 6, 19, 6, 10, tzinfo=STEPPAY_ZONE)
    assert page.last is False and page.total_pages == 3


def test_subscription() -> None:
    sub = Subscription.model_validate(
        parse_json(
            """{"id": 77, "status": "UNPAID", "startDate": "2023-06-19T06:10:00",
                "nextPaymentDate": "2023-07-19T06:10:00", "interval": "MONTH", "intervalCount": 1,
                "recurringCount": 1, "customer": {"id": 7, "name": "홍길동"},
                "parentOrder": {"id": 1001, "orderCode": "order_a", "type": "RECURRING_INITIAL"},
                "items": [{"id": 1, "price": 9900, "productName": "x"}], "relatedOrders": [],
                "currentPeriod": {"startDateTime": "2023-06-19T06:10:00",
                                  "endDateTime": "2023-07-19T06:10:00"}}"""
        )
    )
    assert sub.status is SubscriptionStatus.UNPAID
    assert sub.parent_order is not None and (sub.parent_order.order_id, sub.parent_order.order_code) == (
        1001,
        "order_a",
    )
    assert sub.next_payment_date == datetime(2023, 7, 19, 6, 10, tzinfo=STEPPAY_ZONE)
    with pytest.raises(ValidationError):
        Subscription.model_validate({"id": 77, "status": "NOT_A_STATUS"})


def test_payment_receipt_all_optional_but_typed() -> None:
    receipt = PaymentReceipt.model_validate(
        parse_json(
            '{"idKey": "k1", "orderId": 1, "amount": 9900.10, "paymentDate": "2023-06-19T06:19:55",'
            ' "paymentGateway": "NEW_PG", "status": "WHATEVER"}'
        )
    )
    assert receipt.amount == Decimal("9900.10") and receipt.payment_date_raw == "2023-06-19T06:19:55"
    assert PaymentReceipt.model_validate({}).payment_date is None
    with pytest.raises(ValidationError):
        PaymentReceipt.model_validate({"orderId": "1"})


def test_order_create_request_serialises_by_alias_without_nones() -> None:
    request = OrderCreateRequest(
        customer_id=7,
        items=[OrderCreateItem(product_code="product_1", price_code="price_1", minimum_quantity=1)],
        purchase_deadline=datetime(2024, 1, 1, 0, 0, tzinfo=UTC),
    )
    assert request.to_steppay(zone=SEOUL) == {
        "customerId": 7,
        "items": [
            {"productCode": "product_1", "priceCode": "price_1", "currency": "KRW", "minimumQuantity": 1}
        ],
        "purchaseDeadline": "2024-01-01T09:00:00",  # StepPay's zone-less local time
    }
    assert request.to_steppay(zone=UTC)["purchaseDeadline"] == "2024-01-01T00:00:00"


def test_order_create_request_validates() -> None:
    item = OrderCreateItem(product_code="p", price_code="q")
    with pytest.raises(ValidationError, match="customerId"):
        OrderCreateRequest(items=[item])
    with pytest.raises(ValidationError):
        OrderCreateRequest(customer_id=1, items=[])
    with pytest.raises(ValidationError):
        OrderCreateRequest.model_validate(
            {"customerId": 1, "items": [{"productCode": "p", "priceCode": "q"}], "customerTypo": 1}
        )
    with pytest.raises(ValidationError):
        OrderCreateRequest(customer_id=1, items=[item], purchase_deadline=datetime(2024, 1, 1))  # naive


# -- webhooks -------------------------------------------------------------------------------

V2_ORDER = {
    "timestamp": 1700000000,
    "version": "v1",
    "event": "order.payment_completed",
    "data": {
        "id": 1001,
        "code": "order_a",
        "type": "RECURRING",
        "paidAmount": Decimal("9900.10"),
        "paymentDate": "2023-06-19T06:19:55",
        "subscriptions": [5, 6],
        "items": [{"x": 1}],
        "customerId": 7,
        "newField": 1,
    },
}


def test_v2_envelope_and_typed_order_data() -> None:
    parsed = parse_webhook(copy.deepcopy(V2_ORDER))
    assert isinstance(parsed, WebhookEnvelope)
    assert parsed.timestamp == 1700000000 and parsed.kind == "order"
    data = parsed.typed_data()
    assert isinstance(data, WebhookOrder)
    assert (data.order_id, data.order_code, data.subscriptions) == (1001, "order_a", [5, 6])
    assert data.paid_amount == Decimal("9900.10") and data.payment_date_raw == "2023-06-19T06:19:55"


def test_v2_subscription_and_payment_data() -> None:
    sub = parse_webhook(
        {
            "timestamp": 1,
            "version": "v1",
            "event": "subscription.updated",
            "data": {"subscriptionId": 5, "status": "UNPAID", "orderId": 1001},
        }
    )
    assert isinstance(sub, WebhookEnvelope)
    typed = sub.typed_data()
    assert isinstance(typed, WebhookSubscription) and typed.status is SubscriptionStatus.UNPAID
    pay = parse_webhook(
        {
            "timestamp": 1,
            "version": "v1",
            "event": "payment.failed",
            "data": {
                "paymentId": 9,
                "orderId": 1001,
                "status": "FAILED",
                "paidAmount": 0,
                "paidAt": "2023-06-19T06:19:55",
                "paymentGateway": "NEW_PG",
            },
        }
    )
    assert isinstance(pay, WebhookEnvelope)
    typed_pay = pay.typed_data()
    assert isinstance(typed_pay, WebhookPayment) and typed_pay.status is WebhookPaymentStatus.FAILED
    assert typed_pay.paid_at_raw == "2023-06-19T06:19:55"
    new_status = parse_webhook(
        {"timestamp": 1, "event": "payment.standby", "data": {"orderId": 1, "status": "SOMETHING_NEW"}}
    )
    assert isinstance(new_status, WebhookEnvelope)
    assert isinstance(new_status.typed_data(), WebhookPayment)


def test_other_v2_events_are_accepted_without_typed_data() -> None:
    parsed = parse_webhook({"timestamp": 1, "version": "v1", "event": "invoice.created", "data": {"any": 1}})
    assert isinstance(parsed, WebhookEnvelope) and parsed.kind == "other" and parsed.typed_data() is None


def test_v1_bodies() -> None:
    order = parse_webhook({"webHookType": "PAYMENT", "orderId": 1})
    assert isinstance(order, WebhookV1Order) and (order.web_hook_type, order.order_id) == ("PAYMENT", 1)
    sub = parse_webhook({"id": 1, "status": "ACTIVE"})
    assert isinstance(sub, WebhookV1Subscription) and sub.status is SubscriptionStatus.ACTIVE


@pytest.mark.parametrize(
    "body",
    [
        [],
        "x",
        {},
        {"hello": "world"},
        {"timestamp": 1, "event": "order.updated"},
        {"timestamp": "1", "event": "order.updated", "data": {}},
        {"timestamp": 1, "event": "", "data": {}},
        {"timestamp": 1, "event": "order.updated", "data": []},
        {"webHookType": "PAYMENT", "orderId": "1"},
        {"webHookType": "PAYMENT"},
        {"id": "../x", "status": "ACTIVE"},
    ],
)
def test_unknown_or_invalid_shapes_raise_a_typed_error(body: Any) -> None:
    with pytest.raises(WebhookShapeError):
        parse_webhook(body)


def test_invalid_typed_data_raises_a_typed_error_without_echoing_values() -> None:
    parsed = parse_webhook(
        {"timestamp": 1, "event": "order.updated", "data": {"id": "<script>", "code": "c"}}
    )
    assert isinstance(parsed, WebhookEnvelope)
    with pytest.raises(WebhookShapeError) as caught:
        parsed.typed_data()
    assert "<script>" not in str(caught.value) and "id" in str(caught.value)
