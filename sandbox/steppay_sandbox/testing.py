"""Test helpers for a merchant's own test suite (standard library only, no pytest here).

* ``SandboxControl``: a small ``urllib`` client for the sandbox's control API (``/_sandbox/...``)
  and, for test set-up, StepPay's API with the ``Secret-Token``.
* ``WebhookReceiver``: a local HTTP endpoint (``http.server`` in a thread) to point the sandbox's
  webhooks at; it checks every v2 ``Steppay-Signature`` as a merchant must and sorts what it gets
  into ``received`` (verified), ``rejected`` (answered 401) and ``unsigned`` (StepPay's v1 bodies).
* ``verify_signature``: the check itself, for a merchant's own handler tests.

The pytest plugin (``steppay_sandbox.pytest_plugin``) hands these out as fixtures; they work as
well from ``unittest`` or a script.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

from steppay_sandbox.webhooks import SIGNATURE_HEADER

DEFAULT_TOLERANCE = 300.0  # seconds a signed timestamp may be away from the receiver's clock


# -- the control API -------------------------------------------------------------------------


class SandboxError(Exception):
    """A non-2xx answer from the sandbox: ``status`` and the parsed ``body`` (StepPay's error body)."""

    def __init__(self, method: str, path: str, status: int, body: Any) -> None:
        self.method = method
        self.path = path
        self.status = status
        self.body = body
        code = body.get("errorCode") if isinstance(body, dict) else None
        super().__init__(f"{method} {path} answered {status}" + (f" {code}" if code else "") + f": {body!r}")

    @property
    def error_code(self) -> str | None:
        code = self.body.get("errorCode") if isinstance(self.body, dict) else None
        return code if isinstance(code, str) else None


def _segment(value: str | int) -> str:
    return quote(str(value), safe="")


class SandboxControl:
    """Drives a running sandbox over HTTP: ``/_sandbox/...`` (no token) and StepPay's API.

    Every method returns the parsed JSON answer and raises ``SandboxError`` on a non-2xx one
    (``request()`` and ``api()`` return ``(status, body)`` instead, for asserting on errors).
    """

    def __init__(self, url: str, secret_token: str | None = None, *, timeout: float = 10.0) -> None:
        if urlsplit(url).scheme not in ("http", "https"):
            raise ValueError("the sandbox URL must be an http(s) URL")
        self.url = url.rstrip("/")
        self.secret_token = secret_token
        self.timeout = timeout

    # -- plumbing --------------------------------------------------------------------------

    def request(
        self, method: str, path: str, body: Any = None, *, headers: Mapping[str, str] | None = None
    ) -> tuple[int, Any]:
        """One call to ``<url><path>``: (status, parsed JSON body, or the text when not JSON)."""
        data = None if body is None else json.dumps(body).encode("utf-8")
        sent = {"Content-Type": "application/json", "Accept": "application/json", **(headers or {})}
        request = urllib.request.Request(  # noqa: S310 - the scheme is checked in __init__
            self.url + path, data=data, method=method, headers=sent
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:  # noqa: S310
                return int(response.status), _parse(response.read())
        except urllib.error.HTTPError as exc:
            with exc:
                return exc.code, _parse(exc.read())

    def _ok(self, method: str, path: str, body: Any = None) -> Any:
        status, payload = self.request(method, path, body)
        if not 200 <= status < 300:
            raise SandboxError(method, path, status, payload)
        return payload

    def api(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        """StepPay's API (``/api/v1/...``) with the ``Secret-Token``: (status, body)."""
        if self.secret_token is None:
            raise ValueError("SandboxControl(secret_token=...) is needed for StepPay's API")
        return self.request(method, path, body, headers={"Secret-Token": self.secret_token})

    # -- orders and subscriptions ----------------------------------------------------------

    def complete(
        self,
        order_code: str,
        outcome: str = "success",
        *,
        quantity: int | Mapping[str, int] | None = None,
        error_code: str | None = None,
        error_message: str | None = None,
    ) -> dict[str, Any]:
        """Pay (``"success"``) or fail (``"failure"``) an order as the pay page would.

        ``"standby"`` issues a virtual account instead (paid later by ``deposit``).

        ``quantity``: the shopper's choice, one number for every item or ``{priceCode: n}``.
        Returns the order detail (StepPay's ``OrderV1DTO``).
        """
        body: dict[str, Any] = {"outcome": outcome}
        if quantity is not None:
            body["quantity"] = quantity if isinstance(quantity, int) else dict(quantity)
        if error_code is not None:
            body["errorCode"] = error_code
        if error_message is not None:
            body["errorMessage"] = error_message
        return dict(self._ok("POST", f"/_sandbox/orders/{_segment(order_code)}/complete", body))

    def refund(self, order_code: str, amount: int | None = None) -> dict[str, Any]:
        """Refund a paid order, fully by default."""
        body = {} if amount is None else {"amount": amount}
        return dict(self._ok("POST", f"/_sandbox/orders/{_segment(order_code)}/refund", body))

    def deposit(self, order_code: str) -> dict[str, Any]:
        """The shopper deposits into the order's virtual account: the order is paid."""
        return dict(self._ok("POST", f"/_sandbox/orders/{_segment(order_code)}/deposit", {}))

    def resend_webhook(self, delivery_id: int) -> dict[str, Any]:
        """Send a logged delivery's original request (same body and signature) once more."""
        return dict(self._ok("POST", f"/_sandbox/webhooks/{_segment(delivery_id)}/resend", {}))

    def tamper(self, order_code: str, changes: Mapping[str, Any]) -> dict[str, Any]:
        """Test only, not something StepPay does: change an unpaid order (see the README)."""
        return dict(self._ok("POST", f"/_sandbox/orders/{_segment(order_code)}/tamper", dict(changes)))

    def renew(self, subscription_id: int | str, outcome: str = "success") -> dict[str, Any]:
        """Charge (or fail) a subscription's renewal; returns the new ``RECURRING`` order."""
        path = f"/_sandbox/subscriptions/{_segment(subscription_id)}/renew"
        return dict(self._ok("POST", path, {"outcome": outcome}))

    def set_subscription_status(self, subscription_id: int | str, status: str) -> dict[str, Any]:
        """Any status of StepPay's enum (``ACTIVE``, ``UNPAID``, ``CANCELED``, ...)."""
        path = f"/_sandbox/subscriptions/{_segment(subscription_id)}/status"
        return dict(self._ok("POST", path, {"status": status}))

    # -- faults ----------------------------------------------------------------------------

    def add_fault(self, **fault: Any) -> dict[str, Any]:
        """``add_fault(path="/api/v1/orders/*", status=503, count=1)``, ``latencyMs=``, ``drop=True``,
        or ``add_fault(webhooks="drop"|"delay", delayMs=..., count=...)``; returns the fault."""
        return dict(self._ok("POST", "/_sandbox/faults", fault)["fault"])

    def faults(self) -> list[dict[str, Any]]:
        return list(self._ok("GET", "/_sandbox/faults")["faults"])

    def clear_faults(self) -> None:
        self._ok("DELETE", "/_sandbox/faults")

    # -- webhooks and settings -------------------------------------------------------------

    def webhooks(self, **filters: Any) -> list[dict[str, Any]]:
        """The delivery log, oldest first; filters: ``event``, ``orderCode``, ``orderId``,
        ``subscriptionId``, ``outcome``, ``version``."""
        query = {k: str(v) for k, v in filters.items() if v is not None}
        path = "/_sandbox/webhooks" + (f"?{urlencode(query)}" if query else "")
        return list(self._ok("GET", path)["deliveries"])

    def clear_webhooks(self) -> None:
        self._ok("DELETE", "/_sandbox/webhooks")

    def config(self) -> dict[str, Any]:
        """The webhook settings (the key is never echoed, only ``webhookKeySet``)."""
        return dict(self._ok("GET", "/_sandbox/config"))

    def configure(self, **settings: Any) -> dict[str, Any]:
        """``configure(webhookUrl=..., webhookKey=..., webhookVersions=["v2", "v1"],
        webhookRetryDelaysMs=[...], webhookTimeoutMs=...)``."""
        return dict(self._ok("POST", "/_sandbox/config", settings))

    # -- the whole sandbox -----------------------------------------------------------------

    def state(self) -> dict[str, Any]:
        return dict(self._ok("GET", "/_sandbox/state"))

    def reset(self) -> None:
        """Forget orders, subscriptions, faults and the delivery log (ids keep increasing)."""
        self._ok("POST", "/_sandbox/reset", {})

    def advance_clock(self, seconds: int) -> dict[str, Any]:
        """Move the sandbox's now forward (test only); `reset()` moves it back to real time."""
        return dict(self._ok("POST", "/_sandbox/clock", {"advanceSeconds": seconds}))

    def clock(self) -> dict[str, Any]:
        return dict(self._ok("GET", "/_sandbox/clock"))

    def health(self) -> bool:
        try:
            status, body = self.request("GET", "/_sandbox/health")
        except OSError:
            return False
        return status == 200 and isinstance(body, dict) and body.get("status") == "ok"


def _parse(raw: bytes) -> Any:
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return raw.decode("utf-8", "replace")


# -- webhook signatures ----------------------------------------------------------------------


def verify_signature(
    raw_body: bytes,
    header: str | None,
    key: str,
    *,
    tolerance: float | None = DEFAULT_TOLERANCE,
    now: float | None = None,
) -> str | None:
    """Check a v2 ``Steppay-Signature: timestamp=<ts>,key=<base64 HMAC-SHA256>`` header.

    The HMAC is over ``b"<ts>." + raw_body`` with ``key``. Returns None when it is valid, else
    why not: ``missing``, ``malformed``, ``mismatch`` or ``stale`` (``tolerance`` seconds from
    ``now``; ``tolerance=None`` skips the age check).
    """
    if not header:
        return "missing"
    parts: dict[str, str] = {}
    for piece in header.split(","):
        name, sep, value = piece.strip().partition("=")
        if sep:
            parts[name.strip()] = value.strip()
    timestamp, signature = parts.get("timestamp", ""), parts.get("key", "")
    if not (timestamp.isascii() and timestamp.isdigit()) or not signature:
        return "malformed"
    try:
        given = base64.b64decode(signature, validate=True)
    except (binascii.Error, ValueError):
        return "malformed"
    expected = hmac.new(key.encode("utf-8"), f"{timestamp}.".encode() + raw_body, hashlib.sha256).digest()
    if not hmac.compare_digest(given, expected):
        return "mismatch"
    if tolerance is not None and abs((time.time() if now is None else now) - int(timestamp)) > tolerance:
        return "stale"
    return None


# -- the webhook receiver --------------------------------------------------------------------


@dataclass(frozen=True)
class WebhookDelivery:
    """One POST the receiver got. ``reason`` is None for a verified (or unsigned v1) one."""

    path: str
    headers: dict[str, str]  # lower-case names
    body: bytes
    payload: Any  # the parsed JSON body, None when it is not JSON
    received_at: float  # time.time()
    reason: str | None = None

    @property
    def event(self) -> str | None:
        """The v2 event (``order.payment_completed``, ``payment.completed``, ...)."""
        event = self.payload.get("event") if isinstance(self.payload, dict) else None
        return event if isinstance(event, str) else None

    @property
    def data(self) -> dict[str, Any]:
        """The v2 ``data`` object (order, payment or subscription); the whole v1 body."""
        if not isinstance(self.payload, dict):
            return {}
        data = self.payload.get("data") if "event" in self.payload else self.payload
        return dict(data) if isinstance(data, dict) else {}

    @property
    def signature(self) -> str | None:
        return self.headers.get(SIGNATURE_HEADER.lower())

    def json(self) -> Any:
        return json.loads(self.body)


Predicate = Callable[[WebhookDelivery], bool]


def _is_v1(payload: Any) -> bool:
    return (
        isinstance(payload, dict)
        and "event" not in payload
        and ("webHookType" in payload or "status" in payload)
    )


@dataclass
class WebhookReceiver:
    """A merchant's webhook endpoint in miniature, on 127.0.0.1 and a free port.

    Each POST is checked with ``key`` (reassign it after rotating the sandbox's key) and
    answered at once: a verified v2 delivery goes to ``received`` and is answered ``status``
    (200; set 500 to make the sandbox retry); an unsigned v1 body (StepPay's deprecated,
    unsigned format) goes to ``unsigned`` (200); anything else to ``rejected`` (401) with its
    ``reason`` (``missing``, ``malformed``, ``mismatch``, ``stale``, ``not-json``).
    """

    key: str
    path: str = "/webhooks/steppay"
    status: int = 200
    tolerance: float | None = DEFAULT_TOLERANCE
    received: list[WebhookDelivery] = field(default_factory=list)
    rejected: list[WebhookDelivery] = field(default_factory=list)
    unsigned: list[WebhookDelivery] = field(default_factory=list)
    _cond: threading.Condition = field(default_factory=threading.Condition, repr=False)
    _server: ThreadingHTTPServer | None = field(default=None, repr=False)
    _thread: threading.Thread | None = field(default=None, repr=False)

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> WebhookReceiver:
        if self._server is not None:
            return self
        server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        server.daemon_threads = True
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="steppay-webhook-receiver",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> WebhookReceiver:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>/webhooks/steppay``: what the sandbox is pointed at."""
        if self._server is None:
            raise RuntimeError("the receiver is not started")
        return f"http://127.0.0.1:{self._server.server_address[1]}{self.path}"

    # -- what arrived ----------------------------------------------------------------------

    def _take(self, raw: bytes, path: str, headers: dict[str, str]) -> int:
        try:
            payload: Any = json.loads(raw)
        except ValueError:
            payload = None
        signature = headers.get(SIGNATURE_HEADER.lower())
        if payload is None:
            reason: str | None = "not-json"
        elif signature is None and _is_v1(payload):
            reason = None
        else:
            reason = verify_signature(raw, signature, self.key, tolerance=self.tolerance)
        delivery = WebhookDelivery(path, headers, raw, payload, time.time(), reason)
        with self._cond:
            if reason is not None:
                self.rejected.append(delivery)
                answer = 401
            elif signature is None:
                self.unsigned.append(delivery)
                answer = 200
            else:
                self.received.append(delivery)
                answer = self.status
            self._cond.notify_all()
        return answer

    def events(self) -> list[str]:
        """The events of the verified deliveries, in arrival order."""
        with self._cond:
            return [d.event or "" for d in self.received]

    def clear(self) -> None:
        with self._cond:
            self.received.clear()
            self.rejected.clear()
            self.unsigned.clear()

    def _wait(
        self, source: list[WebhookDelivery], count: int, timeout: float, predicate: Predicate, what: str
    ) -> list[WebhookDelivery]:
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                found = [d for d in source if predicate(d)]
                left = deadline - time.monotonic()
                if len(found) >= count or left <= 0:
                    break
                self._cond.wait(timeout=left)
            if len(found) < count:
                seen = [d.event or d.reason for d in source]
                raise TimeoutError(
                    f"waited {timeout:g} s for {count} {what}, got {len(found)} "
                    f"(all {len(source)}: {seen}; rejected: {[d.reason for d in self.rejected]})"
                )
            return found

    def wait_for(
        self,
        count: int = 1,
        timeout: float = 10.0,
        *,
        event: str | None = None,
        where: Predicate | None = None,
        **data: Any,
    ) -> list[WebhookDelivery]:
        """Wait until ``count`` verified deliveries match; returns all those that do.

        ``event`` picks one event type, ``data`` fields of its ``data`` object (``orderCode=...``),
        ``where`` any predicate. Raises ``TimeoutError`` (naming what did arrive) after ``timeout``.
        """

        def matches(delivery: WebhookDelivery) -> bool:
            if event is not None and delivery.event != event:
                return False
            payload = delivery.data
            if any(payload.get(k) != v for k, v in data.items()):
                return False
            return where is None or where(delivery)

        label = f"verified {event or 'webhook'}(s)" + (f" with {data}" if data else "")
        return self._wait(self.received, count, timeout, matches, label)

    def wait_for_rejected(self, count: int = 1, timeout: float = 10.0) -> list[WebhookDelivery]:
        """Wait until ``count`` deliveries have been rejected; returns them."""
        return self._wait(self.rejected, count, timeout, lambda _: True, "rejected webhook(s)")


def _handler(receiver: WebhookReceiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            try:
                length = int(self.headers.get("Content-Length") or 0)
            except ValueError:
                length = 0
            raw = self.rfile.read(max(0, min(length, 1024 * 1024)))
            headers = {k.lower(): v for k, v in self.headers.items()}
            status = receiver._take(raw, self.path, headers)
            answer = b"ok" if status < 300 else b"rejected"
            self.send_response(status)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

    return Handler
