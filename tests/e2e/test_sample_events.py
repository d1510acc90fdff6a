"""Every function has sample events in events/, and each one runs through its real handler.

The samples are shaped for a deployed stage (https://shop.example.com redirects, StepPay ids that
the local sandbox does not know), so on the local stack they exercise the refusal paths (the v2
webhook samples are signed again now, see below); what matters here is that each is a well-formed
event for its function and that the handler answers it as documented.
"""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from e2e.conftest import Shop

from steppay.errors import SignatureMismatch, SignatureStale
from steppay.secrets import parse_webhook_keys
from steppay.signature import (
    DEFAULT_TOLERANCE_SECONDS,
    parse_signature_header,
    sign,
    verify_signature,
)

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
EVENTS = ROOT / "events"


class _CfnLoader(yaml.SafeLoader):
    pass


def _any_tag(loader: yaml.Loader, suffix: str, node: yaml.Node) -> Any:
    if isinstance(node, yaml.ScalarNode):
        return loader.construct_scalar(node)
    if isinstance(node, yaml.SequenceNode):
        return loader.construct_sequence(node)
    return loader.construct_mapping(node)  # type: ignore[arg-type]


_CfnLoader.add_multi_constructor("!", _any_tag)
TEMPLATE = yaml.load((ROOT / "template.yaml").read_text(), Loader=_CfnLoader)
FUNCTIONS = {
    logical_id: resource["Properties"]
    for logical_id, resource in TEMPLATE["Resources"].items()
    if resource["Type"] == "AWS::Serverless::Function"
}


def _folder(properties: dict[str, Any]) -> str:
    return Path(properties["CodeUri"]).name


def _load(relative: str) -> dict[str, Any]:
    return dict(json.loads((EVENTS / relative).read_text()))


def test_every_function_has_sample_events() -> None:
    for logical_id, properties in FUNCTIONS.items():
        samples = list((EVENTS / _folder(properties)).glob("*.json"))
        assert samples, f"{logical_id} has no sample events in events/{_folder(properties)}/"


def test_http_samples_name_their_functions_routes() -> None:
    for properties in FUNCTIONS.values():
        routes = {
            f"{e['Properties']['Method']} {e['Properties']['Path']}"
            for e in properties.get("Events", {}).values()
            if e["Type"] == "HttpApi"
        }
        for sample in (EVENTS / _folder(properties)).glob("*.json"):
            event = json.loads(sample.read_text())
            if "routeKey" in event:
                assert event["version"] == "2.0"
                assert event["routeKey"] in routes, sample


def test_entitlement_samples_match_the_event_schemas() -> None:
    for name, schema in [
        ("renewal-payment-verified", "renewal-payment-verified.json"),
        ("subscription-status-changed", "subscription-status-changed.json"),
    ]:
        event = _load(f"entitlements/{name}.json")
        jsonschema.validate(
            event["detail"],
            json.loads((EVENTS / "schemas" / schema).read_text()),
            format_checker=jsonschema.FormatChecker(),
        )


def _status(result: dict[str, Any]) -> tuple[int, str | None]:
    body = result.get("body") or ""
    code = json.loads(body)["error"]["code"] if body.startswith('{"error"') else None
    return int(result["statusCode"]), code


@pytest.mark.parametrize(
    ("function", "sample", "expected"),
    [
        ("PayUrlFunction", "pay_url/create-order.json", (400, "redirect_not_allowed")),
        ("PayUrlFunction", "pay_url/existing-order.json", (400, "redirect_not_allowed")),
        ("PayUrlFunction", "pay_url/redirect-not-allowed.json", (400, "redirect_not_allowed")),
        ("VerifyFunction", "verify/verify.json", (404, "order_not_found")),
        ("VerifyFunction", "verify/verify-injection.json", (400, "invalid_request")),
        ("VerifyFunction", "verify/callback-success.json", (404, "order_not_found")),
        ("VerifyFunction", "verify/callback-error.json", (404, "order_not_found")),
        ("WebhookIntakeFunction", "webhook_intake/v1-payment.json", (200, None)),
        ("WebhookIntakeFunction", "webhook_intake/v1-subscription.json", (200, None)),
    ],
)
def test_http_samples_through_their_handlers(
    shop: Shop, function: str, sample: str, expected: tuple[int, str | None]
) -> None:
    assert _status(shop.stack.invoke(function, _load(sample))) == expected


