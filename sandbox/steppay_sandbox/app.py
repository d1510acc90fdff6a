"""Routing and handlers: a request in, a response out (no sockets here).

Three kinds of routes:

* StepPay's API (``/api/v1/...``, ``/api/payment/receipt/...``): need ``Secret-Token``
  (missing → 401, wrong → 403), answer StepPay's shapes and error bodies.
* Public pages (``/api/public/orders/{code}/pay``, ``/pay/{code}``): what a browser sees.
* The control API (``/_sandbox/...``): JSON in and out, no token, drives the sandbox.
"""

from __future__ import annotations

import hmac
import json
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from email.message import Message
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlencode, urlsplit

from steppay_sandbox import pages
from steppay_sandbox.errors import ApiError, bad_request, error_body, not_found
from steppay_sandbox.faults import FaultRegistry
from steppay_sandbox.state import SandboxState
from steppay_sandbox.timeutil import zone_name, zone_named
from steppay_sandbox.validation import MAX_QUANTITY, parse_amount, parse_outcome, parse_quantity_choice
from steppay_sandbox.views import JSON
from steppay_sandbox.webhooks import Outgoing, UnknownDelivery, WebhookDispatcher

log = logging.getLogger("steppay_sandbox")

TOKEN_HEADER = "Secret-Token"  # noqa: S105 - a header name, not a secret
REDIRECT_PARAMS = ("successUrl", "errorUrl", "cancelUrl")
_UNSAFE_URL = re.compile(r"[\x00-\x20\x7f]")


@dataclass
class Request:
    method: str
    path: str  # as sent, without the query string (still percent-encoded)
    query: dict[str, str]
    headers: Message
    body: bytes = b""

    @classmethod
    def build(cls, method: str, target: str, headers: Message, body: bytes = b"") -> Request:
        parts = urlsplit(target)
        query = {k: v[0] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        return cls(method.upper(), parts.path or "/", query, headers, body)

    def json(self, *, empty: Any = None) -> Any:
        if not self.body.strip():
            if empty is not None:
                return empty
            raise bad_request("The request body must be JSON.", "INVALID_JSON")
        try:
            return json.loads(self.body.decode("utf-8"), parse_float=Decimal, parse_constant=_no_constants)
        except (UnicodeDecodeError, ValueError, RecursionError) as exc:
            raise bad_request("The request body is not valid JSON.", "INVALID_JSON") from exc

    def form(self) -> dict[str, str]:
        try:
            text = self.body.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise bad_request("The form is not UTF-8.") from exc
        return {k: v[0] for k, v in parse_qs(text, keep_blank_values=True).items()}


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


@dataclass
class Response:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)


def json_response(status: int, payload: Any, headers: dict[str, str] | None = None) -> Response:
    body = json.dumps(payload, ensure_ascii=False).encode("utf-8")
    return Response(status, body, {"Content-Type": "application/json", **(headers or {})})


def html_response(status: int, text: str) -> Response:
    return Response(
        status, text.encode("utf-8"), {"Content-Type": "text/html; charset=utf-8", **pages.PAGE_HEADERS}
    )


def error_response(exc: ApiError) -> Response:
    return json_response(exc.status, exc.body())


def safe_redirect_url(value: str | None) -> str | None:
    """An absolute http(s) URL fit for a Location header, or None."""
    if not value or len(value) > 4000 or _UNSAFE_URL.search(value):
        return None
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return None
    return value


def append_query(url: str, params: list[tuple[str, str]]) -> str:
    """Append ``params`` to ``url``'s existing query string as StepPay does (``?`` or ``&``)."""
    base, hash_mark, fragment = url.partition("#")
    separator = "&" if "?" in base else "?"
    if base.endswith(("?", "&")):
        separator = ""
    return f"{base}{separator}{urlencode(params)}{hash_mark}{fragment}"


Handler = Callable[[Request, str], Response]


MAX_CLOCK_ADVANCE = 366 * 24 * 3600  # one call moves the clock at most a year


