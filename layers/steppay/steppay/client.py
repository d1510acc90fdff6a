"""The StepPay API client.

* One pooled `requests.Session` per container (`get_client()`), `Secret-Token` on every call,
  explicit connect and read timeouts, no redirects followed (a redirect could carry the token to
  another host).
* Retries: GETs only, through urllib3's `Retry` on the session's adapter: on 429/502/503/504,
  connection errors and read timeouts, with exponential backoff, waiting what `Retry-After`
  asks when it asks at most `max_retry_after` seconds (a longer ask is not waited for inside a
  request: the call fails as unavailable). Order creation and cancellation are never retried,
  not even after a connection error: a request that may have reached StepPay is not repeated.
* StepPay's error body `{traceId, errorCode, errorMessage, details}` becomes a typed error (see
  `steppay.errors`): 404 StepPayNotFound, 401/403 StepPayAuthFailed, other 4xx StepPayRejected,
  and StepPayUnavailable for 5xx, 408/429 (transient by definition), timeouts, connection
  errors, redirects, and answers we cannot read. A 400/404/422 whose body is not StepPay's JSON
  error is StepPayUnavailable too: a proxy's or a wrong URL's "404" is not proof that StepPay
  knows no such order.
* Identifiers placed in a URL path are validated (`steppay.identifiers`) before any I/O.
* JSON is parsed with `parse_float=Decimal`: money never passes through float.
* Each call is measured and handed to `on_call` (default: a debug log line without secrets).
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import os
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, tzinfo
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Self, TypeVar
from urllib.parse import quote, urlencode, urlsplit
from zoneinfo import ZoneInfo

import requests
import urllib3
from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from pydantic import BaseModel, SecretStr, ValidationError
from requests.adapters import HTTPAdapter
from urllib3.exceptions import MaxRetryError, ResponseError
from urllib3.util.retry import Retry

from steppay import identifiers
from steppay.errors import (
    StepPayAuthFailed,
    StepPayError,
    StepPayMalformedResponse,
    StepPayNotFound,
    StepPayRejected,
    StepPayUnavailable,
)
from steppay.models import (
    TIMEZONE_CONTEXT_KEY,
    CancelResult,
    OrderCreateRequest,
    OrderDetail,
    PaymentReceipt,
    dumps_json,
    parse_json,
)

if TYPE_CHECKING:
    from steppay.listing_models import CustomerPage, OrderPage, OrderSummary, ProductPage
    from steppay.subscription_models import Subscription
from steppay.secrets import get_secret_token
from steppay.settings import Settings, get_settings

logger = Logger(child=True)

RETRY_STATUSES = frozenset({429, 502, 503, 504})
TRANSIENT_CLIENT_STATUSES = frozenset({408, 429})
DEFAULT_MAX_RETRY_AFTER = 5.0
DEFAULT_MAX_PAGES = 10_000
USER_AGENT = "steppay-aws-bundle/0.1"
_MAX_ERROR_TEXT = 200

M = TypeVar("M", bound=BaseModel)
TokenSource = SecretStr | Callable[[], SecretStr]


@dataclass(frozen=True)
class CallRecord:
    """One StepPay call as measured (no identifiers, no secrets: the path is a template)."""

    operation: str
    method: str
    path_template: str
    status_code: int | None
    elapsed_ms: float
    attempts: int | None  # 1 + the retries urllib3 made, when a response came back
    outcome: str  # "ok" or the exception class name


CallHook = Callable[[CallRecord], None]


class GetOnlyRetry(Retry):
    """urllib3 `Retry` that never repeats a non-GET and gives up on a too-long Retry-After.

    urllib3 retries connection errors for any method (the request did not leave); we do not:
    order creation and cancellation are sent exactly once.
    """

    max_retry_after: float = DEFAULT_MAX_RETRY_AFTER

    def new(self, **kw: Any) -> Self:
        fresh = super().new(**kw)
        fresh.max_retry_after = self.max_retry_after
        return fresh

    def increment(
        self,
        method: str | None = None,
        url: str | None = None,
        response: Any = None,
        error: Exception | None = None,
        _pool: Any = None,
        _stacktrace: Any = None,
    ) -> Self:
        if method is None or not self._is_method_retryable(method):
            if error is not None and self._is_read_error(error):
                # urllib3 re-raises a read error of a non-idempotent call as it is.
                return super().increment(method, url, response, error, _pool, _stacktrace)
            reason = error if error is not None else ResponseError("not retried: method is not idempotent")
            raise MaxRetryError(_pool, url, reason)
        if response is not None and error is None:
            try:
                wait = self.get_retry_after(response)
            except urllib3.exceptions.InvalidHeader:
                wait = None
            if wait is not None and wait > self.max_retry_after:
                raise MaxRetryError(_pool, url, ResponseError("Retry-After is longer than we wait"))
        return super().increment(method, url, response, error, _pool, _stacktrace)


def build_retry(max_retries: int, *, max_retry_after: float = DEFAULT_MAX_RETRY_AFTER) -> GetOnlyRetry:
    retry = GetOnlyRetry(
        total=max_retries,
        connect=max_retries,
        read=max_retries,
        status=max_retries,
        other=0,
        redirect=0,
        allowed_methods=frozenset({"GET"}),
        status_forcelist=RETRY_STATUSES,
        backoff_factor=0.25,
        backoff_max=2.0,
        backoff_jitter=0.1,
        respect_retry_after_header=True,  # longer asks than max_retry_after end the call instead
        raise_on_status=False,  # the last answer comes back and is mapped to a typed error
        raise_on_redirect=False,
    )
    retry.max_retry_after = max_retry_after
    return retry


def _steppay_local(value: datetime, zone: tzinfo) -> str:
    """An aware datetime as StepPay writes them: zone-less, in StepPay's zone."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("datetimes sent to StepPay must be timezone-aware")
    return value.astimezone(zone).replace(tzinfo=None).isoformat()


