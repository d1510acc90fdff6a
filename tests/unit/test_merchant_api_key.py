"""The api-key variant of the checkout routes (MerchantApiKeyAuth=enabled): the bearer key is
checked before any routing, validation or I/O, in constant time, against one or two keys.

Runs the real handler in process with no AWS and no StepPay: every request here either is refused
by the key check or gets past it to the body's validation (400), which needs no I/O.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from steppay import settings

KEY, NEXT_KEY = "mk_live_current_0123456789", "mk_live_next_9876543210"


class _Context:
    function_name = "CheckoutApiKeyFunction"
    memory_limit_in_mb = 1024
    invoked_function_arn = "arn:aws:lambda:ap-northeast-2:123456789012:function:CheckoutApiKeyFunction"
    aws_request_id = "req-1"

    @staticmethod
    def get_remaining_time_in_millis() -> int:
        return 25_000


def _event(headers: dict[str, str]) -> dict[str, Any]:
    return {
        "version": "2.0",
        "routeKey": "POST /checkouts",
        "rawPath": "/checkouts",
        "rawQueryString": "",
        "headers": {"content-type": "application/json", **headers},
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "key123",
            "http": {
                "method": "POST",
                "path": "/checkouts",
                "protocol": "HTTP/1.1",
                "sourceIp": "203.0.113.7",
            },
            "requestId": "r1",
            "routeKey": "POST /checkouts",
            "stage": "$default",
        },
        "body": json.dumps({"merchantRef": "cart-1"}),  # incomplete: 400 once past the key check
        "isBase64Encoded": False,
    }


@pytest.fixture
def handler(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    monkeypatch.setenv("MERCHANT_AUTH", "api-key")
    monkeypatch.setenv("MERCHANT_API_KEYS_PARAM", "")
    monkeypatch.setenv("MERCHANT_API_KEYS", f"{KEY},{NEXT_KEY}")
    monkeypatch.setenv("POWERTOOLS_TRACE_DISABLED", "true")
    monkeypatch.setenv("POWERTOOLS_METRICS_NAMESPACE", "StepPay")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "ap-northeast-2")
    settings.get_settings.cache_clear()
    import checkouts

    yield checkouts.lambda_handler
    settings.get_settings.cache_clear()


def _call(handler: Any, headers: dict[str, str]) -> tuple[int, dict[str, Any], dict[str, str]]:
    answer = handler(_event(headers), _Context())
    return answer["statusCode"], json.loads(answer["body"]), answer.get("headers", {})


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"authorization": "Bearer "},
        {"authorization": "Bearer wrong-key"},
        {"authorization": f"Basic {KEY}"},
        {"authorization": KEY},
        {"authorization": f"Bearer {KEY}x"},
        {"authorization": f"Bearer {KEY[:-1]}"},
    ],
)
def test_a_request_without_a_valid_key_is_refused_before_anything_runs(
    handler: Any, headers: dict[str, str]
) -> None:
    status, body, answer_headers = _call(handler, headers)
    assert status == 401
    assert body == {"error": {"code": "unauthorized", "message": body["error"]["message"]}}
    assert answer_headers["WWW-Authenticate"].startswith("Bearer")
    assert KEY not in json.dumps(body) and NEXT_KEY not in json.dumps(body)


@pytest.mark.parametrize("key", [KEY, NEXT_KEY])
def test_either_key_of_a_rotation_gets_past_the_check(handler: Any, key: str) -> None:
    status, body, _ = _call(handler, {"authorization": f"Bearer {key}"})
    assert status == 400, body  # the body's validation: the key check let it through
    assert body["error"]["code"] == "invalid_request"


@pytest.mark.parametrize("blank", ["", ",", " , "])
def test_no_configured_key_refuses_everything(
    handler: Any, monkeypatch: pytest.MonkeyPatch, blank: str
) -> None:
    monkeypatch.setenv("MERCHANT_API_KEYS", blank)
    settings.get_settings.cache_clear()
    status, body, _ = _call(handler, {"authorization": "Bearer "})
    assert (status, body["error"]["code"]) == (503, "merchant_auth_unconfigured")
    status, _, _ = _call(handler, {"authorization": f"Bearer {KEY}"})
    assert status == 503


def test_in_aws_iam_mode_the_function_checks_no_key(handler: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    # AWS_IAM: API Gateway refused unsigned requests before the function ran.
    monkeypatch.setenv("MERCHANT_AUTH", "aws-iam")
    settings.get_settings.cache_clear()
    status, body, _ = _call(handler, {})
    assert (status, body["error"]["code"]) == (400, "invalid_request")