# The v2 samples' signatures carry a fixed timestamp, so as shipped they are fresh only within
# 5 minutes of it and stale at any other time: a result that depends on when the test runs (one
# run did land in that window). Their signatures are checked at their own time instead, and the
# handler gets each one signed again now, as StepPay signs a redelivery.
V2_SAMPLES = [
    ("webhook_intake/v2-order-payment-completed.json", (200, None)),
    ("webhook_intake/v2-subscription-updated.json", (200, None)),
    ("webhook_intake/v2-forged-signature.json", (401, "signature_mismatch")),
]


def _signature(event: dict[str, Any]) -> str:
    return str({k.lower(): v for k, v in event["headers"].items()}["steppay-signature"])


@pytest.mark.parametrize(("sample", "expected"), V2_SAMPLES)
def test_v2_samples_are_signed_with_the_local_key_at_their_own_time(
    shop: Shop, sample: str, expected: tuple[int, str | None]
) -> None:
    event = _load(sample)
    body, header = event["body"].encode(), _signature(event)
    keys = parse_webhook_keys(shop.stack.config.webhook_keys)
    at = parse_signature_header(header).timestamp
    assert json.loads(body)["timestamp"] == at
    if expected[0] == 200:
        assert verify_signature(body, header, keys, now=at) == at
    else:
        with pytest.raises(SignatureMismatch):
            verify_signature(body, header, keys, now=at)
    with pytest.raises(SignatureStale):  # and outside the tolerance, whatever the key
        verify_signature(body, header, keys, now=at + DEFAULT_TOLERANCE_SECONDS + 1)


@pytest.mark.parametrize(("sample", "expected"), V2_SAMPLES)
def test_v2_samples_signed_now_through_the_intake(
    shop: Shop, sample: str, expected: tuple[int, str | None]
) -> None:
    event = _load(sample)
    now = int(time.time())
    parsed = parse_signature_header(_signature(event))
    if expected[0] == 200:
        key = parse_webhook_keys(shop.stack.config.webhook_keys)[0].get_secret_value()
        header = sign(event["body"].encode(), key, now)
    else:  # the forged value, sent with a fresh timestamp so that only the key is wrong
        header = f"timestamp={now},key={base64.b64encode(parsed.signatures[0]).decode()}"
    event["headers"] = {k: v for k, v in event["headers"].items() if k.lower() != "steppay-signature"}
    event["headers"]["steppay-signature"] = header
    assert _status(shop.stack.invoke("WebhookIntakeFunction", event)) == expected


def test_queue_stream_schedule_and_bus_samples_through_their_handlers(shop: Shop) -> None:
    # A queued webhook that is not in the store is dropped as rejected, not retried forever.
    assert shop.stack.invoke(
        "WebhookProcessorFunction", _load("webhook_processor/sqs-webhook-batch.json")
    ) == {"batchItemFailures": []}
    assert shop.stack.invoke("PublisherFunction", _load("publisher/stream-payment-verified.json")) == {
        "batchItemFailures": []
    }
    report = shop.stack.invoke("ReconciliationFunction", _load("reconciliation/scheduled.json"))
    assert {"orders_seen", "paid_seen", "fixed", "failed"} <= set(report)
    assert report["failed"] == 0
    first = shop.stack.invoke(
        "EntitlementSubscriberFunction", _load("entitlements/renewal-payment-verified.json")
    )
    again = shop.stack.invoke(
        "EntitlementSubscriberFunction", _load("entitlements/renewal-payment-verified.json")
    )
    assert first == again  # idempotent on eventId: the second delivery returns the first result
    status = shop.stack.invoke(
        "EntitlementSubscriberFunction", _load("entitlements/subscription-status-changed.json")
    )
    assert status["eventId"] == "8d0b1a65-3f6e-5c2a-b7d9-0e4f1a2b3c4d"