def _short_text(value: Any) -> str | None:
    if not isinstance(value, str | int):
        return None
    text = "".join(ch for ch in str(value) if ch.isprintable())
    return text[:_MAX_ERROR_TEXT] or None


def _retry_after(response: requests.Response) -> float | None:
    header = response.headers.get("Retry-After", "")
    return float(header) if header.strip().isdigit() else None


def _exact_amount(value: Decimal | int, what: str) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, int | Decimal):
        raise TypeError(f"{what} must be a Decimal or int, never a float")
    amount = Decimal(value)
    if not amount.is_finite() or amount < 0:
        raise ValueError(f"{what} must be a finite amount of at least 0")
    return amount


class StepPayClient:
    """StepPay's REST API, as this project uses it."""

    def __init__(
        self,
        base_url: str,
        secret_token: TokenSource,
        *,
        connect_timeout: float = 3.05,
        read_timeout: float = 10.0,
        max_retries: int = 2,
        max_retry_after: float = DEFAULT_MAX_RETRY_AFTER,
        zone: tzinfo | str = "UTC",
        session: requests.Session | None = None,
        on_call: CallHook | None = None,
    ) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.netloc or "@" in parts.netloc:
            raise ValueError("base_url must be an absolute http(s) URL without credentials")
        self._base_url = base_url.rstrip("/")
        # A callable is asked on every call, so that a rotated token is picked up (the secrets
        # module caches it for a few minutes).
        self._token_source = secret_token
        self._timeout = (connect_timeout, read_timeout)
        self._zone = ZoneInfo(zone) if isinstance(zone, str) else zone
        self._on_call = on_call if on_call is not None else _log_call
        self._session = session if session is not None else _session_for(self._base_url)
        adapter = HTTPAdapter(
            max_retries=build_retry(max_retries, max_retry_after=max_retry_after),
            pool_connections=4,
            pool_maxsize=10,
        )
        self._session.mount("https://", adapter)
        self._session.mount("http://", adapter)
        self._session.headers.update({"Accept": "application/json", "User-Agent": USER_AGENT})

    @classmethod
    def from_settings(cls, settings: Settings, secret_token: TokenSource, **kwargs: Any) -> StepPayClient:
        return cls(
            settings.steppay_base_url,
            secret_token,
            connect_timeout=settings.steppay_connect_timeout,
            read_timeout=settings.steppay_read_timeout,
            max_retries=settings.steppay_max_retries,
            zone=settings.zone,
            **kwargs,
        )

    def __repr__(self) -> str:
        return f"StepPayClient(base_url={self._base_url!r})"

    @property
    def base_url(self) -> str:
        return self._base_url

    def close(self) -> None:
        self._session.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- orders ---------------------------------------------------------------------------

    def create_order(self, request: OrderCreateRequest) -> OrderDetail:
        """`POST /api/v1/orders`. Sent once: never retried (a retry could create two orders)."""
        body = request.to_steppay(zone=self._zone)
        data = self._call("create_order", "POST", "/api/v1/orders", "/api/v1/orders", body=body)
        return self._model(OrderDetail, data, "create_order")

    def get_order(self, order_id_or_code: int | str) -> OrderDetail:
        """`GET /api/v1/orders/{orderIdOrCode}`: an int or digit string is an id, else a code."""
        ref = identifiers.order_ref(order_id_or_code)
        data = self._call("get_order", "GET", f"/api/v1/orders/{ref}", "/api/v1/orders/{orderIdOrCode}")
        order = self._model(OrderDetail, data, "get_order")
        # An answer about another order must never be used for this one.
        asked_by_id = ref.isdigit()
        if (asked_by_id and order.order_id != int(ref)) or (not asked_by_id and order.order_code != ref):
            raise StepPayMalformedResponse("StepPay answered get_order with another order")
        return order

    def get_order_by_code(self, order_code: str) -> OrderDetail:
        return self.get_order(identifiers.order_code(order_code))

    def get_order_by_id(self, order_id: int | str) -> OrderDetail:
        return self.get_order(identifiers.order_id(order_id))

    def list_orders(
        self,
        start: datetime,
        end: datetime,
        *,
        page: int = 0,
        size: int = 50,
        order_type: str | None = None,
        status: str | None = None,
        keyword: str | None = None,
        sort: str | None = None,
        sort_dir: str | None = None,
    ) -> OrderPage:
        """`GET /api/v1/orders`: one page (0-based) of the orders created between start and end."""
        if end < start:
            raise ValueError("end must not be before start")
        if page < 0 or not 1 <= size <= 1000:
            raise ValueError("page must be >= 0 and size between 1 and 1000")
        params = {
            "startDate": _steppay_local(start, self._zone),
            "endDate": _steppay_local(end, self._zone),
            "page": page,
            "size": size,
            "type": order_type,
            "status": status,
            "keyword": keyword,
            "sort": sort,
            "sortDir": sort_dir,
        }
        data = self._call("list_orders", "GET", "/api/v1/orders", "/api/v1/orders", params=params)
        from steppay.listing_models import OrderPage  # not on the shopper's paths: built when used

        return self._model(OrderPage, data, "list_orders")

    def iter_orders(
        self,
        start: datetime,
        end: datetime,
        page_size: int = 100,
        *,
        max_pages: int = DEFAULT_MAX_PAGES,
        status: str | None = None,
    ) -> Iterator[OrderSummary]:
        """Every order created in the range (with an item in `status`, when given), page after page.

        Oldest first (`sort=createdAt`, `ASC`), so that an order created while we page moves
        no earlier row onto a page already read; an order seen twice is yielded once.
        """
        seen: set[int] = set()
        for page_number in range(max_pages):
            page = self.list_orders(
                start, end, page=page_number, size=page_size, status=status, sort="createdAt", sort_dir="ASC"
            )
            for summary in page.content:
                if summary.id not in seen:
                    seen.add(summary.id)
                    yield summary
            if not page.content or page.last is True:
                return
            if page.total_pages is not None and page_number + 1 >= page.total_pages:
                return
        raise StepPayUnavailable(f"StepPay's order list did not end within {max_pages} pages")

    def cancel_order(
        self, order_id_or_code: int | str, *, request_price: Decimal | int, reason: str | None = None
    ) -> CancelResult:
        """`PATCH /api/v1/orders/{orderIdOrCode}/cancel` with `{requestPrice, reason}`. Never retried."""
        ref = identifiers.order_ref(order_id_or_code)
        body: dict[str, Any] = {"requestPrice": _exact_amount(request_price, "request_price")}
        if reason is not None:
            body["reason"] = reason
        data = self._call(
            "cancel_order",
            "PATCH",
            f"/api/v1/orders/{ref}/cancel",
            "/api/v1/orders/{orderIdOrCode}/cancel",
            body=body,
        )
        return self._model(CancelResult, data if data is not None else {}, "cancel_order")

    # -- subscriptions, payments, catalogue -----------------------------------------------

    def get_subscription(self, subscription_id: int | str) -> Subscription:
        """`GET /api/v1/subscriptions/{id}`."""
        sid = identifiers.subscription_id(subscription_id)
        data = self._call(
            "get_subscription", "GET", f"/api/v1/subscriptions/{sid}", "/api/v1/subscriptions/{id}"
        )
        from steppay.subscription_models import Subscription  # not on the shopper's paths

        subscription = self._model(Subscription, data, "get_subscription")
        if subscription.id != sid:
            raise StepPayMalformedResponse("StepPay answered get_subscription with another subscription")
        return subscription

    def get_payment_receipt(self, id_key: str) -> PaymentReceipt:
        """`GET /api/payment/receipt/{idKey}` (from StepPay's guide sample; the shape is unpublished)."""
        key = identifiers.id_key(id_key)
        data = self._call(
            "get_payment_receipt", "GET", f"/api/payment/receipt/{key}", "/api/payment/receipt/{idKey}"
        )
        receipt = self._model(PaymentReceipt, data, "get_payment_receipt")
        if receipt.id_key is not None and receipt.id_key != key:
            raise StepPayMalformedResponse("StepPay answered get_payment_receipt with another payment")
        return receipt

    def list_customers(self, *, page: int = 0, size: int = 20, keyword: str | None = None) -> CustomerPage:
        """`GET /api/v1/customers` (discovery)."""
        params = {"page": page, "size": size, "keyword": keyword}
        data = self._call("list_customers", "GET", "/api/v1/customers", "/api/v1/customers", params=params)
        from steppay.listing_models import CustomerPage

        return self._model(CustomerPage, data, "list_customers")

    def list_products(
        self, *, page: int = 0, size: int = 20, keyword: str | None = None, status: str | None = None
    ) -> ProductPage:
        """`GET /api/v1/products` (discovery)."""
        params = {"page": page, "size": size, "keyword": keyword, "status": status}
        data = self._call("list_products", "GET", "/api/v1/products", "/api/v1/products", params=params)
        from steppay.listing_models import ProductPage

        return self._model(ProductPage, data, "list_products")

    # -- the pay page ---------------------------------------------------------------------

    def build_pay_url(
        self,
        order_code: str,
        *,
        success_url: str | None = None,
        error_url: str | None = None,
        cancel_url: str | None = None,
        lang: str | None = None,
    ) -> str:
        """StepPay's public pay link for an order (no I/O); absent parameters are left out.

        Checking that the redirect URLs are allowed is the caller's job (`steppay.redirects`).
        """
        code = identifiers.order_code(order_code)
        query = [
            (name, value)
            for name, value in (
                ("successUrl", success_url),
                ("errorUrl", error_url),
                ("cancelUrl", cancel_url),
                ("lang", lang),
            )
            if value is not None
        ]
        url = f"{self._base_url}/api/public/orders/{quote(code, safe='')}/pay"
        return f"{url}?{urlencode(query, quote_via=quote, safe='')}" if query else url

    # -- plumbing -------------------------------------------------------------------------

    def _token(self) -> SecretStr:
        source = self._token_source
        return source if isinstance(source, SecretStr) else source()

    def _model(self, model: type[M], data: Any, operation: str) -> M:
        try:
            return model.model_validate(data, context={TIMEZONE_CONTEXT_KEY: self._zone})
        except ValidationError as exc:
            fields = sorted({".".join(str(p) for p in err["loc"]) for err in exc.errors()})
            logger.warning(
                "StepPay answer does not fit the expected shape",
                extra={"operation": operation, "fields": fields[:20]},
            )
            raise StepPayMalformedResponse(
                f"StepPay's answer to {operation} does not have the expected shape"
            ) from None

    def _call(
        self,
        operation: str,
        method: str,
        path: str,
        path_template: str,
        *,
        params: Mapping[str, Any] | None = None,
        body: Any = None,
    ) -> Any:
        headers = {"Secret-Token": self._token().get_secret_value()}
        data: bytes | None = None
        if body is not None:
            headers["Content-Type"] = "application/json"
            data = dumps_json(body).encode("utf-8")
        query = {k: v for k, v in (params or {}).items() if v is not None}
        started = time.perf_counter()
        status: int | None = None
        attempts: int | None = None
        outcome = "error"
        try:
            try:
                response = self._session.request(
                    method,
                    self._base_url + path,
                    params=query,
                    data=data,
                    headers=headers,
                    timeout=self._timeout,
                    allow_redirects=False,
                )
            except requests.Timeout as exc:
                raise StepPayUnavailable(f"StepPay did not answer {operation} in time") from exc
            except (requests.RequestException, urllib3.exceptions.HTTPError) as exc:
                raise StepPayUnavailable(
                    f"StepPay could not be reached for {operation} ({type(exc).__name__})"
                ) from exc
            status = response.status_code
            attempts = _attempts(response)
            result = _read(operation, response)
            outcome = "ok"
            return result
        except StepPayError as exc:
            outcome = type(exc).__name__
            raise
        finally:
            record = CallRecord(
                operation=operation,
                method=method,
                path_template=path_template,
                status_code=status,
                elapsed_ms=round((time.perf_counter() - started) * 1000, 2),
                attempts=attempts,
                outcome=outcome,
            )
            try:
                self._on_call(record)
            except Exception:  # noqa: BLE001 - a measuring hook must never break a payment call
                logger.warning("StepPay call hook failed", extra={"operation": operation})


