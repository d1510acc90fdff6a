"""Records every invocation (routeKey, marker, authorizer) and returns the event: the authorization tests."""

from __future__ import annotations

import json
from typing import Any

import fixture_helpers  # from the layer


def handler(event: dict[str, Any], context: Any) -> Any:
    query = event.get("queryStringParameters") or {}
    context_ = event.get("requestContext") or {}
    fixture_helpers.record(
        "auth",
        {
            "routeKey": event.get("routeKey"),
            "marker": query.get("marker") or (event.get("headers") or {}).get("x-marker"),
            "authorizer": context_.get("authorizer"),
        },
    )
    return {
        "statusCode": 200,
        "headers": {"content-type": "application/json"},
        "body": json.dumps({"event": event}),
    }
