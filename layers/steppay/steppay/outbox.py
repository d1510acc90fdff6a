"""Reading the payments table's stream: which events does a stored change stand for?"""

from __future__ import annotations

from aws_lambda_powertools.utilities.data_classes.dynamo_db_stream_event import (
    DynamoDBRecord,
    DynamoDBRecordEventName,
)

from steppay.events import OutgoingEvent, events_for_order_change, events_for_subscription_change
from steppay.persistence import record_from_item, subscription_from_item


def events_for_stream_record(record: DynamoDBRecord) -> list[OutgoingEvent]:
    if record.event_name not in (DynamoDBRecordEventName.INSERT, DynamoDBRecordEventName.MODIFY):
        return []
    data = record.dynamodb
    if data is None or not data.new_image:
        return []
    # Powertools deserialises the DynamoDB JSON images (numbers as Decimal).
    new, old = data.new_image, data.old_image or None
    entity = new.get("entity")
    if entity == "order":
        return events_for_order_change(record_from_item(old) if old else None, record_from_item(new))
    if entity == "subscription":
        return events_for_subscription_change(
            subscription_from_item(old) if old else None, subscription_from_item(new)
        )
    return []  # webhooks and anything else announce nothing
