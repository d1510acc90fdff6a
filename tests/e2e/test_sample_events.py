"""Every function has sample events in events/, and each one runs through its real handler.

The samples are shaped for a deployed stage (https://shop.example.com redirects, StepPay orders
that this local stack never registered), so as shipped they exercise the refusal paths (the v2
webhook samples are signed again now, see below); what matters here is that each is a well-formed
event for its function and that the handler answers it as documented. The checkout and verify
samples are also run with only what a deployment changes replaced (the redirect host, the merchantRef,
the order a checkout of this stack created), to show that they do what they say: register, replay,
read back, verify.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from e2e.conftest import Shop, new_merchant_ref

from steppay.errors import SignatureMismatch, SignatureStale
from steppay.payments import checkout_id_for
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
        detail = event["detail"]
        # Bound at registration: the checkout's id follows from its merchantRef.
        assert detail["checkoutId"] == checkout_id_for(detail["merchantRef"])
        assert detail["customer"]["id"] == detail["customerId"]
        assert [i["priceCode"] for i in detail["items"]] == ["price_monthly_demo"]  # a plan it grants


def test_checkout_samples_are_signed_backend_requests() -> None:
    for sample in sorted((EVENTS / "checkouts").glob("*.json")):
        event = json.loads(sample.read_text())
        iam = event["requestContext"]["authorizer"]["iam"]  # what API Gateway adds for AWS_IAM
        assert iam["accessKey"] and iam["userArn"].startswith("arn:aws:"), sample
        headers = event["headers"]
        assert headers["authorization"].startswith("AWS4-HMAC-SHA256 Credential="), sample
        assert "/execute-api/aws4_request" in headers["authorization"], sample
        assert headers["x-amz-date"], sample
        if "body" in event:
            assert headers["x-amz-content-sha256"] == hashlib.sha256(event["body"].encode()).hexdigest()
    register, replay = (
        _load("checkouts/register-checkout.json"),
        _load("checkouts/register-checkout-replay.json"),
    )
    # A replay: the same body and Idempotency-Key, another request (signed again).
    assert replay["body"] == register["body"]
    assert replay["headers"]["idempotency-key"] == register["headers"]["idempotency-key"]
    assert replay["requestContext"]["requestId"] != register["requestContext"]["requestId"]
    assert replay["headers"]["authorization"] != register["headers"]["authorization"]
    ref = json.loads(register["body"])["merchantRef"]
    assert _load("checkouts/get-checkout.json")["pathParameters"]["checkoutId"] == checkout_id_for(ref)
    assert _load("checkouts/find-checkout.json")["queryStringParameters"]["merchantRef"] == ref


def test_verify_samples_are_public_requests() -> None:
    for sample in sorted((EVENTS / "verify").glob("*.json")):
        event = json.loads(sample.read_text())
        assert "authorizer" not in event["requestContext"], sample  # Authorizer: NONE
        assert "authorization" not in {k.lower() for k in event["headers"]}, sample


def _status(result: dict[str, Any]) -> tuple[int, str | None]:
    body = result.get("body") or ""
    code = json.loads(body)["error"]["code"] if body.startswith('{"error"') else None
    return int(result["statusCode"]), code


@pytest.mark.parametrize(
    ("function", "sample", "expected"),
    [
        # https://shop.example.com is not a redirect host of the local stack.
        ("CheckoutFunction", "checkouts/register-checkout.json", (400, "redirect_not_allowed")),
        ("CheckoutFunction", "checkouts/register-checkout-replay.json", (400, "redirect_not_allowed")),
        ("CheckoutFunction", "checkouts/redirect-not-allowed.json", (400, "redirect_not_allowed")),
        ("CheckoutFunction", "checkouts/get-checkout.json", (404, "checkout_not_found")),
        ("CheckoutFunction", "checkouts/find-checkout.json", (404, "checkout_not_found")),
        # order_Xb3kR9pQ2mZt was not registered by this stack: not looked up at StepPay.
        ("VerifyFunction", "verify/verify.json", (404, "order_not_found")),
        ("VerifyFunction", "verify/verify-injection.json", (400, "invalid_request")),
        ("VerifyFunction", "verify/verify-numeric-code.json", (400, "invalid_request")),
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


LOCAL_ORIGIN = "http://localhost:8080"


def _localised(event: dict[str, Any], merchant_ref: str) -> dict[str, Any]:
    """The sample as a local deployment sends it: local redirect host, a merchantRef of its own."""
    event = copy.deepcopy(event)
    body = json.loads(event["body"])
    body["merchantRef"] = merchant_ref
    for field in ("successUrl", "errorUrl", "cancelUrl"):
        if field in body:
            body[field] = body[field].replace("https://shop.example.com", LOCAL_ORIGIN)
    event["body"] = json.dumps(body)
    return event


def _invoke_json(shop: Shop, function: str, event: dict[str, Any]) -> tuple[int, Any]:
    result = shop.stack.invoke(function, event)
    return int(result["statusCode"]), json.loads(result["body"]) if result.get("body") else None


def test_checkout_samples_register_replay_and_read_back(shop: Shop) -> None:
    ref = new_merchant_ref()
    key = str(uuid.uuid4())
    register = _localised(_load("checkouts/register-checkout.json"), ref)
    replay = _localised(_load("checkouts/register-checkout-replay.json"), ref)
    for event in (register, replay):
        event["headers"]["idempotency-key"] = key
    status, created = _invoke_json(shop, "CheckoutFunction", register)
    assert status == 201, created
    assert created["checkoutId"] == checkout_id_for(ref)
    assert (created["amount"], created["currency"]) == ("15000", "KRW")  # its expectedAmount holds
    assert created["payUrl"].startswith(shop.stack.sandbox_url)
    before = shop.table_snapshot()
    status, again = _invoke_json(shop, "CheckoutFunction", replay)
    assert (status, again) == (200, created)  # the replay answers the first checkout, creates nothing
    assert shop.table_snapshot() == before
    # The read samples, naming this checkout.
    get = copy.deepcopy(_load("checkouts/get-checkout.json"))
    get["pathParameters"]["checkoutId"] = created["checkoutId"]
    get["rawPath"] = get["requestContext"]["http"]["path"] = f"/checkouts/{created['checkoutId']}"
    find = copy.deepcopy(_load("checkouts/find-checkout.json"))
    find["queryStringParameters"]["merchantRef"] = ref
    find["rawQueryString"] = f"merchantRef={ref}"
    status, view = _invoke_json(shop, "CheckoutFunction", get)
    assert status == 200, view
    assert (view["checkoutId"], view["merchantRef"], view["state"]) == (created["checkoutId"], ref, "PENDING")
    assert _invoke_json(shop, "CheckoutFunction", find) == (200, view)
    # Refused whatever the stage: userinfo makes evil.example the host.
    bad = _localised(_load("checkouts/redirect-not-allowed.json"), new_merchant_ref())
    assert json.loads(bad["body"])["successUrl"].endswith("@evil.example/")
    assert _status(shop.stack.invoke("CheckoutFunction", bad)) == (400, "redirect_not_allowed")


def _for_order(event: dict[str, Any], order_code: str, order_id: int) -> dict[str, Any]:
    event = copy.deepcopy(event)
    if "body" in event:
        body = json.loads(event["body"])
        body["orderCode"], body["orderId"] = order_code, order_id
        event["body"] = json.dumps(body)
    else:
        query = event["queryStringParameters"]
        query["order_code"], query["order_id"] = order_code, str(order_id)
        event["rawQueryString"] = "&".join(f"{k}={v}" for k, v in query.items())
    return event


def test_verify_samples_for_a_registered_paid_order(shop: Shop) -> None:
    link = shop.new_checkout()
    shop.control(f"/orders/{link['orderCode']}/complete", {"outcome": "success"})
    verify = _for_order(_load("verify/verify.json"), link["orderCode"], link["orderId"])
    status, answer = _invoke_json(shop, "VerifyFunction", verify)
    assert status == 200, answer
    # The public answer: the verdict on the order named, nothing more.
    assert set(answer) == {"verified", "verdict", "orderCode", "amount", "currency", "paidAt"}
    assert (answer["verdict"], answer["orderCode"], answer["amount"]) == ("PAID", link["orderCode"], "15000")
    for sample in ("verify/callback-success.json", "verify/callback-error.json"):
        result = shop.stack.invoke(
            "VerifyFunction", _for_order(_load(sample), link["orderCode"], link["orderId"])
        )
        assert result["statusCode"] == 303, result
        assert "result=paid" in result["headers"]["Location"]  # StepPay's answer, whatever the redirect said


def test_queue_stream_schedule_and_bus_samples_through_their_handlers(shop: Shop) -> None:
    # A queued webhook naming an order StepPay does not know is rejected, not retried forever.
    assert shop.stack.invoke(
        "WebhookProcessorFunction", _load("webhook_processor/sqs-webhook-batch.json")
    ) == {"batchItemFailures": []}
    assert shop.stack.invoke("PublisherFunction", _load("publisher/stream-payment-verified.json")) == {
        "batchItemFailures": []
    }
    report = shop.stack.invoke("ReconciliationFunction", _load("reconciliation/scheduled.json"))
    assert {"orders_seen", "paid_seen", "fixed", "unregistered", "failed"} <= set(report)
    assert report["failed"] == 0
    first = shop.stack.invoke(
        "EntitlementSubscriberFunction", _load("entitlements/renewal-payment-verified.json")
    )
    again = shop.stack.invoke(
        "EntitlementSubscriberFunction", _load("entitlements/renewal-payment-verified.json")
    )
    assert first == again  # idempotent on eventId: the second delivery returns the first result
    assert first == {"eventId": "2c1f5c7e-2d55-5b8e-9f0c-6f1d3f2b8a11", "changed": True}
    status = shop.stack.invoke(
        "EntitlementSubscriberFunction", _load("entitlements/subscription-status-changed.json")
    )
    assert status["eventId"] == "8d0b1a65-3f6e-5c2a-b7d9-0e4f1a2b3c4d"


_INTAKE_WITHOUT_KEYS = """
import json, sys

