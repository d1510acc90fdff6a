"""The only module that reads or writes DynamoDB.

Items (one table):
- `CHECKOUT#<checkoutId>`: a checkout the merchant's backend registered (the content's hash, so a
  retried registration answers the same checkout, and the StepPay order it created);
- `IDEMPOTENCY#<key>`: an `Idempotency-Key` header, bound to the request content it came with;
- `ORDER#<orderCode>`: one StepPay order, with the registration it was created for. It moves as
  `steppay.transitions.TRANSITIONS` allows (PENDING → PAID or MISMATCH, PAID → PARTIALLY_REFUNDED
  → CANCELED, ...; a refund is written only when StepPay's `returned_amount` grows).
  Each move is a conditional write, so however many callers verify one order at once, exactly one
  records it; the table's stream carries that single transition to the publisher.
- `SUBSCRIPTION#<id>`: a subscription StepPay reported, as of StepPay's own time.

Webhooks are not kept here: the webhook queue holds each delivery until it is processed.

Unpaid registrations carry `ttl` (DynamoDB TTL): they disappear a while after they expire, and the
attribute is removed when the order is settled.
"""

from __future__ import annotations

import functools
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

import boto3
from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import BotoCoreError, ClientError
from pydantic import BaseModel, ConfigDict, Field

from steppay.aws import AWS_CLIENT_CONFIG as AWS_CLIENT_CONFIG  # re-exported: the other adapters use it
from steppay.problems import StorageUnavailable
from steppay.settings import get_settings
from steppay.transitions import SETTLED_STATES, order_kind, transition_into
from steppay.transitions import PaymentState as PaymentState  # re-exported: the store's records name it

ORDER_SK = "ORDER"
# Settled orders (PAID, PARTIALLY_REFUNDED, CANCELED) by StepPay's numeric id, for reconciliation:
# StepPay's order list carries ids, not codes. Sparse (only settled orders carry the key, so a
# pending order or a subscription costs no index write) and eventually consistent (a moment-old payment may be
# missing: the caller then merely confirms it again).
SETTLED_ORDERS_INDEX = "SettledOrdersIndex"
SETTLED_ORDER_ID = "settled_order_id"


TTL_ATTRIBUTE = "ttl"  # the table's TimeToLiveSpecification (template.yaml)


class VerifiedVia(StrEnum):
    VERIFY_API = "verify_api"
    CALLBACK = "callback"
    WEBHOOK = "webhook"
    RECONCILIATION = "reconciliation"


class RegisteredItem(BaseModel):
    """A line the merchant's backend registered: the shopper may pay quantity..max_quantity."""

    model_config = ConfigDict(frozen=True, defer_build=True)

    product_code: str
    price_code: str
    currency: str
    quantity: int
    max_quantity: int | None = None

    @property
    def quantity_bounds(self) -> tuple[int, int]:
        return self.quantity, self.max_quantity if self.max_quantity is not None else self.quantity


class Registration(BaseModel):
    """What the merchant's backend decided at `POST /checkouts`: the only truth of what is sold."""

    model_config = ConfigDict(frozen=True, defer_build=True)

    checkout_id: str
    merchant_ref: str
    customer_id: int | None = None  # StepPay's customer id, from its answer to the order creation
    customer_code: str | None = None
    customer_uuid: str | None = None
    items: list[RegisteredItem]
    expected_amount: Decimal | None = None
    expires_at: datetime | None = None


class ChargedItem(BaseModel):
    """A line as StepPay reports it was charged (records written before `type` have none)."""

    model_config = ConfigDict(frozen=True, defer_build=True)

    type: str | None = None  # SKU, or StepPay's own TAX / SHIPPING / FEE / DISCOUNT line
    name: str | None = None  # StepPay's name of the line (product, tax, discount, ...)
    # Absent attributes are None: the table leaves None out (StepPay's own lines have no codes).
    product_code: str | None = None
    price_code: str | None = None
    quantity: int | None = None
    unit_price: Decimal | None = None
    amount: Decimal | None = None  # what StepPay charged for the line; a discount negative


