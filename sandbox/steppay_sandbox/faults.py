"""Fault injection: make StepPay slow, failing or unreachable, and its webhooks unreliable.

Inbound faults apply to every request outside ``/_sandbox/`` whose path matches a glob
(``fnmatch``, where ``*`` also crosses ``/``) and, optionally, a method. Each fault is used for
the next ``count`` matching requests, first added first used, then disappears.

Webhook faults apply to the next ``count`` webhook deliveries (one delivery = one event sent
in one version): ``drop`` records the delivery as dropped and never sends it, ``delay`` sends it
after ``delayMs``.
"""

from __future__ import annotations

import fnmatch
import itertools
import threading
from dataclasses import dataclass, replace
from typing import Any

from steppay_sandbox.errors import bad_request

MAX_LATENCY_MS = 120_000
MAX_COUNT = 1_000_000


@dataclass
class InboundFault:
    id: int
    path: str
    method: str | None
    status: int | None
    latency_ms: int
    drop: bool
    remaining: int

    def matches(self, method: str, path: str) -> bool:
        if self.method is not None and self.method != method:
            return False
        return fnmatch.fnmatchcase(path, self.path)

    def describe(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": "inbound",
            "path": self.path,
            "method": self.method,
            "status": self.status,
            "latencyMs": self.latency_ms,
            "drop": self.drop,
            "count": self.remaining,
        }


@dataclass
class WebhookFault:
    id: int
    mode: str  # "drop" or "delay"
    delay_ms: int
    remaining: int

    def describe(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": "webhooks",
            "webhooks": self.mode,
            "delayMs": self.delay_ms,
            "count": self.remaining,
        }


def _int_field(body: dict[str, Any], key: str, default: int, low: int, high: int) -> int:
    value = body.get(key, default)
    if value is None:
        value = default
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise bad_request(f"'{key}' must be an integer between {low} and {high}.", field=key)
    return value


class FaultRegistry:
    """Thread-safe list of pending faults."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._inbound: list[InboundFault] = []
        self._webhooks: list[WebhookFault] = []

    def add(self, body: Any) -> dict[str, Any]:
        """Register the fault described by a control-API body; returns its description."""
        if not isinstance(body, dict):
            raise bad_request("A fault is a JSON object.")
        if "webhooks" in body:
            if "path" in body:
                raise bad_request(
                    "A fault is either inbound ('path') or for webhooks ('webhooks'), not both."
                )
            return self._add_webhook(body)
        if "path" in body:
            return self._add_inbound(body)
        raise bad_request("A fault needs 'path' (inbound API calls) or 'webhooks' ('drop' or 'delay').")

    def _add_inbound(self, body: dict[str, Any]) -> dict[str, Any]:
        path = body.get("path")
        if not isinstance(path, str) or not path.startswith(("/", "*")) or len(path) > 500:
            raise bad_request("'path' must be a glob starting with '/' (or '*').", field="path")
        method = body.get("method")
        if method is not None and (not isinstance(method, str) or not method.isalpha()):
            raise bad_request("'method' must be an HTTP method.", field="method")
        status = body.get("status")
        if status is not None and (
            not isinstance(status, int) or isinstance(status, bool) or not 200 <= status <= 599
        ):
            raise bad_request("'status' must be an HTTP status code (200-599).", field="status")
        latency = _int_field(body, "latencyMs", 0, 0, MAX_LATENCY_MS)
        drop = body.get("drop", False)
        if not isinstance(drop, bool):
            raise bad_request("'drop' must be true or false.", field="drop")
        if status is None and latency == 0 and not drop:
            raise bad_request("An inbound fault needs 'status', 'latencyMs' or 'drop'.")
        count = _int_field(body, "count", 1, 1, MAX_COUNT)
        with self._lock:
            fault = InboundFault(
                next(self._ids), path, method.upper() if method else None, status, latency, drop, count
            )
            self._inbound.append(fault)
            return fault.describe()

    def _add_webhook(self, body: dict[str, Any]) -> dict[str, Any]:
        mode = body.get("webhooks")
        if mode not in ("drop", "delay"):
            raise bad_request("'webhooks' must be 'drop' or 'delay'.", field="webhooks")
        delay = _int_field(body, "delayMs", 0, 0, MAX_LATENCY_MS)
        if mode == "delay" and delay == 0:
            raise bad_request("A 'delay' webhook fault needs 'delayMs' > 0.", field="delayMs")
        count = _int_field(body, "count", 1, 1, MAX_COUNT)
        with self._lock:
            fault = WebhookFault(next(self._ids), str(mode), delay, count)
            self._webhooks.append(fault)
            return fault.describe()

    def take_inbound(self, method: str, path: str) -> InboundFault | None:
        """Use up one application of the first fault matching this request, if any."""
        with self._lock:
            for fault in self._inbound:
                if fault.matches(method, path):
                    fault.remaining -= 1
                    if fault.remaining <= 0:
                        self._inbound.remove(fault)
                    return replace(fault)
        return None

    def take_webhook(self) -> WebhookFault | None:
        with self._lock:
            if not self._webhooks:
                return None
            fault = self._webhooks[0]
            fault.remaining -= 1
            if fault.remaining <= 0:
                self._webhooks.pop(0)
            return replace(fault)

    def clear(self) -> None:
        with self._lock:
            self._inbound.clear()
            self._webhooks.clear()

    def describe(self) -> list[dict[str, Any]]:
        with self._lock:
            return [f.describe() for f in self._inbound] + [f.describe() for f in self._webhooks]


__all__ = ["FaultRegistry", "InboundFault", "WebhookFault"]
