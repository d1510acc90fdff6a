"""The example subscriber against DynamoDB Local: the real adapter's conditional writes and the
handler's idempotency on `eventId` (Powertools, in the same table)."""

from __future__ import annotations

import importlib.util
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import boto3
import pytest

ROOT = Path(__file__).resolve().parents[2]
MODULE = ROOT / "functions" / "entitlements" / "entitlements.py"
REGION = "ap-northeast-2"
PLAN = "price_monthly_demo"


class Context:
    function_name = "EntitlementSubscriberFunction"
    memory_limit_in_mb = 512
    invoked_function_arn = "arn:aws:lambda:ap-northeast-2:123456789012:function:EntitlementSubscriberFunction"
    aws_request_id = "req-1"

    @staticmethod
    def get_remaining_time_in_millis() -> int:
        return 10_000


@pytest.fixture
def subscriber(dynamodb_local: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[ModuleType, Any]]:
    """A fresh table (pk only, as the template's) and the function's module initialised against it."""
    name = f"entitlements-{uuid.uuid4().hex[:8]}"
    for variable, value in {
        "AWS_DEFAULT_REGION": REGION,
        "AWS_REGION": REGION,
        "AWS_ACCESS_KEY_ID": "local",
        "AWS_SECRET_ACCESS_KEY": "local",
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_ENDPOINT_URL_DYNAMODB": dynamodb_local.endpoint_url,
        "POWERTOOLS_TRACE_DISABLED": "true",
        "ENTITLEMENTS_TABLE_NAME": name,
        "ENTITLED_PRICE_CODES": PLAN,
    }.items():
        monkeypatch.setenv(variable, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    boto3.DEFAULT_SESSION = None  # it keeps the environment it first saw
    client = boto3.client("dynamodb")
    client.create_table(
        TableName=name,
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        BillingMode="PAY_PER_REQUEST",
    )
    module_name = f"entitlements_{name.replace('-', '_')}"
    spec = importlib.util.spec_from_file_location(module_name, MODULE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
        yield module, boto3.resource("dynamodb").Table(name)
    finally:
        sys.modules.pop(module_name, None)
        client.delete_table(TableName=name)
        boto3.DEFAULT_SESSION = None


def _event(detail_type: str, **detail: Any) -> dict[str, Any]:
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": detail_type,
        "source": "steppay.payments",
        "detail": {
            "eventId": str(uuid.uuid4()),
            "checkoutId": "checkout_1",
            "customer": {"id": 1001, "code": "customer_abc", "uuid": None},
            "items": [{"productCode": "product_subscription_demo", "priceCode": PLAN, "quantity": 1}],
            "orderCode": "order_Rn7wQ2kLp4Xz",
            "orderId": 5124,
            **detail,
        },
    }


def renewal(ref: str, sub: int, until: str) -> dict[str, Any]:
    return _event(
        "Renewal Payment Verified",
        orderType="RECURRING",
        merchantRef=ref,
        subscriptionId=sub,
        amount="9900",
        currency="KRW",
        periodStart=None,
        periodEnd=None,
        nextPaymentDate=until,
        paidAt="2026-12-26T18:15:05.403711+09:00",
    )


def status(ref: str, sub: int, value: str, observed_at: str) -> dict[str, Any]:
    return _event(
        "Subscription Status Changed",
        merchantRef=ref,
        subscriptionId=sub,
        status=value,
        previousStatus="ACTIVE",
        observedAt=observed_at,
        nextPaymentDate=None,
    )


def test_the_adapters_conditional_writes(subscriber: tuple[ModuleType, Any]) -> None:
    module, table = subscriber
    store = module.DynamoDBEntitlementStore(table)
    key = module.entitlement_key("member-a", 7003)
    feb, jan = "2027-02-26T09:15:05.403711+00:00", "2027-01-26T09:15:05.403711+00:00"

    assert store.extend_until(key, feb, {"price_code": PLAN, "subscription_id": 7003})
    assert not store.extend_until(key, jan, {"price_code": "price_other"})  # never shortened
    assert not store.extend_until(key, feb, {"price_code": "price_other"})  # equal: no change
    assert store.record_status(key, "2026-12-27T09:00:00.000000+00:00", {"status": "CANCELED"})
    assert not store.record_status(key, "2026-12-26T09:00:00.000000+00:00", {"status": "ACTIVE"})

    item = table.get_item(Key={"pk": key}, ConsistentRead=True)["Item"]
    assert item["active_until"] == feb
    assert item["price_code"] == PLAN
    assert item["subscription_id"] == 7003
    assert item["status"] == "CANCELED"
    assert item["status_observed_at"] == "2026-12-27T09:00:00.000000+00:00"


def test_the_handler_keeps_subscriptions_apart_and_is_idempotent(subscriber: tuple[ModuleType, Any]) -> None:
    module, table = subscriber

    def get(ref: str, sub: int) -> dict[str, Any]:
        return dict(table.get_item(Key={"pk": module.entitlement_key(ref, sub)}, ConsistentRead=True)["Item"])

    for ref, sub in (("member-a", 7003), ("member-b", 7004), ("member-a", 7005)):
        assert module.lambda_handler(renewal(ref, sub, "2027-01-26T18:15:05+09:00"), Context())["changed"]
        assert module.lambda_handler(status(ref, sub, "ACTIVE", "2026-12-26T09:00:00+00:00"), Context())[
            "changed"
        ]

    cancel = status("member-a", 7003, "CANCELED", "2026-12-27T09:00:00+00:00")
    first = module.lambda_handler(cancel, Context())
    assert first == {"eventId": cancel["detail"]["eventId"], "changed": True}
    # Redelivered: the stored result, nothing written again.
    assert module.lambda_handler(cancel, Context()) == first

    assert get("member-a", 7003)["status"] == "CANCELED"
    assert get("member-b", 7004)["status"] == "ACTIVE"
    assert get("member-a", 7005)["status"] == "ACTIVE"
    assert get("member-a", 7005)["active_until"] == "2027-01-26T09:15:05.000000+00:00"

    unbound = renewal("member-a", 7003, "2027-06-26T18:15:05+09:00")
    unbound["detail"]["merchantRef"] = None
    assert module.lambda_handler(unbound, Context())["changed"] is False
    assert get("member-a", 7003)["active_until"] == "2027-01-26T09:15:05.000000+00:00"
