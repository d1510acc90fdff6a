"""Webhook delivery, as StepPay sends them.

v2: ``POST`` with ``Content-Type: application/json``, body
``{"timestamp": <epoch s>, "version": "v1", "event": "...", "data": {...}}`` serialised once
(compact, non-ASCII kept, UTF-8) and header
``Steppay-Signature: timestamp=<ts>,key=<base64(HMAC-SHA256(key, f"{ts}.{raw_body}"))>``.
v1 (deprecated): ``{"webHookType": "PAYMENT", "orderId": n}`` and ``{"id": n, "status": "..."}``,
unsigned.

Deliveries run in a background worker: the API call that caused an event never waits. StepPay
documents no automatic retry of a failed delivery (its portal shows the delivery history and a
person may resend one), so by default each delivery is tried once; ``retry_delays`` turns retries
on (``1 + len(retry_delays)`` attempts on a non-2xx answer or a connection error). ``resend``
sends a logged delivery's original request again: same body, same ``Steppay-Signature`` (same
timestamp). Every attempt goes into the delivery log. The URL, key and versions in force when
the event happens are the ones used for all of its attempts.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import heapq
import hmac
import http.client
import itertools
import json
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from steppay_sandbox.faults import FaultRegistry

SIGNATURE_HEADER = "Steppay-Signature"
USER_AGENT = "StepPay-Sandbox-Webhook/1.0"
ENVELOPE_VERSION = "v1"  # the schema version StepPay puts in v2 envelopes
LOG_LIMIT = 10_000


@dataclass(frozen=True)
class Outgoing:
    """An event to announce: a v2 ``event`` with its ``data``, or a v1 body."""

    event: str  # v2 event type, or "v1.order.PAYMENT" / "v1.subscription"
    version: str  # "v2" or "v1"
    payload: dict[str, Any]  # v2: the data object; v1: the whole body
    refs: dict[str, Any] = field(default_factory=dict)  # orderId / orderCode / subscriptionId


def sign(raw_body: bytes, key: str, timestamp: int) -> str:
    """The ``Steppay-Signature`` header value for ``raw_body``."""
    digest = hmac.new(key.encode("utf-8"), f"{timestamp}.".encode() + raw_body, hashlib.sha256).digest()
    return f"timestamp={timestamp},key={base64.b64encode(digest).decode('ascii')}"


def serialise(body: dict[str, Any]) -> bytes:
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


@dataclass
class Delivery:
    id: int
    event: str
    version: str
    url: str | None
    body: bytes
    headers: dict[str, str]
    refs: dict[str, Any]
    max_attempts: int
    retry_delays: tuple[float, ...]
    attempt: int = 0
    delayed_ms: int = 0
    resend: bool = False  # a person's resend of a logged delivery (portal-style), not a retry


class UnknownDelivery(LookupError):
    """No delivery with that id is (still) in the log."""


@dataclass
class WebhookSettings:
    url: str | None = None
    key: str = "sandbox-webhook-key"
    versions: tuple[str, ...] = ("v2",)
    retry_delays: tuple[float, ...] = ()  # no automatic retry (none is documented by StepPay)
    timeout: float = 5.0

    def describe(self) -> dict[str, Any]:
        return {
            "webhookUrl": self.url,
            "webhookVersions": list(self.versions),
            "webhookKeySet": bool(self.key),
            "webhookRetryDelaysMs": [int(d * 1000) for d in self.retry_delays],
            "webhookTimeoutMs": int(self.timeout * 1000),
        }


def validate_url(url: Any) -> str | None:
    if url is None or url == "":
        return None
    if not isinstance(url, str) or len(url) > 2000:
        raise ValueError("webhook URL must be a string")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("webhook URL must be an absolute http(s) URL")
    return url


def validate_versions(versions: Iterable[Any]) -> tuple[str, ...]:
    values = tuple(versions)
    if not values or any(v not in ("v1", "v2") for v in values):
        raise ValueError("webhook versions are 'v1' and/or 'v2'")
    return tuple(dict.fromkeys(values))


class WebhookDispatcher:
    """Queues, signs, sends and logs webhooks in background threads."""

    def __init__(self, settings: WebhookSettings, faults: FaultRegistry, *, workers: int = 8) -> None:
        self.settings = settings
        self.faults = faults
        self._cond = threading.Condition()
        self._heap: list[tuple[float, int, Delivery]] = []
        self._seq = itertools.count(1)
        self._delivery_ids = itertools.count(1)
        self._log_ids = itertools.count(1)
        self._log: deque[dict[str, Any]] = deque(maxlen=LOG_LIMIT)
        self._deliveries: OrderedDict[int, Delivery] = OrderedDict()  # for resend, newest last
        self._inflight = 0
        self._stopping = False
        self._workers = workers
        self._executor: ThreadPoolExecutor | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        with self._cond:
            if self._thread is not None:
                return
            self._stopping = False
            self._executor = ThreadPoolExecutor(self._workers, thread_name_prefix="sandbox-webhook")
            self._thread = threading.Thread(target=self._run, name="sandbox-webhook-scheduler", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
            thread, executor = self._thread, self._executor
            self._thread = self._executor = None
        if thread is not None:
            thread.join(timeout=5)
        if executor is not None:
            executor.shutdown(wait=False, cancel_futures=True)

    # -- configuration ---------------------------------------------------------------------

    def configure(
        self,
        *,
        url: Any = ...,
        key: Any = ...,
        versions: Any = ...,
        retry_delays: Any = ...,
        timeout: Any = ...,
    ) -> None:
        """Change settings for events that happen from now on (``...`` leaves a setting alone)."""
        with self._cond:
            if url is not ...:
                self.settings.url = validate_url(url)
            if key is not ...:
                if not isinstance(key, str) or not key:
                    raise ValueError("webhook key must be a non-empty string")
                self.settings.key = key
            if versions is not ...:
                self.settings.versions = validate_versions(versions)
            if retry_delays is not ...:
                delays = tuple(float(d) for d in retry_delays)
                if len(delays) > 10 or any(not 0 <= d <= 600 for d in delays):
                    raise ValueError("retry delays are 0-600 s, at most 10 of them")
                self.settings.retry_delays = delays
            if timeout is not ...:
                value = float(timeout)
                if not 0 < value <= 120:
                    raise ValueError("timeout must be between 0 and 120 s")
                self.settings.timeout = value

    # -- emitting --------------------------------------------------------------------------

    def emit(self, events: Sequence[Outgoing]) -> None:
        """Queue the deliveries for ``events`` (returns at once)."""
        for outgoing in events:
            with self._cond:
                settings = self.settings
                if outgoing.version not in settings.versions:
                    continue
                url, key = settings.url, settings.key
                delays = settings.retry_delays
            delivery = self._build(outgoing, url, key, delays)
            if url is None:
                self._record(delivery, outcome="undelivered", error="no webhook URL configured")
                continue
            fault = self.faults.take_webhook()
            due = time.monotonic()
            if fault is not None and fault.mode == "drop":
                delivery.attempt = 1
                self._record(delivery, outcome="dropped", error="dropped by a webhook fault")
                continue
            if fault is not None and fault.mode == "delay":
                delivery.delayed_ms = fault.delay_ms
                due += fault.delay_ms / 1000
            self._schedule(delivery, due)

    def _build(self, outgoing: Outgoing, url: str | None, key: str, delays: tuple[float, ...]) -> Delivery:
        headers = {"Content-Type": "application/json", "User-Agent": USER_AGENT}
        if outgoing.version == "v2":
            timestamp = int(time.time())
            body = serialise(
                {
                    "timestamp": timestamp,
                    "version": ENVELOPE_VERSION,
                    "event": outgoing.event,
                    "data": outgoing.payload,
                }
            )
            headers[SIGNATURE_HEADER] = sign(body, key, timestamp)
        else:
            body = serialise(outgoing.payload)
        delivery = Delivery(
            id=next(self._delivery_ids),
            event=outgoing.event,
            version=outgoing.version,
            url=url,
            body=body,
            headers=headers,
            refs=dict(outgoing.refs),
            max_attempts=1 + len(delays),
            retry_delays=delays,
        )
        with self._cond:
            self._deliveries[delivery.id] = delivery
            while len(self._deliveries) > LOG_LIMIT:
                self._deliveries.popitem(last=False)
        return delivery

    def resend(self, delivery_id: int) -> Delivery:
        """Send a logged delivery's original request again (same body, headers and signature).

        It goes to the delivery's URL, or to the configured one if it had none; one attempt,
        never retried. ``UnknownDelivery`` when the id is not in the log; ``ValueError`` when
        there is no URL to send it to.
        """
        with self._cond:
            original = self._deliveries.get(delivery_id)
            url = original.url if original is not None and original.url else self.settings.url
        if original is None:
            raise UnknownDelivery(delivery_id)
        if url is None:
            raise ValueError("no webhook URL configured")
        attempts = sum(1 for entry in self.log(deliveryId=delivery_id))
        again = dataclasses.replace(
            original,
            url=url,
            headers=dict(original.headers),
            attempt=attempts,
            max_attempts=attempts + 1,
            retry_delays=(),
            delayed_ms=0,
            resend=True,
        )
        self._schedule(again, time.monotonic())
        return again

    def _schedule(self, delivery: Delivery, due: float) -> None:
        with self._cond:
            heapq.heappush(self._heap, (due, next(self._seq), delivery))
            self._cond.notify_all()

    # -- the worker ------------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._stopping:
                    if self._heap and self._heap[0][0] <= time.monotonic():
                        break
                    wait = self._heap[0][0] - time.monotonic() if self._heap else None
                    self._cond.wait(timeout=wait)
                if self._stopping:
                    return
                _, _, delivery = heapq.heappop(self._heap)
                self._inflight += 1
                executor = self._executor
            if executor is None:  # pragma: no cover - stopping
                return
            try:
                executor.submit(self._attempt, delivery)
            except RuntimeError:  # pragma: no cover - executor shut down while stopping
                return

    def _attempt(self, delivery: Delivery) -> None:
        delivery.attempt += 1
        status: int | None = None
        error: str | None = None
        try:
            status = self._post(delivery)
        except (OSError, http.client.HTTPException, ValueError) as exc:
            error = f"{type(exc).__name__}: {exc}"[:300]
        ok = status is not None and 200 <= status < 300
        retry = not ok and delivery.attempt < delivery.max_attempts
        if error is None and not ok:
            error = f"HTTP {status}"
        self._record(
            delivery,
            outcome="delivered" if ok else "failed",
            status=status,
            error=None if ok else error,
            will_retry=retry,
        )
        with self._cond:
            self._inflight -= 1
            if retry:
                due = time.monotonic() + delivery.retry_delays[delivery.attempt - 1]
                heapq.heappush(self._heap, (due, next(self._seq), delivery))
            self._cond.notify_all()

    def _post(self, delivery: Delivery) -> int:
        assert delivery.url is not None
        parts = urlsplit(delivery.url)
        conn_cls = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
        conn = conn_cls(parts.hostname or "", parts.port, timeout=self.settings.timeout)
        target = parts.path or "/"
        if parts.query:
            target += "?" + parts.query
        try:
            conn.request("POST", target, body=delivery.body, headers=delivery.headers)
            response = conn.getresponse()
            response.read(65536)
            return response.status
        finally:
            conn.close()

    # -- the log ---------------------------------------------------------------------------

    def _record(
        self,
        delivery: Delivery,
        *,
        outcome: str,
        status: int | None = None,
        error: str | None = None,
        will_retry: bool = False,
    ) -> None:
        moment = datetime.now(UTC)
        entry = {
            "deliveryId": delivery.id,
            "event": delivery.event,
            "version": delivery.version,
            "url": delivery.url,
            "attempt": delivery.attempt,
            "maxAttempts": delivery.max_attempts,
            "outcome": outcome,
            "statusCode": status,
            "error": error,
            "willRetry": will_retry,
            "resend": delivery.resend,
            "delayedMs": delivery.delayed_ms,
            "timestamp": moment.isoformat(),
            "epoch": moment.timestamp(),
            "orderId": delivery.refs.get("orderId"),
            "orderCode": delivery.refs.get("orderCode"),
            "subscriptionId": delivery.refs.get("subscriptionId"),
            "signature": delivery.headers.get(SIGNATURE_HEADER),
            "body": delivery.body.decode("utf-8"),
        }
        with self._cond:
            entry["id"] = next(self._log_ids)
            self._log.append(entry)

    def log(self, **filters: Any) -> list[dict[str, Any]]:
        """Delivery log entries, oldest first, optionally filtered by exact field values."""
        with self._cond:
            entries = list(self._log)
        wanted = {k: v for k, v in filters.items() if v is not None}
        return [e for e in entries if all(str(e.get(k)) == str(v) for k, v in wanted.items())]

    def clear_log(self) -> None:
        with self._cond:
            self._log.clear()
            self._deliveries.clear()

    def pending(self) -> int:
        with self._cond:
            return len(self._heap) + self._inflight

    def wait_idle(self, timeout: float = 10.0) -> bool:
        """Wait until nothing is queued, delayed or being sent; False on timeout."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._heap or self._inflight:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(timeout=min(left, 0.05))
            return True