class PaymentRecord(BaseModel):
    """What we know of one StepPay order, and, once paid, the evidence that it was."""

    model_config = ConfigDict(frozen=True, defer_build=True)  # built on first use (cold starts)

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
    # Renewals (RECURRING orders): the subscription charged and the period paid for.
    subscription_id: int | None = None
    period_start: datetime | None = None
    period_end: datetime | None = None
    next_payment_date: datetime | None = None
    # Failed renewals and cancellations.
    error_code: str | None = None
    error_message: str | None = None
    failed_at: datetime | None = None
    # Refunds: StepPay's running returnedAmount (it only grows), when the last refund was recorded,
    # and when the payment was emptied or cancelled (CANCELED only).
    returned_amount: Decimal | None = None
    refunded_at: datetime | None = None
    canceled_at: datetime | None = None
    # The registration this order was created for (for a renewal: its subscription's checkout).
    registration: Registration | None = None
    charged_items: list[ChargedItem] = Field(default_factory=list)
    mismatches: list[str] = Field(default_factory=list)  # what disagreed (MISMATCH only)
    unknown_values: list[str] = Field(default_factory=list)  # what StepPay said we don't know (NEEDS_REVIEW)

    @property
    def is_paid(self) -> bool:
        return self.state is PaymentState.PAID


class CheckoutState(StrEnum):
    CREATING = "CREATING"  # claimed; the StepPay order is being created
    OPEN = "OPEN"  # the StepPay order exists; its ORDER item holds what happens next


class CheckoutRecord(BaseModel):
    """A registered checkout: its content's hash, and the StepPay order made for it."""

    model_config = ConfigDict(frozen=True, defer_build=True)

    checkout_id: str
    merchant_ref: str
    content_hash: str
    state: CheckoutState = CheckoutState.CREATING
    claimed_at: datetime
    order_code: str | None = None
    order_id: int | None = None
    pay_url: str | None = None
    amount: Decimal | None = None
    currency: str | None = None
    expires_at: datetime | None = None


class SubscriptionRecord(BaseModel):
    """The status StepPay last reported for a subscription, and when we asked."""

    model_config = ConfigDict(frozen=True, defer_build=True)  # built on first use (cold starts)

    subscription_id: int
    status: str
    observed_at: datetime  # when StepPay answered; newer observations win
    next_payment_date: datetime | None = None
    last_payment_date: datetime | None = None
    customer_id: int | None = None
    order_code: str | None = None  # the order that created the subscription
    order_id: int | None = None
    merchant_ref: str | None = None
    registration: Registration | None = None  # of the checkout whose order created it


class KnownOrder(BaseModel):
    """An order as reconciliation compares it with StepPay's list (a projection of its item)."""

    model_config = ConfigDict(frozen=True, defer_build=True)

    order_code: str
    order_id: int | None = None
    state: PaymentState
    order_type: str | None = None
    created_at: datetime
    returned_amount: Decimal | None = None


class KnownSubscription(BaseModel):
    model_config = ConfigDict(frozen=True, defer_build=True)

    subscription_id: int
    status: str
    observed_at: datetime


class ReconciliationSnapshot(BaseModel):
    model_config = ConfigDict(frozen=True, defer_build=True)

    orders: list[KnownOrder] = Field(default_factory=list)
    subscriptions: list[KnownSubscription] = Field(default_factory=list)


def order_key(order_code: str) -> dict[str, str]:
    return {"pk": f"ORDER#{order_code}", "sk": ORDER_SK}


def subscription_key(subscription_id: int) -> dict[str, str]:
    return {"pk": f"SUBSCRIPTION#{subscription_id}", "sk": "SUBSCRIPTION"}


def checkout_key(checkout_id: str) -> dict[str, str]:
    return {"pk": f"CHECKOUT#{checkout_id}", "sk": "CHECKOUT"}


def idempotency_key(key: str) -> dict[str, str]:
    return {"pk": f"IDEMPOTENCY#{key}", "sk": "IDEMPOTENCY"}


