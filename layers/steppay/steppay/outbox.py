"""Reading the payments table's stream: which events does a stored change stand for?"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.data_classes.dynamo_db_stream_event import (
    DynamoDBRecord,
    DynamoDBRecordEventName,
)

from steppay.events import OutgoingEvent, events_for_change
from steppay.persistence import PaymentRecord, record_from_item


def _order_image(image: dict[str, Any] | None) -> PaymentRecord | None:
    if not image or image.get("entity") != "order":
        return None
    return record_from_item(image)


def events_for_stream_record(record: DynamoDBRecord) -> list[OutgoingEvent]:
    if record.event_name not in (DynamoDBRecordEventName.INSERT, DynamoDBRecordEventName.MODIFY):
        return []
    data = record.dynamodb
    if data is None:
        return []
    # Powertools deserialises the DynamoDB JSON images (numbers as Decimal).
    new = _order_image(data.new_image)
    if new is None:
        return []
    return events_for_change(_order_image(data.old_image), new)
