"""EventBridge subscriber: records every event; raises when the event's detail says {"fail": true}."""

from __future__ import annotations

from typing import Any

import fixture_helpers


def handler(event: dict[str, Any], context: Any) -> None:
    fixture_helpers.record("subscriber", {"requestId": context.aws_request_id, "event": event})
    if isinstance(event, dict) and (event.get("detail") or {}).get("fail"):
        raise RuntimeError("subscriber told to fail")