def _attribute(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, StrEnum):
        return value.value
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, list):
        return [_attribute(v) for v in value]
    if isinstance(value, dict):
        return {k: _attribute(v) for k, v in value.items()}
    return value


def _to_item(model: BaseModel, key: dict[str, str], entity: str) -> dict[str, Any]:
    item: dict[str, Any] = {**key, "entity": entity}
    for name, value in model.model_dump(mode="python", exclude_none=True).items():
        item[name] = _attribute(value)
    return item


def _ints(data: dict[str, Any], *names: str) -> dict[str, Any]:
    for name in names:
        if isinstance(data.get(name), Decimal):
            data[name] = int(data[name])
    return data


# Field names, looked up once: `Model.model_fields` is a computed property on every access.
_PAYMENT_FIELDS = frozenset(PaymentRecord.model_fields)
_SUBSCRIPTION_FIELDS = frozenset(SubscriptionRecord.model_fields)
_CHECKOUT_FIELDS = frozenset(CheckoutRecord.model_fields)


def record_from_item(item: dict[str, Any]) -> PaymentRecord:
    data = {k: v for k, v in item.items() if k in _PAYMENT_FIELDS}
    _ints(data, "order_id", "customer_id", "subscription_id")
    data["subscription_ids"] = [int(v) for v in data.get("subscription_ids", [])]
    return PaymentRecord.model_validate(data)


def checkout_from_item(item: dict[str, Any]) -> CheckoutRecord:
    data = {k: v for k, v in item.items() if k in _CHECKOUT_FIELDS}
    return CheckoutRecord.model_validate(_ints(data, "order_id"))


def subscription_from_item(item: dict[str, Any]) -> SubscriptionRecord:
    data = {k: v for k, v in item.items() if k in _SUBSCRIPTION_FIELDS}
    return SubscriptionRecord.model_validate(_ints(data, "subscription_id", "customer_id", "order_id"))


def _storage_error(exc: Exception) -> StorageUnavailable:
    # The caller learns only that storage failed; the details go to the log, not the response.
    return StorageUnavailable("The payment store is unavailable; try again shortly.")


def _is_condition_failure(exc: ClientError) -> bool:
    return exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException"


