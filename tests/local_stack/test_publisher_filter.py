"""The publisher's stream filter (template.yaml, as SAM deploys it) loses no event and drops the rest.

The stream records are real: the payment store's own write paths against DynamoDB Local, read back
from the table's stream and shaped as Lambda's event (`steppay_local.streams.lambda_record`). Each is
put through the deployed FilterCriteria (the local matcher) and through the outbox the publisher
runs (`steppay.outbox.events_for_stream_record`): every record that stands for an event must pass.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from aws_lambda_powertools.utilities.data_classes.dynamo_db_stream_event import DynamoDBRecord
from fixtures.sam import translated_template

from steppay import persistence
from steppay.events import DETAIL_TYPES
from steppay.outbox import events_for_stream_record
from steppay.persistence import (
    CheckoutRecord,
    CheckoutState,
    PaymentRecord,
    PaymentState,
    PaymentStore,
    RegisteredItem,
    Registration,
    SubscriptionRecord,
)
from steppay_local._util import DEFAULT_REGION, client
from steppay_local.dynamodb import DynamoDBLocal
from steppay_local.filtering import EventFilter, parse_filter_criteria
from steppay_local.streams import lambda_record
from steppay_local.template import Template, create_tables

ROOT = Path(__file__).resolve().parents[2]
NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def publisher_filter() -> EventFilter:
    resources = translated_template()["Resources"]
    [mapping] = [
        r
        for r in resources.values()
        if r["Type"] == "AWS::Lambda::EventSourceMapping"
        and r["Properties"]["FunctionName"] == {"Ref": "PublisherFunction"}
    ]
    parsed = parse_filter_criteria(mapping["Properties"].get("FilterCriteria"), "dynamodb", where="Publisher")
    assert parsed is not None, "the publisher's stream mapping has no FilterCriteria"
    return parsed


def test_the_publisher_mapping_has_a_valid_filter() -> None:
    criteria = publisher_filter()
    assert 1 <= len(criteria.patterns) <= 5
    # The local stack reads the same filter from template.yaml.
    local = Template(ROOT / "template.yaml", {"Stage": "local", "StepPayBaseUrl": "http://127.0.0.1:1"})
    [event] = local.function("PublisherFunction").events
    assert getattr(event, "filter_criteria", None) == criteria


def registration(checkout_id: str) -> Registration:
    item = RegisteredItem(product_code="p", price_code="pr", currency="KRW", quantity=1)
    return Registration(checkout_id=checkout_id, merchant_ref=f"ref-{checkout_id}", items=[item])


def exercise_the_store(store: PaymentStore) -> None:
    """Every kind of write the bundle makes, announcing or not."""
    ttl = NOW + timedelta(days=1)
    # A checkout: claimed, opened, kept; a second one released (a REMOVE).
    checkout = CheckoutRecord(checkout_id="c1", merchant_ref="ref-c1", content_hash="h", claimed_at=NOW)
    store.claim_checkout(checkout, ttl=ttl)
    store.open_checkout(
        checkout.model_copy(update={"state": CheckoutState.OPEN, "order_code": "O1"}), ttl=ttl
    )
    store.keep_checkout("c1")
    other = CheckoutRecord(checkout_id="c2", merchant_ref="ref-c2", content_hash="h", claimed_at=NOW)
    store.claim_checkout(other, ttl=ttl)
    store.release_checkout("c2")
    # An Idempotency-Key, bound and released.
    store.claim_idempotency_key("key-1", "ref-c1", "h", ttl=ttl)
    store.release_idempotency_key("key-1", "h")

    def order(code: str, order_type: str = "ONE_TIME", **fields: Any) -> PaymentRecord:
        return PaymentRecord(
            order_code=code,
            order_id=int(code[1:]),
            order_type=order_type,
            amount=Decimal("1000"),
            currency="KRW",
            created_at=NOW,
            registration=registration("c1"),
            **fields,
        )

    paid: dict[str, Any] = {"state": PaymentState.PAID, "paid_at": NOW, "paid_amount": Decimal("1000")}
    # First payments: pending, then paid and cancelled; under review, then paid; a mismatch.
    store.save_pending_order(order("O1"), ttl=ttl)
    store.record_transition(order("O1", **paid))
    store.record_transition(order("O1", state=PaymentState.CANCELED, canceled_at=NOW))
    store.save_pending_order(order("O2"), ttl=ttl)
    store.record_transition(order("O2", state=PaymentState.NEEDS_REVIEW, unknown_values=["x"]))
    store.record_transition(order("O2", **paid))
    store.save_pending_order(order("O3"), ttl=ttl)
    store.record_transition(order("O3", state=PaymentState.MISMATCH, mismatches=["amount"]))
    # Renewals, first seen paid, or failed and then paid.
    store.record_transition(order("O4", "RECURRING", subscription_id=7, **paid))
    store.record_transition(
        order("O5", "RECURRING", subscription_id=7, state=PaymentState.FAILED, failed_at=NOW)
    )
    store.record_transition(order("O5", "RECURRING", subscription_id=7, **paid))
    # Partial and repeated refunds (issue 16): paid, refunded 100 then 400 more (each a `Payment
    # Refunded`), the same total again (refused: no record at all), then emptied (`Payment Canceled`).
    store.save_pending_order(order("O6"), ttl=ttl)
    store.record_transition(order("O6", **paid))

    def refunded(returned: str, state: PaymentState = PaymentState.PARTIALLY_REFUNDED) -> PaymentRecord:
        extra = {"canceled_at": NOW} if state is PaymentState.CANCELED else {}
        refund = {"returned_amount": Decimal(returned), "refunded_at": NOW, **extra}
        return order("O6", **{**paid, "state": state, **refund})

    assert store.record_transition(refunded("100"))[1]
    assert store.record_transition(refunded("500"))[1]
    assert not store.record_transition(refunded("500"))[1]  # a repeated lookup
    assert not store.record_transition(refunded("200"))[1]  # a stale one
    assert store.record_transition(refunded("1000", PaymentState.CANCELED))[1]
    assert not store.record_transition(refunded("1000", PaymentState.CANCELED))[1]
    # A subscription: first seen, seen again unchanged (no event), changed.
    for status, minutes in (("ACTIVE", 0), ("ACTIVE", 5), ("PAUSE", 10)):
        store.save_subscription_status(
            SubscriptionRecord(subscription_id=7, status=status, observed_at=NOW + timedelta(minutes=minutes))
        )


def stream_records(ddb_endpoint: str, table_name: str) -> list[dict[str, Any]]:
    ddb = client("dynamodb", ddb_endpoint, DEFAULT_REGION)
    streams = client("dynamodbstreams", ddb_endpoint, DEFAULT_REGION)
    arn = ddb.describe_table(TableName=table_name)["Table"]["LatestStreamArn"]
    records: list[dict[str, Any]] = []
    for shard in streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"]:
        iterator = streams.get_shard_iterator(
            StreamArn=arn, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        while iterator:
            response = streams.get_records(ShardIterator=iterator, Limit=1000)
            if not response["Records"]:
                break
            records += [lambda_record(raw, arn, DEFAULT_REGION) for raw in response["Records"]]
            iterator = response.get("NextShardIterator")
    return records


def test_every_announcing_record_passes_the_filter_and_nothing_else_does(
    dynamodb_local: DynamoDBLocal,
) -> None:
    criteria = publisher_filter()
    template = Template(
        ROOT / "template.yaml",
        {"Stage": "local", "StepPayBaseUrl": "http://127.0.0.1:1"},
        stack_name=f"filter-{uuid.uuid4().hex[:8]}",
    )
    table_name = create_tables(template, dynamodb_local.endpoint_url).table_names["PaymentsTable"]
    store = PaymentStore(persistence._ItemTable(client("dynamodb", dynamodb_local.endpoint_url), table_name))
    exercise_the_store(store)

    records = stream_records(dynamodb_local.endpoint_url, table_name)
    announced: set[str] = set()
    passed: dict[str, int] = {}
    dropped: dict[str, int] = {}
    for record in records:
        events = events_for_stream_record(DynamoDBRecord(record))
        image = record["dynamodb"].get("NewImage") or {}
        entity, state = image.get("entity", {}).get("S", "-"), image.get("state", {}).get("S", "")
        kind = f"{record['eventName']} {entity} {state}"
        if criteria.matches(record):
            passed[kind] = passed.get(kind, 0) + 1
        else:
            assert not events, f"the filter drops a record that announces {events}: {record}"
            dropped[kind] = dropped.get(kind, 0) + 1
        announced.update(e.detail_type for e in events)

    missing = set(DETAIL_TYPES) - announced
    assert not missing, f"no write above announces {missing}: add one, so that the filter is checked for it"
    entities_passed = {kind.split()[1] for kind in passed}
    assert entities_passed == {"order", "subscription"}
    assert not any(kind.endswith(" PENDING") for kind in passed)  # a pending order announces nothing
    assert {"INSERT checkout CREATING", "MODIFY checkout OPEN", "INSERT idempotency ", "REMOVE - "} <= set(
        dropped
    )
    assert "INSERT order PENDING" in dropped
    # What still passes without an event: the unchanged subscription status (a pattern cannot
    # compare the two images). Everything else that passes announces something.
    assert {"MODIFY order PARTIALLY_REFUNDED": 2, "MODIFY order CANCELED": 2}.items() <= passed.items()
    assert sum(passed.values()) == 15
