"""The example subscriber on the running stack, invoked as Lambda would be for a redelivered and
for a failing event: a repeat changes nothing and answers as the first time; a failure leaves no
half-done idempotency record behind, so EventBridge's retry is processed in full.

(Its rules are proven in tests/unit/test_entitlements.py; these runs also give the IAM test its
recording of the Idempotency utility's GetItem and DeleteItem.)
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from e2e.conftest import Shop, new_merchant_ref

from steppay_local.workers import InvocationError

pytestmark = pytest.mark.e2e

FUNCTION = "EntitlementSubscriberFunction"


def _renewal(merchant_ref: str, subscription_id: int, event_id: str) -> dict[str, Any]:
    until = (datetime.now(UTC) + timedelta(days=30)).replace(microsecond=0).isoformat()
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "Renewal Payment Verified",
        "source": "steppay.payments",
        "time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": "ap-northeast-2",
        "resources": [],
        "detail": {
            "eventId": event_id,
            "orderCode": "order_renewal_1",
            "merchantRef": merchant_ref,
            "checkoutId": None,
            "subscriptionId": subscription_id,
            "items": [
                {"productCode": "product_subscription_demo", "priceCode": "price_monthly_demo", "quantity": 1}
            ],
            "nextPaymentDate": until,
            "periodEnd": until,
        },
    }


def _entitlement(shop: Shop, key: str) -> dict[str, Any] | None:
    table = boto3.resource(
        "dynamodb",
        endpoint_url=shop.stack.dynamodb_endpoint,
        region_name="ap-northeast-2",
        aws_access_key_id="local",
        aws_secret_access_key="local",
    ).Table(shop.stack.table_names["EntitlementsTable"])
    item: dict[str, Any] | None = table.get_item(Key={"pk": key}, ConsistentRead=True).get("Item")
    return item


def test_a_redelivered_event_changes_nothing_and_answers_as_the_first_time(shop: Shop) -> None:
    ref = new_merchant_ref("ent")
    event = _renewal(ref, 424242, str(uuid.uuid4()))
    first = shop.stack.invoke(FUNCTION, event)
    assert first["changed"] is True
    stored = _entitlement(shop, f"ENTITLEMENT#{ref}#424242")
    assert stored is not None and stored["active_until"]
    again = shop.stack.invoke(FUNCTION, event)
    assert again == first
    assert _entitlement(shop, f"ENTITLEMENT#{ref}#424242") == stored


def test_a_failing_event_leaves_no_idempotency_record_so_its_retry_runs(shop: Shop) -> None:
    event_id = str(uuid.uuid4())
    # A key DynamoDB refuses (partition keys are at most 2,048 bytes): the write raises.
    failing = _renewal("x" * 3000, 424243, event_id)
    with pytest.raises(InvocationError):
        shop.stack.invoke(FUNCTION, failing)
    # The retry (same eventId, as EventBridge redelivers it) is processed, not answered from a
    # record of the failed attempt.
    ref = new_merchant_ref("ent-retry")
    retried = _renewal(ref, 424243, event_id)
    assert shop.stack.invoke(FUNCTION, retried)["changed"] is True
    assert _entitlement(shop, f"ENTITLEMENT#{ref}#424243") is not None