class _ItemTable:
    """The three item operations PaymentStore uses, on a low-level DynamoDB client.

    boto3's Table resource does the same (de)serialisation, but through its resource and
    transformation layers, which walk each operation's whole input and output shapes on every
    call; on the warm path that cost about a millisecond per call (`make bench`, warm latency).
    Errors are botocore's own (ClientError, BotoCoreError), as with the resource.
    """

    def __init__(self, client: Any, table_name: str) -> None:
        self._client = client
        self._name = table_name
        self._serialize = TypeSerializer().serialize
        self._deserialize = TypeDeserializer().deserialize

    def _attributes(self, values: dict[str, Any]) -> dict[str, Any]:
        return {name: self._serialize(value) for name, value in values.items()}

    def _item(self, attributes: dict[str, Any]) -> dict[str, Any]:
        return {name: self._deserialize(value) for name, value in attributes.items()}

    def get_item(self, key: dict[str, str]) -> dict[str, Any] | None:
        response = self._client.get_item(TableName=self._name, Key=self._attributes(key), ConsistentRead=True)
        found = response.get("Item")
        return self._item(found) if found is not None else None

    def query_index(self, index: str, attribute: str, value: Any) -> list[dict[str, Any]]:
        """Every item whose `attribute` (the index's partition key) equals `value`."""
        request: dict[str, Any] = {
            "TableName": self._name,
            "IndexName": index,
            "KeyConditionExpression": "#k = :v",
            "ExpressionAttributeNames": {"#k": attribute},
            "ExpressionAttributeValues": {":v": self._serialize(value)},
        }
        items: list[dict[str, Any]] = []
        while True:
            response = self._client.query(**request)
            items.extend(self._item(found) for found in response.get("Items", []))
            if "LastEvaluatedKey" not in response:
                return items
            request["ExclusiveStartKey"] = response["LastEvaluatedKey"]

    def scan_filtered(
        self, filter_expression: str, names: dict[str, str], values: dict[str, Any], projection: str
    ) -> list[dict[str, Any]]:
        """Every item matching `filter_expression` (a whole-table Scan, page after page)."""
        request: dict[str, Any] = {
            "TableName": self._name,
            "FilterExpression": filter_expression,
            "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": self._attributes(values),
            "ProjectionExpression": projection,
        }
        items: list[dict[str, Any]] = []
        while True:
            response = self._client.scan(**request)
            items.extend(self._item(found) for found in response.get("Items", []))
            if "LastEvaluatedKey" not in response:
                return items
            request["ExclusiveStartKey"] = response["LastEvaluatedKey"]

    def put_new(self, item: dict[str, Any]) -> None:
        self._client.put_item(
            TableName=self._name,
            Item=self._attributes(item),
            ConditionExpression="attribute_not_exists(pk)",
        )

    def delete_if(
        self, key: dict[str, str], condition: str, names: dict[str, str], values: dict[str, Any]
    ) -> None:
        request: dict[str, Any] = {
            "TableName": self._name,
            "Key": self._attributes(key),
            "ConditionExpression": condition,
            "ExpressionAttributeValues": self._attributes(values),
        }
        if names:  # DynamoDB refuses an empty map
            request["ExpressionAttributeNames"] = names
        self._client.delete_item(**request)

    def update_item(
        self,
        key: dict[str, str],
        update: str,
        condition: str,
        names: dict[str, str],
        values: dict[str, Any],
    ) -> dict[str, Any]:
        request: dict[str, Any] = {
            "TableName": self._name,
            "Key": self._attributes(key),
            "UpdateExpression": update,
            "ConditionExpression": condition,
            "ExpressionAttributeNames": names,
            "ReturnValues": "ALL_NEW",
        }
        if values:  # DynamoDB refuses an empty map
            request["ExpressionAttributeValues"] = self._attributes(values)
        return self._item(self._client.update_item(**request)["Attributes"])


