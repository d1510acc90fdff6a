"""A local stack of its own for the fault suite, built to be broken.

* DynamoDB Local keeps its data on disk (a temporary directory), so it can be stopped in the
  middle of a run and started again with its data and its stream.
* The functions reach EventBridge and DynamoDB through fault-injecting proxies (boto3's own
  endpoint variables, set as the stack's environment overrides; the template is untouched).
* The functions log at DEBUG (`POWERTOOLS_LOG_LEVEL=DEBUG`, `POWERTOOLS_DEBUG=true`), which the
  secret scan reads; StepPay calls time out after 1.5 s so that "slower than the client timeout"
  is quick to show.
* The webhook queue's visibility timeout is shortened on the local queue (3 s instead of the
  deployed 180 s) so retries and the dead-letter redrive happen within the test's time; the
  redrive policy (maxReceiveCount) is the template's.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hostile.harness import Harness, restore_sandbox

from faults.proxy import FaultProxy
from steppay_local.stack import LocalStack, LocalStackConfig

ROOT = Path(__file__).resolve().parents[2]
WEBHOOK_VISIBILITY_SECONDS = 3


@dataclass
class FaultLab:
    stack: LocalStack
    h: Harness
    events_proxy: FaultProxy
    dynamodb_proxy: FaultProxy

    def sqs(self) -> Any:
        return self.stack.client("sqs")

    def set_webhook_visibility(self, seconds: int) -> None:
        self.sqs().set_queue_attributes(
            QueueUrl=self.stack.queue_urls["WebhookQueue"], Attributes={"VisibilityTimeout": str(seconds)}
        )


@pytest.fixture(scope="package")
def fault_lab(tmp_path_factory: pytest.TempPathFactory, reliability: Any) -> Iterator[FaultLab]:
    events_proxy = FaultProxy("EventBridge").start()
    dynamodb_proxy = FaultProxy("DynamoDB").start()
    log_file = ROOT / "test-artifacts" / "local-stack-faults.log"
    log_file.parent.mkdir(parents=True, exist_ok=True)
    log_file.write_text("", encoding="utf-8")
    config = LocalStackConfig(
        root=ROOT,
        stack_name="steppay-faults",
        api_port=0,
        sandbox_port=0,
        dynamodb_port=0,
        moto_port=0,
        data_dir=tmp_path_factory.mktemp("fault-stack"),
        log_file=log_file,
        sandbox_options={"webhook_retry_delays": (0.2, 0.5)},
        stream_retry_backoff=(0.2, 2.0),
        async_retry_delay=1.0,
        reload_on_change=False,
        max_concurrency=4,
        env_overrides={
            "POWERTOOLS_LOG_LEVEL": "DEBUG",
            "POWERTOOLS_DEBUG": "true",
            "STEPPAY_READ_TIMEOUT": "1.5",
            "STEPPAY_CONNECT_TIMEOUT": "1",
            "AWS_ENDPOINT_URL_EVENTBRIDGE": events_proxy.url,
            "AWS_ENDPOINT_URL_DYNAMODB": dynamodb_proxy.url,
        },
    )
    stack = LocalStack(config)
    try:
        stack.start()
        events_proxy.upstream = stack.moto_endpoint
        dynamodb_proxy.upstream = stack.dynamodb_endpoint
        reliability.watch_stack(stack)
        lab = FaultLab(stack, Harness(stack, reliability), events_proxy, dynamodb_proxy)
        lab.set_webhook_visibility(WEBHOOK_VISIBILITY_SECONDS)
        yield lab
        # What the secret scan needs from this stack before it goes: every event, every item.
        reliability.collect_stack(stack)
    finally:
        stack.stop()
        events_proxy.stop()
        dynamodb_proxy.stop()


@pytest.fixture
def lab(fault_lab: FaultLab) -> Iterator[FaultLab]:
    """The fault stack, with every fault cleared before and after the test."""
    _clear(fault_lab)
    try:
        yield fault_lab
    finally:
        _clear(fault_lab)


def _clear(lab: FaultLab) -> None:
    lab.events_proxy.reset()
    lab.dynamodb_proxy.reset()
    restore_sandbox(lab.stack)
    if lab.stack.dynamodb is not None and not lab.stack.dynamodb.running:
        lab.stack.restart_dynamodb()
    lab.set_webhook_visibility(WEBHOOK_VISIBILITY_SECONDS)
    lab.h.dirty = True