def _session_for(base_url: str) -> requests.Session:
    """A Session with the environment's proxy and CA-bundle settings read once, here.

    With `trust_env` on, requests re-reads them (and looks for a ~/.netrc) on every call; the
    StepPay host never changes, so reading HTTPS_PROXY/NO_PROXY and REQUESTS_CA_BUNDLE once
    per container gives the same result for less work on the warm path.
    """
    session = requests.Session()
    session.proxies.update(requests.utils.get_environ_proxies(base_url))
    bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
    if bundle:
        session.verify = bundle
    session.trust_env = False
    return session


def _attempts(response: requests.Response) -> int | None:
    retries = getattr(response.raw, "retries", None)
    history = getattr(retries, "history", None)
    return len(history) + 1 if isinstance(history, tuple) else None


def _read(operation: str, response: requests.Response) -> Any:
    status = response.status_code
    if 200 <= status < 300:
        if status == 204 or not response.content:
            return None
        try:
            return parse_json(response.content)
        except (ValueError, RecursionError):
            raise StepPayMalformedResponse(
                f"StepPay's answer to {operation} is not JSON", status_code=status
            ) from None

    error: Mapping[str, Any] | None = None
    try:
        parsed = parse_json(response.content) if response.content else None
        error = parsed if isinstance(parsed, Mapping) else None
    except (ValueError, RecursionError):
        error = None
    fields: dict[str, Any] = {
        "status_code": status,
        "error_code": _short_text(error.get("errorCode")) if error else None,
        "error_message": _short_text(error.get("errorMessage")) if error else None,
        "trace_id": _short_text(error.get("traceId")) if error else None,
        "retry_after_seconds": _retry_after(response),
    }
    suffix = f" ({fields['error_code']})" if fields["error_code"] else ""
    message = f"StepPay answered {status} to {operation}{suffix}"
    if status in (401, 403):
        raise StepPayAuthFailed(message, **fields)
    if 400 <= status < 500 and status not in TRANSIENT_CLIENT_STATUSES:
        if error is None:
            raise StepPayUnavailable(message + " without StepPay's error body", **fields)
        if status == 404:
            raise StepPayNotFound(message, **fields)
        raise StepPayRejected(message, **fields)
    raise StepPayUnavailable(message, **fields)