class PaymentStore:
    def __init__(self, table: _ItemTable) -> None:
        self._table = table

    # -- reads ----------------------------------------------------------------------------

    def _get(self, key: dict[str, str]) -> dict[str, Any] | None:
        try:
            return self._table.get_item(key)
        except (ClientError, BotoCoreError) as exc:
            raise _storage_error(exc) from exc

    def get_payment(self, order_code: str) -> PaymentRecord | None:
        item = self._get(order_key(order_code))
        return record_from_item(item) if item else None

    def settled_state_by_order_id(self, order_id: int) -> PaymentState | None:
        """PAID, PARTIALLY_REFUNDED or CANCELED when StepPay order `order_id` is recorded so, from the
        index; else None.

        The index is eventually consistent; callers use it only to skip work that a miss
        would merely repeat (reconciliation), never to decide a payment.
        """
        try:
            items = self._table.query_index(SETTLED_ORDERS_INDEX, SETTLED_ORDER_ID, Decimal(order_id))
        except (ClientError, BotoCoreError) as exc:
            raise _storage_error(exc) from exc
        for item in items:
            if item.get("state") in SETTLED_STATES:  # StrEnum members equal their values
                return PaymentState(item["state"])
        return None

    def reconciliation_snapshot(self, since: datetime) -> ReconciliationSnapshot:
        """What reconciliation compares with StepPay: one read of the table, written nowhere.

        Orders created since `since` (open ones, PENDING or FAILED, are those that can still
        become paid; the others tell whether StepPay's list should have shown something), and
        every subscription. A Scan reads the whole table (its read cost grows with the table,
        not with StepPay calls); a sparse index of open registrations would end that, at the
        price of a key on the write paths.
        """
        try:
            items = self._table.scan_filtered(
                "(entity = :order AND created_at >= :since) OR entity = :subscription",
                {"#state": "state", "#status": "status"},  # both DynamoDB reserved words
                {":order": "order", ":subscription": "subscription", ":since": since.isoformat()},
                "entity, #state, #status, order_code, order_id, order_type, created_at, returned_amount, "
                "subscription_id, observed_at",
            )
        except (ClientError, BotoCoreError) as exc:
            raise _storage_error(exc) from exc
        orders: list[KnownOrder] = []
        subscriptions: list[KnownSubscription] = []
        for item in items:
            if item.get("entity") == "subscription" and item.get("subscription_id") is not None:
                subscriptions.append(
                    KnownSubscription(
                        subscription_id=int(item["subscription_id"]),
                        status=str(item.get("status") or ""),
                        observed_at=datetime.fromisoformat(str(item["observed_at"])),
                    )
                )
            elif item.get("entity") == "order" and item.get("order_code"):
                orders.append(
                    KnownOrder(
                        order_code=str(item["order_code"]),
                        order_id=int(item["order_id"]) if item.get("order_id") is not None else None,
                        state=PaymentState(item.get("state", PaymentState.PENDING.value)),
                        order_type=item.get("order_type"),
                        created_at=datetime.fromisoformat(str(item["created_at"])),
                        returned_amount=item.get("returned_amount"),
                    )
                )
        return ReconciliationSnapshot(orders=orders, subscriptions=subscriptions)

    def get_subscription(self, subscription_id: int) -> SubscriptionRecord | None:
        item = self._get(subscription_key(subscription_id))
        return subscription_from_item(item) if item else None

    # -- conditional writes ---------------------------------------------------------------

    def _put_new(self, item: dict[str, Any]) -> bool:
        try:
            self._table.put_new(item)
            return True
        except ClientError as exc:
            if not _is_condition_failure(exc):
                raise _storage_error(exc) from exc
            return False
        except BotoCoreError as exc:
            raise _storage_error(exc) from exc

    def _update_if(
        self,
        key: dict[str, str],
        values: dict[str, Any],
        condition: str,
        condition_values: dict[str, Any],
        keep_if_present: frozenset[str] = frozenset(),
        removes: tuple[str, ...] = (),
    ) -> dict[str, Any] | None:
        """SET every value (and REMOVE `removes`) when `condition` holds; returns the new item, or
        None when it did not."""
        names: dict[str, str] = {"#state": "state"}
        expr_values = dict(condition_values)
        sets: list[str] = []
        for index, (name, value) in enumerate(sorted(values.items())):
            if name in key:
                continue
            n, v = f"#a{index}", f":v{index}"
            names[n] = name
            expr_values[v] = value
            sets.append(f"{n} = if_not_exists({n}, {v})" if name in keep_if_present else f"{n} = {v}")
        if "#state" not in condition:
            names.pop("#state")
        update = "SET " + ", ".join(sets)
        if removes:
            for index, name in enumerate(removes):
                names[f"#r{index}"] = name
            update += " REMOVE " + ", ".join(f"#r{i}" for i in range(len(removes)))
        try:
            return self._table.update_item(key, update, condition, names, expr_values)
        except ClientError as exc:
            if not _is_condition_failure(exc):
                raise _storage_error(exc) from exc
            return None
        except BotoCoreError as exc:
            raise _storage_error(exc) from exc

    # -- orders ---------------------------------------------------------------------------

    def save_pending_order(self, record: PaymentRecord, *, ttl: datetime | None = None) -> PaymentRecord:
        """Remember a registered order; an existing item is kept as it is."""
        item = _to_item(record, order_key(record.order_code), "order")
        if ttl is not None:
            item[TTL_ATTRIBUTE] = Decimal(int(ttl.timestamp()))
        if self._put_new(item):
            return record
        existing = self.get_payment(record.order_code)
        return existing if existing is not None else record

    def _transition(
        self,
        record: PaymentRecord,
        allowed_from: tuple[PaymentState, ...],
        allow_new: bool,
        grows_from: tuple[PaymentState, ...] = (),
    ) -> tuple[PaymentRecord, bool]:
        """Move an order into `record.state` when it is in one of `allowed_from` (or absent).

        From a `grows_from` state, only when the stored `returned_amount` is smaller than the
        record's (a refund row: a stale or repeated lookup writes nothing). What was remembered
        at pay-link time (merchantRef, createdAt, the ordered amount) is kept; the evidence is
        written only by the call that wins the condition, so concurrent callers record a state
        change exactly once.
        """
        plain = [state for state in allowed_from if state not in grows_from]
        placeholders: dict[str, Any] = {f":from{i}": state.value for i, state in enumerate(plain)}
        clauses = [f"#state IN ({', '.join(placeholders)})"] if placeholders else []
        grown = [state for state in allowed_from if state in grows_from]
        if grown:
            growing = {f":grow{i}": state.value for i, state in enumerate(grown)}
            placeholders.update(growing)
            placeholders[":returned"] = record.returned_amount or Decimal(0)
            # A missing returned_amount compares false: only a recorded, smaller one is overtaken.
            clauses.append(f"(#state IN ({', '.join(growing)}) AND returned_amount < :returned)")
        condition = " OR ".join(clauses)
        if allow_new:
            condition = f"attribute_not_exists(pk) OR {condition}"
        values = _to_item(record, order_key(record.order_code), "order")
        if record.state in SETTLED_STATES and record.order_id is not None:
            values[SETTLED_ORDER_ID] = Decimal(record.order_id)  # joins SETTLED_ORDERS_INDEX
        item = self._update_if(
            order_key(record.order_code),
            values,
            condition,
            placeholders,
            keep_if_present=frozenset(
                {"merchant_ref", "created_at", "amount", "currency", "customer_id", "registration"}
            ),
            # Settled: no longer an unpaid registration that may expire.
            removes=(TTL_ATTRIBUTE,) if record.state is not PaymentState.PENDING else (),
        )
        if item is not None:
            return record_from_item(item), True
        existing = self.get_payment(record.order_code)
        if existing is None:  # the condition failed, so the item exists; a race with a delete
            raise StorageUnavailable("The payment store answered inconsistently; try again.")
        return existing, False

    def record_transition(self, record: PaymentRecord) -> tuple[PaymentRecord, bool]:
        """Move the order into `record.state` once, from the states the transition table allows.

        Returns the stored record and whether this call recorded the change (a CANCELED order, for
        one, never becomes PAID again: no row allows it).
        """
        row = transition_into(record.state, order_kind(record.order_type))
        return self._transition(
            record, row.from_states, allow_new=row.from_nothing, grows_from=row.grows_from
        )

    # -- checkouts ------------------------------------------------------------------------

    def get_checkout(self, checkout_id: str) -> CheckoutRecord | None:
        item = self._get(checkout_key(checkout_id))
        return checkout_from_item(item) if item else None

    def claim_checkout(self, checkout: CheckoutRecord, *, ttl: datetime) -> tuple[CheckoutRecord, bool]:
        """Claim a merchantRef's checkout; returns the stored one and whether this call claimed it."""
        item = _to_item(checkout, checkout_key(checkout.checkout_id), "checkout")
        item[TTL_ATTRIBUTE] = Decimal(int(ttl.timestamp()))
        if self._put_new(item):
            return checkout, True
        existing = self.get_checkout(checkout.checkout_id)
        if existing is None:  # expired and deleted between the two calls: claim again
            return self.claim_checkout(checkout, ttl=ttl)
        return existing, False

    def retake_stale_claim(self, checkout: CheckoutRecord, stale_before: datetime) -> bool:
        """Take over a claim whose request died before creating the order (claimed before the cutoff)."""
        key = checkout_key(checkout.checkout_id)
        item = self._update_if(
            key,
            {"claimed_at": checkout.claimed_at.isoformat()},
            "#state = :creating AND claimed_at < :cutoff",
            {":creating": CheckoutState.CREATING.value, ":cutoff": stale_before.isoformat()},
        )
        return item is not None

    def open_checkout(self, checkout: CheckoutRecord, *, ttl: datetime) -> CheckoutRecord:
        """CREATING → OPEN with the StepPay order made for it."""
        key = checkout_key(checkout.checkout_id)
        values = _to_item(checkout, key, "checkout")
        values[TTL_ATTRIBUTE] = Decimal(int(ttl.timestamp()))
        item = self._update_if(key, values, "#state = :creating", {":creating": CheckoutState.CREATING.value})
        if item is None:
            raise StorageUnavailable("The checkout changed while it was being registered; try again.")
        return checkout_from_item(item)

    def release_checkout(self, checkout_id: str) -> None:
        """Forget a claim whose registration failed, so that a corrected retry may register it."""
        try:
            self._table.delete_if(
                checkout_key(checkout_id),
                "#state = :creating",
                {"#state": "state"},
                {":creating": CheckoutState.CREATING.value},
            )
        except ClientError as exc:
            if not _is_condition_failure(exc):
                raise _storage_error(exc) from exc
        except BotoCoreError as exc:
            raise _storage_error(exc) from exc

    def keep_checkout(self, checkout_id: str) -> None:
        """A settled checkout is kept (its TTL removed), like its order."""
        key = checkout_key(checkout_id)
        self._update_if(key, {"entity": "checkout"}, "attribute_exists(pk)", {}, removes=(TTL_ATTRIBUTE,))

    def claim_idempotency_key(
        self, key: str, merchant_ref: str, content_hash: str, *, ttl: datetime
    ) -> tuple[str, bool]:
        """Bind an Idempotency-Key to a request's content.

        Returns the content hash it is bound to and whether this call bound it.
        """
        item = {
            **idempotency_key(key),
            "entity": "idempotency",
            "merchant_ref": merchant_ref,
            "content_hash": content_hash,
            TTL_ATTRIBUTE: Decimal(int(ttl.timestamp())),
        }
        if self._put_new(item):
            return content_hash, True
        existing = self._get(idempotency_key(key))
        return (str(existing["content_hash"]), False) if existing else (content_hash, False)

    def release_idempotency_key(self, key: str, content_hash: str) -> None:
        """Unbind a key this request bound, when the request was refused (a corrected retry may use it)."""
        try:
            self._table.delete_if(idempotency_key(key), "content_hash = :hash", {}, {":hash": content_hash})
        except ClientError as exc:
            if not _is_condition_failure(exc):
                raise _storage_error(exc) from exc
        except BotoCoreError as exc:
            raise _storage_error(exc) from exc

    # -- subscriptions --------------------------------------------------------------------

    def save_subscription_status(self, record: SubscriptionRecord) -> tuple[SubscriptionRecord, bool]:
        """Store what StepPay reported, unless a newer observation is already stored.

        Returns the stored record and whether this observation was written. Deciding by the
        time of StepPay's answer (not by webhook arrival) keeps a slow, stale lookup from
        moving the status backwards.
        """
        key = subscription_key(record.subscription_id)
        item = self._update_if(
            key,
            _to_item(record, key, "subscription"),
            "attribute_not_exists(pk) OR observed_at < :observed",
            {":observed": record.observed_at.isoformat()},
            keep_if_present=frozenset({"merchant_ref", "order_code", "order_id", "registration"}),
        )
        if item is not None:
            return subscription_from_item(item), True
        existing = self.get_subscription(record.subscription_id)
        if existing is None:
            raise StorageUnavailable("The payment store answered inconsistently; try again.")
        return existing, False


@functools.cache
def _dynamodb_client() -> Any:
    # Created once per container; AWS_ENDPOINT_URL_DYNAMODB points it at DynamoDB Local locally.
    return boto3.client("dynamodb", config=AWS_CLIENT_CONFIG)


@functools.cache
def get_payment_store() -> PaymentStore:
    return PaymentStore(_ItemTable(_dynamodb_client(), get_settings().table_name))