class SandboxApp:
    """The sandbox's behaviour over HTTP, independent of the server plumbing."""

    def __init__(
        self,
        state: SandboxState,
        dispatcher: WebhookDispatcher,
        faults: FaultRegistry,
        *,
        secret_token: str,
        public_url: Callable[[], str],
    ) -> None:
        self.state = state
        self.dispatcher = dispatcher
        self.faults = faults
        self.secret_token = secret_token
        self.public_url = public_url
        # (method, pattern, handler, needs Secret-Token)
        self.routes: list[tuple[str, re.Pattern[str], Handler, bool]] = []
        api = [
            ("POST", r"/api/v1/orders", self.create_order),
            ("GET", r"/api/v1/orders", self.list_orders),
            ("GET", r"/api/v1/orders/([^/]+)", self.get_order),
            ("PATCH", r"/api/v1/orders/([^/]+)/cancel", self.cancel_order),
            ("GET", r"/api/v1/orders/([^/]+)/pay", self.pay_redirect),
            ("GET", r"/api/v1/subscriptions/([^/]+)", self.get_subscription),
            ("GET", r"/api/v1/customers", self.list_customers),
            ("GET", r"/api/v1/products", self.list_products),
            ("GET", r"/api/payment/receipt/([^/]+)", self.get_receipt),
        ]
        public = [
            ("GET", r"/api/public/orders/([^/]+)/pay", self.public_pay_redirect),
            ("GET", r"/pay/([^/]+)", self.pay_page),
            ("POST", r"/pay/([^/]+)", self.pay_page_submit),
            ("GET", r"/_sandbox/health", self.health),
            ("POST", r"/_sandbox/orders/([^/]+)/complete", self.control_complete),
            ("POST", r"/_sandbox/orders/([^/]+)/refund", self.control_refund),
            ("POST", r"/_sandbox/orders/([^/]+)/deposit", self.control_deposit),
            ("POST", r"/_sandbox/orders/([^/]+)/tamper", self.control_tamper),
            ("POST", r"/_sandbox/subscriptions/([^/]+)/renew", self.control_renew),
            ("POST", r"/_sandbox/subscriptions/([^/]+)/status", self.control_status),
            ("GET", r"/_sandbox/webhooks", self.control_webhooks),
            ("DELETE", r"/_sandbox/webhooks", self.control_clear_webhooks),
            ("POST", r"/_sandbox/webhooks/([^/]+)/resend", self.control_resend_webhook),
            ("GET", r"/_sandbox/faults", self.control_list_faults),
            ("POST", r"/_sandbox/faults", self.control_add_fault),
            ("DELETE", r"/_sandbox/faults", self.control_clear_faults),
            ("GET", r"/_sandbox/config", self.control_get_config),
            ("POST", r"/_sandbox/config", self.control_set_config),
            ("GET", r"/_sandbox/state", self.control_state),
            ("POST", r"/_sandbox/reset", self.control_reset),
            ("GET", r"/_sandbox/clock", self.control_get_clock),
            ("POST", r"/_sandbox/clock", self.control_advance_clock),
        ]
        for method, pattern, handler in api:
            self.routes.append((method, re.compile(f"^{pattern}$"), handler, True))
        for method, pattern, handler in public:
            self.routes.append((method, re.compile(f"^{pattern}$"), handler, False))

    # -- dispatch --------------------------------------------------------------------------

    def handle(self, request: Request) -> Response:
        try:
            return self._route(request)
        except ApiError as exc:
            if request.path.startswith("/pay/"):
                return html_response(exc.status, pages.not_found_page(request.query.get("lang", "")))
            return error_response(exc)
        except Exception:
            log.exception("unexpected error answering %s %s", request.method, request.path)
            return json_response(500, error_body("INTERNAL_SERVER_ERROR", "The sandbox failed unexpectedly."))

    def _route(self, request: Request) -> Response:
        if self._is_api(request.path):
            self._authenticate(request)
        allowed: list[str] = []
        for method, pattern, handler, _ in self.routes:
            match = pattern.match(request.path)
            if match is None:
                continue
            if method != request.method and not (method == "GET" and request.method == "HEAD"):
                allowed.append(method)
                continue
            ref = unquote(match.group(1)) if match.groups() else ""
            return handler(request, ref)
        if allowed:
            exc = ApiError(405, "METHOD_NOT_ALLOWED", f"{request.method} is not supported here.")
            return json_response(405, exc.body(), {"Allow": ", ".join(sorted(set(allowed)))})
        raise not_found("No such resource.", "NOT_FOUND")

    @staticmethod
    def _is_api(path: str) -> bool:
        return path.startswith(("/api/v1/", "/api/payment/")) or path == "/api/v1"

    def _authenticate(self, request: Request) -> None:
        token = request.headers.get(TOKEN_HEADER)
        if token is None or token == "":
            raise ApiError(401, "UNAUTHORIZED", "The Secret-Token header is required.")
        if not hmac.compare_digest(
            token.encode("utf-8", "surrogateescape"), self.secret_token.encode("utf-8")
        ):
            raise ApiError(403, "FORBIDDEN", "The Secret-Token is not valid.")

    def _emit(self, events: list[Outgoing]) -> None:
        self.dispatcher.emit(events)

    # -- StepPay's API ---------------------------------------------------------------------

    def create_order(self, request: Request, _: str) -> Response:
        body = request.json()
        with self.state.lock:
            order, events = self.state.create_order(body)
            self._emit(events)
        return json_response(201, order)

    def list_orders(self, request: Request, _: str) -> Response:
        return json_response(200, self.state.list_orders(request.query))

    def get_order(self, request: Request, ref: str) -> Response:
        return json_response(200, self.state.order_detail(ref))

    def cancel_order(self, request: Request, ref: str) -> Response:
        self.state.find_order(ref)  # 404 before 400 for an unknown order
        body = request.json()
        with self.state.lock:
            answer, events = self.state.cancel_order(ref, body)
            self._emit(events)
        return json_response(200, answer)

    def get_subscription(self, request: Request, ref: str) -> Response:
        return json_response(200, self.state.subscription_detail(ref))

    def list_customers(self, request: Request, _: str) -> Response:
        return json_response(200, self.state.list_customers(request.query))

    def list_products(self, request: Request, _: str) -> Response:
        return json_response(200, self.state.list_products(request.query))

    def get_receipt(self, request: Request, ref: str) -> Response:
        return json_response(200, self.state.receipt(ref))

    # -- pay link and pay page -------------------------------------------------------------

    def _pay_location(self, order_code: str, query: dict[str, str]) -> str:
        params = [(k, query[k]) for k in (*REDIRECT_PARAMS, "lang") if query.get(k)]
        location = f"{self.public_url()}/pay/{quote(order_code, safe='')}"
        return f"{location}?{urlencode(params)}" if params else location

    def pay_redirect(self, request: Request, ref: str) -> Response:
        order = self.state.find_order(ref)
        return Response(302, b"", {"Location": self._pay_location(order.code, request.query)})

    def public_pay_redirect(self, request: Request, ref: str) -> Response:
        order = self.state.find_order(ref)
        if order.code != ref:  # the public link names orders by code only
            raise not_found("The order does not exist.", "ORDER_NOT_FOUND")
        return Response(302, b"", {"Location": self._pay_location(order.code, request.query)})

    def _page_order(self, ref: str) -> Any:
        order = self.state.find_order(ref)
        if order.code != ref:
            raise not_found("The order does not exist.", "ORDER_NOT_FOUND")
        return order

    def pay_page(self, request: Request, ref: str) -> Response:
        with self.state.lock:
            order = self._page_order(ref)
            customer = self.state.catalogue.customer_by_id(order.customer_id)
            text = pages.pay_page(
                order_code=order.code,
                order_id=order.id,
                product_name=self.state.render.product_name(order),
                amount=order.amount,
                currency=order.currency,
                customer_name=customer.name if customer else "",
                items=[
                    pages.PageItem(
                        price_code=item.price_code,
                        name=self.state.render.item_name(item),
                        unit_price=item.unit_price,
                        minimum=item.minimum_quantity,
                        maximum=item.maximum_quantity,
                    )
                    for item in order.items
                ],
                redirects={k: request.query.get(k, "") for k in REDIRECT_PARAMS},
                lang=request.query.get("lang", ""),
                problem=self.state.payable_problem(order.code),
            )
        return html_response(200, text)

    def pay_page_submit(self, request: Request, ref: str) -> Response:
        form = request.form()
        lang = form.get("lang", "")
        order = self._page_order(ref)
        action = form.get("action")
        if action not in ("pay", "fail", "cancel", "standby"):
            return html_response(
                400,
                pages.result_page(
                    title_ko="알 수 없는 요청",
                    title_en="Unknown action",
                    order_code=order.code,
                    ok=False,
                    lang=lang,
                ),
            )
        if action == "cancel":
            target = safe_redirect_url(form.get("cancelUrl"))
            if target is None:
                return html_response(
                    200,
                    pages.result_page(
                        title_ko="결제가 취소되었습니다",
                        title_en="Payment cancelled",
                        order_code=order.code,
                        ok=False,
                        lang=lang,
                    ),
                )
            params = [("order_id", str(order.id)), ("order_code", order.code)]
            return Response(303, b"", {"Location": append_query(target, params)})
        outcome = {"pay": "success", "standby": "standby"}.get(action, "failure")
        try:
            quantity = self._form_quantity(form) if outcome != "failure" else None
            with self.state.lock:
                _, events = self.state.complete_order(order.code, outcome, quantity=quantity)
                self._emit(events)
                payment = order.payment
        except ApiError as exc:
            ko, en = pages.MESSAGES.get(
                exc.error_code, ("결제할 수 없는 주문입니다", "This order cannot be paid")
            )
            return html_response(
                exc.status,
                pages.result_page(title_ko=ko, title_en=en, order_code=order.code, ok=False, lang=lang),
            )
        if outcome == "standby" and payment is not None:
            # Not paid yet: the shopper is shown the account to deposit into (no redirect; what
            # StepPay's own page does next is not documented).
            return html_response(
                200,
                pages.virtual_account_page(
                    order_code=order.code,
                    amount=payment.amount,
                    currency=order.currency,
                    bank_name=payment.vbank_name or "",
                    account_number=payment.vbank_account or "",
                    holder=payment.vbank_holder or "",
                    due=self.state.render.when(payment.vbank_due) or "",
                    lang=lang,
                ),
            )
        target = safe_redirect_url(form.get("successUrl" if outcome == "success" else "errorUrl"))
        if target is None:
            ok = outcome == "success"
            return html_response(
                200,
                pages.result_page(
                    title_ko="결제가 완료되었습니다" if ok else "결제에 실패했습니다",
                    title_en="Payment complete" if ok else "Payment failed",
                    order_code=order.code,
                    ok=ok,
                    lang=lang,
                ),
            )
        params = [
            ("order_id", str(order.id)),
            ("order_code", order.code),
            ("status", "success" if outcome == "success" else "error"),
        ]
        return Response(303, b"", {"Location": append_query(target, params)})

    @staticmethod
    def _form_quantity(form: dict[str, str]) -> dict[str, int] | None:
        """The pay page's ``quantity.<priceCode>`` fields as ``complete``'s quantity map."""
        chosen: dict[str, int] = {}
        for name, value in form.items():
            if not name.startswith(pages.QUANTITY_FIELD):
                continue
            text = value.strip()
            if not (text.isascii() and text.isdigit() and len(text) <= len(str(MAX_QUANTITY))):
                raise bad_request("The quantity must be a whole number.", "INVALID_QUANTITY", field=name)
            chosen[name[len(pages.QUANTITY_FIELD) :]] = int(text)
        if not chosen:
            return None
        parse_quantity_choice(chosen)  # 1..MAX_QUANTITY each
        return chosen

    # -- control API -----------------------------------------------------------------------

    def health(self, request: Request, _: str) -> Response:
        return json_response(200, {"status": "ok"})

    def control_complete(self, request: Request, ref: str) -> Response:
        body = request.json(empty={})
        outcome = parse_outcome(body, standby=True)
        error_code = body.get("errorCode") if isinstance(body.get("errorCode"), str) else None
        error_message = body.get("errorMessage") if isinstance(body.get("errorMessage"), str) else None
        quantity = parse_quantity_choice(body.get("quantity"))
        with self.state.lock:
            order, events = self.state.complete_order(
                ref, outcome, error_code=error_code, error_message=error_message, quantity=quantity
            )
            self._emit(events)
        return json_response(200, order)

    def control_deposit(self, request: Request, ref: str) -> Response:
        """The shopper deposits into the order's virtual account (issued by ``standby``)."""
        with self.state.lock:
            order, events = self.state.deposit_order(ref)
            self._emit(events)
        return json_response(200, order)

    def control_tamper(self, request: Request, ref: str) -> Response:
        """Test-only (not something StepPay does): see ``SandboxState.tamper_order``."""
        body = request.json()
        with self.state.lock:
            order, events = self.state.tamper_order(ref, body)
            self._emit(events)
        return json_response(200, order)

    def control_refund(self, request: Request, ref: str) -> Response:
        body = request.json(empty={})
        if not isinstance(body, dict):
            raise bad_request("The request body must be a JSON object.")
        amount = None if body.get("amount") is None else parse_amount(body["amount"], "amount")
        with self.state.lock:
            order, events = self.state.refund_order(ref, amount)
            self._emit(events)
        return json_response(200, order)

    def control_renew(self, request: Request, ref: str) -> Response:
        outcome = parse_outcome(request.json(empty={}))
        with self.state.lock:
            order, events = self.state.renew(ref, outcome)
            self._emit(events)
        return json_response(200, order)

    def control_status(self, request: Request, ref: str) -> Response:
        body = request.json(empty={})
        status = body.get("status") if isinstance(body, dict) else None
        with self.state.lock:
            sub, events = self.state.set_subscription_status(ref, status)
            self._emit(events)
        return json_response(200, sub)

    def control_webhooks(self, request: Request, _: str) -> Response:
        keys = ("event", "version", "outcome", "orderId", "orderCode", "subscriptionId")
        entries = self.dispatcher.log(**{k: request.query.get(k) for k in keys})
        return json_response(200, {"deliveries": entries, "pending": self.dispatcher.pending()})

    def control_clear_webhooks(self, request: Request, _: str) -> Response:
        self.dispatcher.clear_log()
        return json_response(200, {"deliveries": []})

    def control_resend_webhook(self, request: Request, ref: str) -> Response:
        """Portal-style resend: the logged delivery's original signed request, sent once more."""
        if not (ref.isascii() and ref.isdigit() and len(ref) <= 18):
            raise not_found("No such webhook delivery.", "DELIVERY_NOT_FOUND")
        try:
            again = self.dispatcher.resend(int(ref))
        except UnknownDelivery:
            raise not_found("No such webhook delivery.", "DELIVERY_NOT_FOUND") from None
        except ValueError:
            raise ApiError(409, "NO_WEBHOOK_URL", "No webhook URL is configured to send it to.") from None
        answer = {"deliveryId": again.id, "event": again.event, "url": again.url}
        answer["attempt"] = again.attempt + 1
        return json_response(202, answer)

    def control_list_faults(self, request: Request, _: str) -> Response:
        return json_response(200, {"faults": self.faults.describe()})

    def control_add_fault(self, request: Request, _: str) -> Response:
        fault = self.faults.add(request.json())
        return json_response(201, {"fault": fault, "faults": self.faults.describe()})

    def control_clear_faults(self, request: Request, _: str) -> Response:
        self.faults.clear()
        return json_response(200, {"faults": []})

    def _config(self) -> JSON:
        return {**self.dispatcher.settings.describe(), "timezone": zone_name(self.state.zone)}

    def control_get_config(self, request: Request, _: str) -> Response:
        return json_response(200, self._config())

    def control_set_config(self, request: Request, _: str) -> Response:
        body = request.json()
        if not isinstance(body, dict):
            raise bad_request("The config is a JSON object.")
        known = {
            "webhookKey",
            "webhookUrl",
            "webhookVersions",
            "webhookRetryDelaysMs",
            "webhookTimeoutMs",
            "timezone",
        }
        unknown = set(body) - known
        if unknown:
            raise bad_request(f"Unknown settings: {', '.join(sorted(unknown))}.")
        changes: dict[str, Any] = {}
        try:
            zone = zone_named(body["timezone"]) if "timezone" in body else None
            if "webhookKey" in body:
                changes["key"] = body["webhookKey"]
            if "webhookUrl" in body:
                changes["url"] = body["webhookUrl"]
            if "webhookVersions" in body:
                if not isinstance(body["webhookVersions"], list):
                    raise ValueError("webhookVersions is a list")
                changes["versions"] = body["webhookVersions"]
            if "webhookRetryDelaysMs" in body:
                delays = body["webhookRetryDelaysMs"]
                if not isinstance(delays, list):
                    raise ValueError("webhookRetryDelaysMs is a list")
                changes["retry_delays"] = [Decimal(str(d)) / 1000 for d in delays]
            if "webhookTimeoutMs" in body:
                changes["timeout"] = Decimal(str(body["webhookTimeoutMs"])) / 1000
            self.dispatcher.configure(**changes)
        except (ValueError, ArithmeticError, TypeError) as exc:
            raise bad_request(f"Invalid settings: {exc}") from exc
        if zone is not None:
            self.state.zone = zone
        return json_response(200, self._config())

    def control_state(self, request: Request, _: str) -> Response:
        with self.state.lock:
            orders = [self.state.render.order(o) for o in self.state.orders.values()]
            subs = [self.state.render.subscription(s) for s in self.state.subscriptions.values()]
        dump: JSON = {
            "orders": orders,
            "subscriptions": subs,
            "config": self._config(),
            "faults": self.faults.describe(),
            "webhooksPending": self.dispatcher.pending(),
        }
        return json_response(200, dump)

    def _clock(self) -> JSON:
        offset = self.state.clock_offset
        return {"offsetSeconds": int(offset.total_seconds()), "now": self.state.clock().isoformat()}

    def control_get_clock(self, request: Request, _: str) -> Response:
        return json_response(200, self._clock())

    def control_advance_clock(self, request: Request, _: str) -> Response:
        """Test-only: move the sandbox's now forward (orders paid or refunded "later"); reset undoes it."""
        body = request.json()
        seconds = body.get("advanceSeconds") if isinstance(body, dict) else None
        if not isinstance(body, dict) or set(body) != {"advanceSeconds"}:
            raise bad_request("The body is {\"advanceSeconds\": <int>}.", field="advanceSeconds")
        if isinstance(seconds, bool) or not isinstance(seconds, int) or not 0 <= seconds <= MAX_CLOCK_ADVANCE:
            message = f"'advanceSeconds' must be a whole number from 0 to {MAX_CLOCK_ADVANCE}."
            raise bad_request(message, field="advanceSeconds")
        self.state.advance_clock(seconds)
        return json_response(200, self._clock())

    def control_reset(self, request: Request, _: str) -> Response:
        self.state.reset()
        self.faults.clear()
        self.dispatcher.clear_log()
        return json_response(200, {"reset": True})
