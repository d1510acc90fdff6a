"""Bodies refused before routing: size, media type, encoding, JSON syntax and depth."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from steppay.http import MAX_BODY_BYTES, precheck_json_body


def _event(body: str | bytes, content_type: str = "application/json", method: str = "POST") -> dict[str, Any]:
    if isinstance(body, bytes):
        payload, encoded = base64.b64encode(body).decode(), True
    else:
        payload, encoded = body, False
    return {
        "requestContext": {"http": {"method": method}},
        "headers": {"content-type": content_type},
        "body": payload,
        "isBase64Encoded": encoded,
    }


def _code(response: dict[str, Any] | None) -> tuple[int, str] | None:
    if response is None:
        return None
    return response["statusCode"], json.loads(response["body"])["error"]["code"]


@pytest.mark.parametrize(
    ("event", "expected"),
    [
        (_event('{"orderCode": "order_1"}'), None),
        (_event('{"orderCode": "order_1"}', "application/json; charset=utf-8"), None),
        (_event("{}", method="GET"), None),
        (_event('{"orderCode": '), (400, "malformed_json")),
        (_event("not json"), (400, "malformed_json")),
        (_event("[1, 2]"), (400, "invalid_request")),
        (_event('"text"'), (400, "invalid_request")),
        (_event(b'{"orderCode": "\xff\xfe"}'), (400, "malformed_json")),
        (_event('{"orderCode": "x"}', "text/plain"), (415, "unsupported_media_type")),
        (_event('{"orderCode": "x"}', "application/x-www-form-urlencoded"), (415, "unsupported_media_type")),
        (_event('{"a": "' + "x" * MAX_BODY_BYTES + '"}'), (413, "payload_too_large")),
        (_event('{"a": ' * 50 + "1" + "}" * 50), (400, "invalid_request")),
        (_event("[" * 100_000 + "]" * 100_000), (413, "payload_too_large")),
        (_event('{"a": ' + "[" * 5000 + "]" * 5000 + "}"), (400, "invalid_request")),
        (_event('{"orderId": ' + "9" * 5000 + "}"), (400, "malformed_json")),
    ],
)
def test_precheck(event: dict[str, Any], expected: tuple[int, str] | None) -> None:
    assert _code(precheck_json_body(event)) == expected


def test_precheck_missing_content_type_is_refused() -> None:
    event = _event('{"orderCode": "x"}')
    event["headers"] = {}
    assert _code(precheck_json_body(event)) == (415, "unsupported_media_type")


def test_precheck_bad_base64_is_refused() -> None:
    event = _event("{}")
    event["isBase64Encoded"] = True
    event["body"] = "%%%not-base64%%%"
    assert _code(precheck_json_body(event)) == (400, "malformed_body")