def _log_call(record: CallRecord) -> None:
    logger.debug("StepPay call", extra={"steppay_call": dataclasses.asdict(record)})


# Outcomes that are StepPay's answer about what we asked (no such order, a refused order), not a
# failure of StepPay or of our integration with it: counted as calls, not as errors.
ANSWER_OUTCOMES = frozenset({"ok", "StepPayNotFound", "StepPayRejected"})


@functools.cache
def _metrics() -> Metrics:
    return Metrics()


def record_call_metrics(record: CallRecord) -> None:
    """The container client's `on_call`: StepPay latency and errors as CloudWatch metrics.

    `StepPayCalls` and `StepPayLatency` (ms) for every call, `StepPayErrors` for every call that
    ended unavailable (5xx, 408/429, timeouts, connection errors, unreadable answers) or with
    the Secret-Token refused. They join the invocation's other metrics (Powertools' metric set
    is shared by every `Metrics` instance) and go out with them when the handler's
    `@metrics.log_metrics` flushes; the template's alarm and dashboard read them.
    """
    metrics = _metrics()
    metrics.add_metric(name="StepPayCalls", unit=MetricUnit.Count, value=1)
    metrics.add_metric(name="StepPayLatency", unit=MetricUnit.Milliseconds, value=record.elapsed_ms)
    if record.outcome not in ANSWER_OUTCOMES:
        metrics.add_metric(name="StepPayErrors", unit=MetricUnit.Count, value=1)
    if logging.getLogger(logger.name).isEnabledFor(logging.DEBUG):  # no asdict() otherwise
        _log_call(record)


@functools.cache
def get_client() -> StepPayClient:
    """The container's client (one connection pool), from the settings and the Secret-Token.

    The token is read once here so that a missing token fails at start, then on each call
    through the cached secrets module so that a rotation is picked up.
    """
    get_secret_token()
    return StepPayClient.from_settings(get_settings(), get_secret_token, on_call=record_call_metrics)


__all__ = [
    "ANSWER_OUTCOMES",
    "RETRY_STATUSES",
    "CallHook",
    "CallRecord",
    "GetOnlyRetry",
    "StepPayClient",
    "build_retry",
    "get_client",
    "record_call_metrics",
]