class Context:
    function_name = "WebhookIntakeFunction"
    memory_limit_in_mb = 256
    invoked_function_arn = "arn:aws:lambda:ap-northeast-2:123456789012:function:WebhookIntakeFunction"
    aws_request_id = "req-no-keys"

    @staticmethod
    def get_remaining_time_in_millis():
        return 10_000

import webhook_intake

print("RESULT " + json.dumps(webhook_intake.lambda_handler(json.loads(sys.stdin.read()), Context())))
"""


@pytest.mark.parametrize("configured", ["", " , "])
def test_v2_sample_with_no_usable_key_configured_is_refused_never_accepted(configured: str) -> None:
    """A deployment whose key parameter is blank refuses every signed webhook with 503 (StepPay
    delivers it again once a key is configured): never stored, never accepted unverified."""
    event = _load("webhook_intake/v2-order-payment-completed.json")
    now = int(time.time())
    event["headers"] = {k: v for k, v in event["headers"].items() if k.lower() != "steppay-signature"}
    event["headers"]["steppay-signature"] = sign(event["body"].encode(), "sandbox-webhook-key", now)
    env = {
        "PATH": os.environ.get("PATH", ""),
        "PYTHONPATH": os.pathsep.join(str(ROOT / p) for p in ("layers/steppay", "functions/webhook_intake")),
        "AWS_DEFAULT_REGION": "ap-northeast-2",
        "AWS_ACCESS_KEY_ID": "local",
        "AWS_SECRET_ACCESS_KEY": "local",
        # Nothing answers here: had the intake tried to store or queue it, it would say so.
        "AWS_ENDPOINT_URL": "http://127.0.0.1:9",
        "TABLE_NAME": "unused",
        "WEBHOOK_QUEUE_URL": "http://127.0.0.1:9/123456789012/unused",
        "STEPPAY_WEBHOOK_KEYS_PARAM": "",
        "STEPPAY_WEBHOOK_KEYS": configured,
        "POWERTOOLS_TRACE_DISABLED": "true",
        "POWERTOOLS_METRICS_NAMESPACE": "StepPay",
        "POWERTOOLS_SERVICE_NAME": "webhook-intake-test",
    }
    done = subprocess.run(
        [sys.executable, "-c", _INTAKE_WITHOUT_KEYS],
        input=json.dumps(event),
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    line = next(x for x in done.stdout.splitlines() if x.startswith("RESULT "))
    result = json.loads(line.removeprefix("RESULT "))
    assert _status(result) == (503, "webhook_keys_unconfigured"), result
    # And the deployment logs why, once, at start.
    assert "No webhook verification key configured" in done.stdout + done.stderr
