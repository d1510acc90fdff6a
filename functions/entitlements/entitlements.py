"""Example subscriber: keeps "active until" per customer from the bundle's events.

This is the pattern a merchant copies. It subscribes (EventBridge rule) to `Renewal Payment
Verified` and `Subscription Status Changed`, and is idempotent on the events' `eventId`
(Powertools Idempotency, stored in the same table), so a redelivered event changes nothing.
Events may arrive in any order: a renewal only ever extends the entitlement, and a status is
kept only when it was observed later than the one stored.
"""

from __future__ import annotations

import functools
import os
from datetime import datetime
from typing import Any

import boto3
from aws_lambda_powertools import Logger, Tracer
from aws_lambda_powertools.utilities.idempotency import (
    DynamoDBPersistenceLayer,
    IdempotencyConfig,
    idempotent,
)
from aws_lambda_powertools.utilities.typing import LambdaContext
from botocore.exceptions import ClientError

logger = Logger()
tracer = Tracer()

TABLE_NAME = os.environ.get("ENTITLEMENTS_TABLE_NAME", "entitlements")
persistence = DynamoDBPersistenceLayer(table_name=TABLE_NAME, key_attr="pk")
config = IdempotencyConfig(event_key_jmespath="detail.eventId", expires_after_seconds=60 * 60 * 24 * 30)


@functools.cache
def _table() -> Any:
    return boto3.resource("dynamodb").Table(TABLE_NAME)


def entitlement_key(detail: dict[str, Any]) -> str:
    """Who the entitlement belongs to: the merchant's own reference when given, else StepPay's customer."""
    if detail.get("merchantRef"):
        return f"ENTITLEMENT#ref:{detail['merchantRef']}"
    return f"ENTITLEMENT#customer:{detail.get('customerId')}"


def _conditional_set(
    key: str, sets: dict[str, Any], condition: str, values: dict[str, Any], condition_names: dict[str, str]
) -> bool:
    names = {f"#n{i}": name for i, name in enumerate(sets)}
    expr = {f":v{i}": value for i, value in enumerate(sets.values())}
    try:
        _table().update_item(
            Key={"pk": key},
            UpdateExpression="SET " + ", ".join(f"#n{i} = :v{i}" for i in range(len(sets))),
            ConditionExpression=condition,
            ExpressionAttributeNames={**names, **condition_names},
            ExpressionAttributeValues={**expr, **values},
        )
        return True
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
            return False  # what is stored is already newer or longer
        raise


def apply_renewal(detail: dict[str, Any]) -> bool:
    until = detail.get("nextPaymentDate") or detail.get("periodEnd")
    if not until:
        logger.warning(
            "Renewal without an end date; nothing to extend", extra={"eventId": detail.get("eventId")}
        )
        return False
    until_utc = datetime.fromisoformat(until).astimezone().isoformat()
    return _conditional_set(
        entitlement_key(detail),
        {
            "active_until": until_utc,
            "subscription_id": detail.get("subscriptionId"),
            "last_order": detail["orderCode"],
        },
        "attribute_not_exists(#active_until) OR #active_until < :until",
        {":until": until_utc},
        {"#active_until": "active_until"},
    )


def apply_status(detail: dict[str, Any]) -> bool:
    return _conditional_set(
        entitlement_key(detail),
        {
            "status": detail["status"],
            "status_observed_at": detail["observedAt"],
            "subscription_id": detail["subscriptionId"],
        },
        "attribute_not_exists(#observed) OR #observed < :observed",
        {":observed": detail["observedAt"]},
        {"#observed": "status_observed_at"},
    )


def handle_event(event: dict[str, Any]) -> dict[str, Any]:
    detail_type = event.get("detail-type")
    detail = event["detail"]
    if detail_type == "Renewal Payment Verified":
        changed = apply_renewal(detail)
    elif detail_type == "Subscription Status Changed":
        changed = apply_status(detail)
    else:
        changed = False
    logger.info("Entitlement event applied", extra={"eventId": detail.get("eventId"), "changed": changed})
    return {"eventId": detail.get("eventId"), "changed": changed}


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@idempotent(config=config, persistence_store=persistence)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return handle_event(event)
