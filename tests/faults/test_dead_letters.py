"""A webhook whose processing fails every time: it reaches the dead-letter queue after the
template's maxReceiveCount, the template's alarm watches that queue, and once the cause is fixed
a redrive processes it exactly once.

"Fails every time" is StepPay answering 500 to every lookup of the order the webhook names
(the sandbox's fault injection): the processor raises, the message is reported failed, SQS
makes it visible again, and moto moves it to the dead-letter queue per the queue's
RedrivePolicy. The local queue's visibility timeout is shortened to 1 s for this test.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from faults.checkouts import pay_link
from faults.conftest import FaultLab
from faults.test_steppay_faults import (
    PAYMENT_WEBHOOKS,
    assert_announced_once,
    assert_nothing_decided,
    break_order,
    faults_used,
    payment_webhooks_processed,
)

pytestmark = pytest.mark.e2e

SUITE = "faults"
ROOT = Path(__file__).resolve().parents[2]


class _Loader(yaml.SafeLoader):
    pass


def _tag(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> Any:
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node)
    else:
        value = loader.construct_mapping(node)  # type: ignore[arg-type]
    return {suffix: value}


_Loader.add_multi_constructor("!", _tag)


def template_resources() -> dict[str, Any]:
    document = yaml.load((ROOT / "template.yaml").read_text(encoding="utf-8"), Loader=_Loader)
    return dict(document["Resources"])


def test_template_alarms_on_the_webhook_dead_letter_queue() -> None:
    resources = template_resources()
    queue = resources["WebhookQueue"]["Properties"]
    assert queue["RedrivePolicy"]["deadLetterTargetArn"] == {"GetAtt": "WebhookDeadLetterQueue.Arn"}
    assert int(queue["RedrivePolicy"]["maxReceiveCount"]) >= 1
    alarms = [
        r["Properties"]
        for r in resources.values()
        if r["Type"] == "AWS::CloudWatch::Alarm"
        and {"Name": "QueueName", "Value": {"GetAtt": "WebhookDeadLetterQueue.QueueName"}}
        in r["Properties"].get("Dimensions", [])
    ]
    assert len(alarms) == 1, "one alarm watches the webhook dead-letter queue"
    alarm = alarms[0]
    assert alarm["Namespace"] == "AWS/SQS"
    assert alarm["MetricName"] == "ApproximateNumberOfMessagesVisible"
    assert alarm["ComparisonOperator"] == "GreaterThanThreshold"
    assert float(alarm["Threshold"]) == 0


def _alarm_state(lab: FaultLab) -> str:
    """The template alarm, evaluated on the local dead-letter queue's metric."""
    alarm = next(
        r["Properties"] for name, r in template_resources().items() if name == "WebhookDeadLetterAlarm"
    )
    visible = int(
        lab.sqs().get_queue_attributes(
            QueueUrl=lab.stack.queue_urls["WebhookDeadLetterQueue"],
            AttributeNames=["ApproximateNumberOfMessages"],
        )["Attributes"]["ApproximateNumberOfMessages"]
    )
    assert alarm["ComparisonOperator"] == "GreaterThanThreshold"
    return "ALARM" if visible > float(alarm["Threshold"]) else "OK"


def _dead_letters(lab: FaultLab) -> int:
    attributes = lab.sqs().get_queue_attributes(
        QueueUrl=lab.stack.queue_urls["WebhookDeadLetterQueue"],
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"]) + int(
        attributes["ApproximateNumberOfMessagesNotVisible"]
    )


def redrive(lab: FaultLab) -> list[str]:
    """Move every dead letter back to the webhook queue (what an operator does after the fix)."""
    sqs = lab.sqs()
    source, dead = lab.stack.queue_urls["WebhookQueue"], lab.stack.queue_urls["WebhookDeadLetterQueue"]
    moved: list[str] = []
    while True:
        messages = sqs.receive_message(QueueUrl=dead, MaxNumberOfMessages=10, WaitTimeSeconds=1).get(
            "Messages", []
        )
        if not messages:
            return moved
        for message in messages:
            sqs.send_message(QueueUrl=source, MessageBody=message["Body"])
            sqs.delete_message(QueueUrl=dead, ReceiptHandle=message["ReceiptHandle"])
            moved.append(message["Body"])


def test_webhook_failing_every_time_is_dead_lettered_then_redriven_once(
    lab: FaultLab, reliability: Any
) -> None:
    h = lab.h
    sqs = lab.sqs()
    policy = json.loads(
        sqs.get_queue_attributes(
            QueueUrl=lab.stack.queue_urls["WebhookQueue"], AttributeNames=["RedrivePolicy"]
        )["Attributes"]["RedrivePolicy"]
    )
    max_receives = int(policy["maxReceiveCount"])
    with reliability.fault(SUITE, "webhook processing failing every time (dead-letter queue, redrive)"):
        assert _dead_letters(lab) == 0 and _alarm_state(lab) == "OK"
        lab.set_webhook_visibility(1)
        link = pay_link(h)
        code = link["orderCode"]
        break_order(h, link, {"status": 500})
        mark = h.mark_processor_log()
        h.complete(code)  # order.payment_completed and payment.completed, both about this order

        h.wait_for(
            lambda: _dead_letters(lab) >= 2, timeout=120, what="both webhooks in the dead-letter queue"
        )
        failures = [
            line for line in h.stack.logs.lines("sqs:WebhookProcessorFunction.Webhooks") if "failed" in line
        ]
        assert failures, "processing failed before the dead letters"
        # Tried again and again first: every receive asks StepPay (moto moves a message on its
        # maxReceiveCount-th receive; SQS after it: one attempt fewer locally). Counted at StepPay,
        # not in poller lines: deliveries of one order share a batch, and a batch fails as one.
        assert faults_used(h) >= max_receives - 1, faults_used(h)
        assert _alarm_state(lab) == "ALARM"
        assert_nothing_decided(h, code)
        assert payment_webhooks_processed(h, link, mark) == [], "nothing was processed while it failed"

        # The cause is fixed; the operator redrives the dead letters.
        h.clear_faults()
        lab.set_webhook_visibility(3)
        moved = redrive(lab)
        # One message per webhook StepPay sent, each naming this order and what it was about.
        refs = {code, str(link["orderId"])}
        # (At least once: a delivery StepPay repeated, say after a slow answer, is there again.)
        messages = [json.loads(body) for body in moved]
        assert {m["eventType"] for m in messages} == set(PAYMENT_WEBHOOKS), moved
        assert all(m["orderRef"] in refs for m in messages), moved
        h.wait_for(
            lambda: (h.record(code) or {}).get("state") == "PAID", timeout=60, what="the redriven webhook"
        )
        assert_announced_once(h, code)
        record = h.record(code)
        h.settle()
        assert h.record(code) == record, "processed once: the second webhook changed nothing"
        assert _dead_letters(lab) == 0 and _alarm_state(lab) == "OK"
        handled = payment_webhooks_processed(h, link, mark)
        assert {r["event_type"] for r in handled} == set(PAYMENT_WEBHOOKS), handled
        assert {r["state"] for r in handled} == {"PROCESSED"}, handled
        reliability.count(SUITE, records=1, events=1)
