"""The only module that reads or writes DynamoDB.

One item per StepPay order: `pk = ORDER#<orderCode>`, `sk = ORDER`. The item moves through
states PENDING (pay link issued) → PAID (StepPay confirmed the payment). Moving to PAID is a
conditional write, so however many callers verify one order at once, exactly one of them
records the payment; the table's stream then carries that single transition to the publisher.
"""

from __future__ import annotations

import functools
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError
from pydantic import BaseModel, ConfigDict, Field

from steppay.problems import StorageUnavailable
from steppay.settings import get_settings

ORDER_SK = "ORDER"


class PaymentState(StrEnum):
    PENDING = "PENDING"
    PAID = "PAID"


class VerifiedVia(StrEnum):
    VERIFY_API = "verify_api"
    CALLBACK = "callback"
    WEBHOOK = "webhook"
    RECONCILIATION = "reconciliation"


class PaymentRecord(BaseModel):
    """What we know of one StepPay order, and, once paid, the evidence that it was."""

    model_config = ConfigDict(frozen=True)

    order_code: str
    order_id: int | None = None
    order_type: str | None = None
    state: PaymentState = PaymentState.PENDING
    amount: Decimal | None = None  # what StepPay computed when the order was created
    currency: str | None = None
    customer_id: int | None = None
    merchant_ref: str | None = None
    created_at: datetime | None = None
    # Verification evidence, set when the payment is recorded.
    paid_at: datetime | None = None
    payment_date_raw: str | None = None  # StepPay's zone-less paymentDate, exactly as it came
    paid_amount: Decimal | None = None
    payment_method: str | None = None
    payment_gateway: str | None = None
    card_number: str | None = None  # only ever StepPay's masked form
    verified_at: datetime | None = None
    verified_via: VerifiedVia | None = None
    subscription_ids: list[int] = Field(default_factory=list)

    @property
    def is_paid(self) -> bool:
        return self.state is PaymentState.PAID


def order_key(order_code: str) -> dict[str, str]:
    return {"pk": f"ORDER#{order_code}", "sk": ORDER_SK}


def _to_item(record: PaymentRecord) -> dict[str, Any]:
    item: dict[str, Any] = {**order_key(record.order_code), "entity": "order"}
    for name, value in record.model_dump(mode="python", exclude_none=True).items():
        if isinstance(value, datetime):
            item[name] = value.isoformat()
        elif isinstance(value, StrEnum):
            item[name] = value.value
        elif name == "subscription_ids":
            item[name] = [Decimal(v) for v in value]
        elif isinstance(value, int) and not isinstance(value, bool):
            item[name] = Decimal(value)
        else:
            item[name] = value
    return item


def record_from_item(item: dict[str, Any]) -> PaymentRecord:
    data = {k: v for k, v in item.items() if k in PaymentRecord.model_fields}
    for name in ("order_id", "customer_id"):
        if isinstance(data.get(name), Decimal):
            data[name] = int(data[name])
    data["subscription_ids"] = [int(v) for v in data.get("subscription_ids", [])]
    return PaymentRecord.model_validate(data)


def _storage_error(exc: Exception) -> StorageUnavailable:
    # The caller learns only that storage failed; the details go to the log, not the response.
    return StorageUnavailable("The payment store is unavailable; try again shortly.")


class PaymentStore:
    def __init__(self, table: Any) -> None:
        self._table = table

    def get_payment(self, order_code: str) -> PaymentRecord | None:
        try:
            response = self._table.get_item(Key=order_key(order_code), ConsistentRead=True)
        except (ClientError, BotoCoreError) as exc:
            raise _storage_error(exc) from exc
        item = response.get("Item")
        return record_from_item(item) if item else None

    def save_pending_order(self, record: PaymentRecord) -> PaymentRecord:
        """Remember an order we issued a pay link for; an existing item is kept as it is."""
        try:
            self._table.put_item(
                Item=_to_item(record),
                ConditionExpression="attribute_not_exists(pk)",
            )
            return record
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
                raise _storage_error(exc) from exc
        except BotoCoreError as exc:
            raise _storage_error(exc) from exc
        existing = self.get_payment(record.order_code)
        return existing if existing is not None else record

    def record_verified_payment(self, record: PaymentRecord) -> tuple[PaymentRecord, bool]:
        """Move the order to PAID once. Returns the stored record and whether this call recorded it.

        What was remembered at pay-link time (merchantRef, createdAt, the ordered amount) is kept;
        the verification evidence is written only by the call that wins the condition.
        """
        assert record.state is PaymentState.PAID
        values = _to_item(record)
        keep_if_present = {"merchant_ref", "created_at", "amount", "currency", "customer_id"}
        names: dict[str, str] = {"#state": "state"}
        expr_values: dict[str, Any] = {":paid": PaymentState.PAID.value}
        sets: list[str] = []
        for index, (name, value) in enumerate(sorted(values.items())):
            if name in ("pk", "sk"):
                continue
            placeholder_name, placeholder_value = f"#a{index}", f":v{index}"
            names[placeholder_name] = name
            expr_values[placeholder_value] = value
            if name in keep_if_present:
                sets.append(
                    f"{placeholder_name} = if_not_exists({placeholder_name}, {placeholder_value})"
                )
            else:
                sets.append(f"{placeholder_name} = {placeholder_value}")
        try:
            response = self._table.update_item(
                Key=order_key(record.order_code),
                UpdateExpression="SET " + ", ".join(sets),
                ConditionExpression="attribute_not_exists(pk) OR #state <> :paid",
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=expr_values,
                ReturnValues="ALL_NEW",
            )
            return record_from_item(response["Attributes"]), True
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
                raise _storage_error(exc) from exc
        except BotoCoreError as exc:
            raise _storage_error(exc) from exc
        existing = self.get_payment(record.order_code)
        if existing is None:  # pragma: no cover - the condition failed, so the item exists
            raise StorageUnavailable("The payment store answered inconsistently; try again.")
        return existing, False


@functools.cache
def _dynamodb_resource() -> Any:
    # Created once per container; AWS_ENDPOINT_URL_DYNAMODB points it at DynamoDB Local locally.
    return boto3.resource("dynamodb")


@functools.cache
def get_payment_store() -> PaymentStore:
    return PaymentStore(_dynamodb_resource().Table(get_settings().table_name))
