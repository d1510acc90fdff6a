"""Fails in every way a function can fail."""

from __future__ import annotations

import os
import time
from typing import Any


def handler(event: dict[str, Any], context: Any) -> Any:
    route = event.get("routeKey")
    if route == "POST /crash":
        raise ValueError("boom: internal detail that must not reach the client")
    if route == "GET /sleep":
        time.sleep(30)
    if route == "GET /exit":
        os._exit(3)
    if route == "GET /bad-response":
        return {"statusCode": "not-a-number"}
    return {"pid": os.getpid()}
