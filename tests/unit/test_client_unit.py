"""StepPayClient against a scripted local HTTP server (real sockets, so urllib3's retries run)."""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit
from zoneinfo import ZoneInfo

import pytest
import requests
from pydantic import SecretStr
from urllib3.exceptions import MaxRetryError, NewConnectionError, ReadTimeoutError

from steppay import client as client_module
from steppay import settings as settings_module
from steppay.client import CallRecord, GetOnlyRetry, StepPayClient, build_retry
from steppay.errors import (
    InvalidIdentifier,
    StepPayAuthFailed,
    StepPayError,
    StepPayMalformedResponse,
    StepPayNotFound,
    StepPayRejected,
    StepPayUnavailable,
)
from steppay.models import OrderCreateItem, OrderCreateRequest, SubscriptionStatus

TOKEN = "sk_test_THE-SECRET-TOKEN-3f9a"
CODE = "order_Xb3kR9pQ2mZt"
SEOUL = ZoneInfo("Asia/Seoul")

ORDER = {
    "id": 1001,
    "orderId": 1001,
    "orderCode": CODE,
    "code": CODE,
    "type": "ONE_TIME",
    "paidAmount": Decimal("9900.10"),
    "returnedAmount": 0,
    "paymentDate": "2023-06-19T06:19:55.403711",
    "idKey": "idkey_1",
    "items": [{"status": "PAID", "currency": "KRW", "paidAmount": Decimal("9900.10")}],
}


@dataclass
class Reply:
    status: int = 200
    body: Any = None  # dict/list → JSON (Decimal kept exact); bytes/str as is
    headers: dict[str, str] = field(default_factory=dict)
    drop: bool = False
    hang: bool = False  # never answer in time: held until the stub stops, whatever the machine's load


@dataclass
class Seen:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes


def _encode(body: Any) -> bytes:
    if body is None:
        return b""
    if isinstance(body, bytes):
        return body
    if isinstance(body, str):
        return body.encode()
    from steppay.models import dumps_json

    return dumps_json(body).encode()


class StubStepPay:
    """Answers each (method, path) with the next scripted Reply (the last one repeats)."""

    def __init__(self) -> None:
        self.routes: dict[tuple[str, str], deque[Reply]] = {}
        self.seen: list[Seen] = []
        self.lock = threading.Lock()
        self.released = threading.Event()
        stub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                parts = urlsplit(self.path)
                with stub.lock:
                    stub.seen.append(
                        Seen(
                            self.command, parts.path, parse_qs(parts.query), dict(self.headers.items()), body
                        )
                    )
                    queue = stub.routes.get((self.command, parts.path))
                    if queue is None:
                        reply = Reply(
                            404, {"errorCode": "NOT_FOUND", "errorMessage": "no route", "traceId": "t"}
                        )
                    else:
                        reply = queue.popleft() if len(queue) > 1 else queue[0]
                if reply.hang:
                    stub.released.wait(60)
                    self.close_connection = True
                    return
                if reply.drop:
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                payload = _encode(reply.body)
                self.send_response(reply.status)
                if reply.body is not None and not isinstance(reply.body, bytes | str):
                    self.send_header("Content-Type", "application/json")
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = do_PATCH = _handle

        class Server(ThreadingHTTPServer):
            def handle_error(self, request: Any, client_address: Any) -> None:
                pass  # a client that timed out closed the socket before the slow answer: expected

        self.server = Server(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def on(self, method: str, path: str, *replies: Reply) -> None:
        with self.lock:
            self.routes[(method, path)] = deque(replies)

    def calls(self, method: str | None = None, path: str | None = None) -> list[Seen]:
        with self.lock:
            return [
                s
                for s in self.seen
                if (method is None or s.method == method) and (path is None or s.path == path)
            ]

    def stop(self) -> None:
        self.released.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def stub() -> Iterator[StubStepPay]:
    server = StubStepPay()
    yield server
    server.stop()


@pytest.fixture
def records() -> list[CallRecord]:
    return []


# Long enough that a loaded CI machine still answers a plain reply in time (0.4 s was not: one
# run's stub took longer and a retry test saw an extra call); timeouts are forced with hang=True.
READ_TIMEOUT = 1.5


@pytest.fixture
def client(stub: StubStepPay, records: list[CallRecord]) -> Iterator[StepPayClient]:
    c = StepPayClient(
        stub.url,
        SecretStr(TOKEN),
        connect_timeout=1.0,
        read_timeout=READ_TIMEOUT,
        max_retries=2,
        zone=SEOUL,  # the non-default zone: a range and a zone-less time are converted, not copied
        on_call=records.append,
    )
    yield c
    c.close()


def order_request() -> OrderCreateRequest:
    return OrderCreateRequest(
        customer_id=7,
        items=[OrderCreateItem(product_code="product_1", price_code="price_1", minimum_quantity=1)],
    )


# -- the calls -------------------------------------------------------------------------------


def test_get_order_by_code_sends_the_token_and_reads_exact_money(
    stub: StubStepPay, client: StepPayClient
) -> None:
    stub.on("GET", f"/api/v1/orders/{CODE}", Reply(200, ORDER))
    order = client.get_order(CODE)
    assert order.order_code == CODE and order.order_id == 1001
    assert order.paid_amount == Decimal("9900.10") and str(order.paid_amount) == "9900.10"
    assert order.payment_date == datetime(2023, 6, 19, 6, 19, 55, 403711, tzinfo=SEOUL)
    (seen,) = stub.calls()
    assert seen.headers["Secret-Token"] == TOKEN
    assert seen.headers["Accept"] == "application/json"


_PROXY_VARS = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY")


@pytest.fixture
def clean_proxy_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in _PROXY_VARS:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    return monkeypatch


def _client(base_url: str) -> StepPayClient:
    return StepPayClient(base_url, SecretStr(TOKEN), connect_timeout=1.0, read_timeout=1.0, max_retries=0)


def test_a_proxy_set_in_the_environment_carries_the_calls(
    stub: StubStepPay, clean_proxy_env: pytest.MonkeyPatch
) -> None:
    # The stub plays the proxy: requests sends it the absolute URL of a host that cannot resolve.
    clean_proxy_env.setenv("HTTP_PROXY", stub.url)
    stub.on("GET", f"/api/v1/orders/{CODE}", Reply(200, ORDER))
    c = _client("http://steppay.invalid")
    try:
        assert c.get_order(CODE).order_code == CODE
    finally:
        c.close()
    assert len(stub.calls("GET", f"/api/v1/orders/{CODE}")) == 1


def test_no_proxy_is_honoured(stub: StubStepPay, clean_proxy_env: pytest.MonkeyPatch) -> None:
    clean_proxy_env.setenv("HTTP_PROXY", "http://127.0.0.1:9")  # nothing listens there
    clean_proxy_env.setenv("NO_PROXY", "127.0.0.1")
    stub.on("GET", f"/api/v1/orders/{CODE}", Reply(200, ORDER))
    c = _client(stub.url)
    try:
        assert c.get_order(CODE).order_code == CODE
    finally:
        c.close()


def test_the_environment_is_read_once_per_client(
    stub: StubStepPay, clean_proxy_env: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    stub.on("GET", f"/api/v1/orders/{CODE}", Reply(200, ORDER))
    c = _client(stub.url)
    try:
        # Set after the client exists: a proxy that does not answer, and a .netrc with credentials
        # for the StepPay host. Neither is read on a call (requests would, per call, by default).
        clean_proxy_env.setenv("HTTP_PROXY", "http://127.0.0.1:9")
        netrc = tmp_path / "netrc"
        netrc.write_text("machine 127.0.0.1 login someone password hunter2\n")
        netrc.chmod(0o600)
        clean_proxy_env.setenv("NETRC", str(netrc))
        assert c.get_order(CODE).order_code == CODE
    finally:
        c.close()
    (seen,) = stub.calls()
    assert "Authorization" not in seen.headers


def test_a_ca_bundle_from_the_environment_is_kept(clean_proxy_env: pytest.MonkeyPatch, tmp_path: Any) -> None:
    bundle = tmp_path / "ca.pem"
    bundle.write_text("")
    clean_proxy_env.delenv("CURL_CA_BUNDLE", raising=False)
    clean_proxy_env.setenv("REQUESTS_CA_BUNDLE", str(bundle))
    session = client_module._session_for("https://api.steppay.kr")
    assert session.verify == str(bundle) and session.trust_env is False
    clean_proxy_env.delenv("REQUESTS_CA_BUNDLE")
    assert client_module._session_for("https://api.steppay.kr").verify is True


def test_get_order_by_id(stub: StubStepPay, client: StepPayClient) -> None:
    stub.on("GET", "/api/v1/orders/1001", Reply(200, ORDER))
    assert client.get_order(1001).order_code == CODE
    assert client.get_order("1001").order_code == CODE
    assert client.get_order_by_id(1001).order_id == 1001
    stub.on("GET", f"/api/v1/orders/{CODE}", Reply(200, ORDER))
    assert client.get_order_by_code(CODE).order_id == 1001


def test_an_answer_about_another_order_is_refused(stub: StubStepPay, client: StepPayClient) -> None:
    stub.on("GET", "/api/v1/orders/1002", Reply(200, ORDER))
    with pytest.raises(StepPayMalformedResponse):
        client.get_order(1002)
    stub.on("GET", "/api/v1/orders/order_other", Reply(200, ORDER))
    with pytest.raises(StepPayMalformedResponse):
        client.get_order("order_other")


def test_create_order_posts_camel_case_json_once(stub: StubStepPay, client: StepPayClient) -> None:
    stub.on("POST", "/api/v1/orders", Reply(201, {**ORDER, "paymentDate": None, "paidAmount": 0}))
    order = client.create_order(order_request())
    assert order.order_code == CODE and order.payment_date is None
    (seen,) = stub.calls("POST")
    assert json.loads(seen.body) == {
        "customerId": 7,
        "items": [
            {"productCode": "product_1", "priceCode": "price_1", "currency": "KRW", "minimumQuantity": 1}
        ],
    }
    assert seen.headers["Content-Type"] == "application/json"
    assert seen.headers["Secret-Token"] == TOKEN


def test_list_orders_sends_the_range_in_steppay_local_time(stub: StubStepPay, client: StepPayClient) -> None:
    stub.on("GET", "/api/v1/orders", Reply(200, {"content": [{"id": 1, "paidAmount": 0}], "last": True}))
    page = client.list_orders(
        datetime(2023, 6, 18, 15, 0, tzinfo=UTC), datetime(2023, 6, 19, 15, 0, tzinfo=UTC), page=2, size=10
    )
    assert [o.id for o in page.content] == [1]
    (seen,) = stub.calls()
    assert seen.query == {
        "startDate": ["2023-06-19T00:00:00"],
        "endDate": ["2023-06-20T00:00:00"],
        "page": ["2"],
        "size": ["10"],
    }
    with pytest.raises(ValueError):
        client.list_orders(datetime(2023, 6, 19), datetime(2023, 6, 20))  # naive: refused
    with pytest.raises(ValueError):
        client.list_orders(datetime(2023, 6, 20, tzinfo=UTC), datetime(2023, 6, 19, tzinfo=UTC))


def _page(ids: list[int], number: int, total_pages: int, last: bool | None) -> Reply:
    body: dict[str, Any] = {
        "content": [{"id": i, "paidAmount": 0} for i in ids],
        "number": number,
        "totalPages": total_pages,
    }
    if last is not None:
        body["last"] = last
    return Reply(200, body)


def test_iter_orders_walks_every_page(stub: StubStepPay, client: StepPayClient) -> None:
    stub.on(
        "GET",
        "/api/v1/orders",
        _page([1, 2], 0, 3, False),
        _page([3, 4], 1, 3, False),
        _page([4, 5], 2, 3, True),  # 4 again: a row shifted between pages is yielded once
    )
    start, end = datetime(2023, 6, 1, tzinfo=UTC), datetime(2023, 6, 30, tzinfo=UTC)
    assert [o.id for o in client.iter_orders(start, end, page_size=2)] == [1, 2, 3, 4, 5]
    assert [c.query["page"] for c in stub.calls()] == [["0"], ["1"], ["2"]]
    assert all(c.query["size"] == ["2"] for c in stub.calls())


def test_iter_orders_stops_on_total_pages_or_an_empty_page(stub: StubStepPay, client: StepPayClient) -> None:
    start, end = datetime(2023, 6, 1, tzinfo=UTC), datetime(2023, 6, 30, tzinfo=UTC)
    stub.on("GET", "/api/v1/orders", _page([1], 0, 2, None), _page([2], 1, 2, None), _page([9], 2, 2, None))
    assert [o.id for o in client.iter_orders(start, end)] == [1, 2]
    stub.on("GET", "/api/v1/orders", _page([], 0, 0, None))
    assert list(client.iter_orders(start, end)) == []


def test_iter_orders_refuses_a_list_without_end(stub: StubStepPay, client: StepPayClient) -> None:
    stub.on("GET", "/api/v1/orders", Reply(200, {"content": [{"id": 1, "paidAmount": 0}], "last": False}))
    start, end = datetime(2023, 6, 1, tzinfo=UTC), datetime(2023, 6, 30, tzinfo=UTC)
    with pytest.raises(StepPayUnavailable):
        list(client.iter_orders(start, end, max_pages=3))
    assert len(stub.calls()) == 3


def test_get_subscription(stub: StubStepPay, client: StepPayClient) -> None:
    stub.on("GET", "/api/v1/subscriptions/77", Reply(200, {"id": 77, "status": "ACTIVE"}))
    sub = client.get_subscription(77)
    assert sub.id == 77 and sub.status is SubscriptionStatus.ACTIVE
    stub.on("GET", "/api/v1/subscriptions/78", Reply(200, {"id": 77, "status": "ACTIVE"}))
    with pytest.raises(StepPayMalformedResponse):
        client.get_subscription("78")


def test_cancel_order_patches_once_with_an_exact_amount(stub: StubStepPay, client: StepPayClient) -> None:
    stub.on("PATCH", f"/api/v1/orders/{CODE}/cancel", Reply(200, {"message": "취소되었습니다"}))
    result = client.cancel_order(CODE, request_price=Decimal("9900.10"), reason="고객 요청")
    assert result.message == "취소되었습니다"
    (seen,) = stub.calls()
    assert seen.body == '{"requestPrice":9900.10,"reason":"고객 요청"}'.encode()
    with pytest.raises(TypeError):
        client.cancel_order(CODE, request_price=9900.1)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        client.cancel_order(CODE, request_price=Decimal(-1))
    assert len(stub.calls()) == 1


def test_payment_receipt_by_id_key(stub: StubStepPay, client: StepPayClient) -> None:
    stub.on(
        "GET",
        "/api/payment/receipt/idkey_1",
        Reply(
            200,
            {
                "idKey": "idkey_1",
                "orderId": 1001,
                "amount": Decimal("9900.10"),
                "paymentDate": "2023-06-19T06:19:55",
                "status": "COMPLETE",
            },
        ),
    )
    receipt = client.get_payment_receipt("idkey_1")
    assert receipt.amount == Decimal("9900.10") and receipt.order_id == 1001
    stub.on("GET", "/api/payment/receipt/idkey_2", Reply(200, {"idKey": "idkey_1"}))
    with pytest.raises(StepPayMalformedResponse):
        client.get_payment_receipt("idkey_2")


def test_discovery_lists(stub: StubStepPay, client: StepPayClient) -> None:
    stub.on(
        "GET",
        "/api/v1/customers",
        Reply(200, {"content": [{"id": 7, "code": "customer_1", "name": "홍길동"}]}),
    )
    stub.on(
        "GET",
        "/api/v1/products",
        Reply(
            200,
            {
                "content": [
                    {
                        "id": 2,
                        "code": "product_1",
                        "prices": [{"code": "price_1", "price": 9900, "type": "ONE_TIME"}],
                    }
                ]
            },
        ),
    )
    assert client.list_customers().content[0].code == "customer_1"
    product = client.list_products(keyword="커피").content[0]
    assert product.prices[0].price == Decimal(9900)
    assert stub.calls("GET", "/api/v1/products")[0].query["keyword"] == ["커피"]


# -- the pay URL -------------------------------------------------------------------------------


def test_build_pay_url_encodes_every_parameter(client: StepPayClient, stub: StubStepPay) -> None:
    url = client.build_pay_url(
        CODE,
        success_url="https://shop.example.com/done?cart=1&x=a b",
        error_url="https://shop.example.com/결제/error#frag",
        cancel_url="https://shop.example.com/cancel",
        lang="ko",
    )
    parts = urlsplit(url)
    assert f"{parts.scheme}://{parts.netloc}" == stub.url
    assert parts.path == f"/api/public/orders/{CODE}/pay"
    assert parts.query == (
        "successUrl=https%3A%2F%2Fshop.example.com%2Fdone%3Fcart%3D1%26x%3Da%20b"
        "&errorUrl=https%3A%2F%2Fshop.example.com%2F%EA%B2%B0%EC%A0%9C%2Ferror%23frag"
        "&cancelUrl=https%3A%2F%2Fshop.example.com%2Fcancel&lang=ko"
    )
    assert parse_qs(parts.query)["successUrl"] == ["https://shop.example.com/done?cart=1&x=a b"]
    assert stub.calls() == []  # no I/O


def test_build_pay_url_omits_absent_parameters(client: StepPayClient) -> None:
    assert client.build_pay_url(CODE) == f"{client.base_url}/api/public/orders/{CODE}/pay"
    assert client.build_pay_url(CODE, lang="en").endswith("/pay?lang=en")


# -- identifiers never reach StepPay ---------------------------------------------------------

HOSTILE = ["../customers", "a/b?x=1", "%2e%2e", "", " ", "order_1\n", "..", "a b", "주문"]


@pytest.mark.parametrize("value", HOSTILE)
def test_path_injection_never_reaches_steppay(value: str, stub: StubStepPay, client: StepPayClient) -> None:
    calls: list[Callable[[], object]] = [
        lambda: client.get_order(value),
        lambda: client.get_order_by_code(value),
        lambda: client.cancel_order(value, request_price=Decimal(0)),
        lambda: client.get_subscription(value),
        lambda: client.get_payment_receipt(value),
        lambda: client.build_pay_url(value),
    ]
    for call in calls:
        with pytest.raises(InvalidIdentifier):
            call()
    assert stub.calls() == []


@pytest.mark.parametrize("value", [0, -1, 2**63, True])
def test_out_of_range_ids_never_reach_steppay(value: int, stub: StubStepPay, client: StepPayClient) -> None:
    with pytest.raises(InvalidIdentifier):
        client.get_order(value)
    with pytest.raises(InvalidIdentifier):
        client.get_subscription(value)
    assert stub.calls() == []


# -- error mapping ----------------------------------------------------------------------------


def _error(code: str) -> dict[str, Any]:
    return {"traceId": "trace-123", "errorCode": code, "errorMessage": "설명", "details": {}}


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (404, StepPayNotFound),
        (401, StepPayAuthFailed),
        (403, StepPayAuthFailed),
        (400, StepPayRejected),
        (409, StepPayRejected),
        (422, StepPayRejected),
        (500, StepPayUnavailable),
        (501, StepPayUnavailable),
        (408, StepPayUnavailable),
    ],
)
def test_error_statuses_map_to_typed_errors(
    status: int, expected: type[StepPayError], stub: StubStepPay, client: StepPayClient
) -> None:
    stub.on("POST", "/api/v1/orders", Reply(status, _error("SOME_CODE")))
    with pytest.raises(expected) as caught:
        client.create_order(order_request())
    error = caught.value
    assert type(error) is expected
    assert (error.status_code, error.error_code, error.trace_id) == (status, "SOME_CODE", "trace-123")
    assert error.error_message == "설명"
    assert TOKEN not in str(error) and TOKEN not in repr(error)


def test_retryable_statuses_end_unavailable_after_the_retries(
    stub: StubStepPay, client: StepPayClient
) -> None:
    for status in (429, 502, 503, 504):
        stub.seen.clear()
        stub.on("GET", f"/api/v1/orders/{CODE}", Reply(status, _error("BUSY")))
        with pytest.raises(StepPayUnavailable) as caught:
            client.get_order(CODE)
        assert caught.value.status_code == status
        assert len(stub.calls()) == 3  # the call and two retries


def test_a_4xx_without_steppays_error_body_is_unavailable_not_a_verdict(
    stub: StubStepPay, client: StepPayClient
) -> None:
    stub.on(
        "GET", f"/api/v1/orders/{CODE}", Reply(404, b"<html>Not Found</html>", {"Content-Type": "text/html"})
    )
    with pytest.raises(StepPayUnavailable) as caught:
        client.get_order(CODE)
    assert not isinstance(caught.value, StepPayNotFound)


@pytest.mark.parametrize("body", [b"<html>oops</html>", b"{not json", b'{"paidAmount": NaN}', b"[1, 2]"])
def test_an_unreadable_success_is_unavailable(body: bytes, stub: StubStepPay, client: StepPayClient) -> None:
    stub.on("GET", f"/api/v1/orders/{CODE}", Reply(200, body))
    with pytest.raises(StepPayMalformedResponse) as caught:
        client.get_order(CODE)
    assert isinstance(caught.value, StepPayUnavailable)


def test_a_wrong_shape_is_unavailable(stub: StubStepPay, client: StepPayClient) -> None:
    stub.on("GET", f"/api/v1/orders/{CODE}", Reply(200, {**ORDER, "type": None}))
    with pytest.raises(StepPayMalformedResponse):
        client.get_order(CODE)


def test_a_value_steppay_adds_later_is_an_answer(stub: StubStepPay, client: StepPayClient) -> None:
    # Judged NEEDS_REVIEW by the rules (tests/unit/test_needs_review.py), never a 503 or a retry loop.
    stub.on("GET", f"/api/v1/orders/{CODE}", Reply(200, {**ORDER, "type": "NEW_ORDER_TYPE"}))
    assert client.get_order(CODE).unknown_values == ("order type 'NEW_ORDER_TYPE'",)


def test_redirects_are_not_followed(stub: StubStepPay, client: StepPayClient) -> None:
    stub.on("GET", f"/api/v1/orders/{CODE}", Reply(302, b"", {"Location": f"{stub.url}/elsewhere"}))
    with pytest.raises(StepPayUnavailable):
        client.get_order(CODE)
    assert [c.path for c in stub.calls()] == [f"/api/v1/orders/{CODE}"]


# -- retries: GET only --------------------------------------------------------------------------


def test_get_is_retried_after_a_503_and_then_succeeds(
    stub: StubStepPay, client: StepPayClient, records: list[CallRecord]
) -> None:
    stub.on("GET", f"/api/v1/orders/{CODE}", Reply(503, _error("BUSY")), Reply(200, ORDER))
    assert client.get_order(CODE).order_code == CODE
    assert len(stub.calls()) == 2
    assert records[-1].attempts == 2 and records[-1].outcome == "ok" and records[-1].status_code == 200


@pytest.mark.parametrize("method", ["POST", "PATCH"])
def test_writes_are_never_retried_on_503(method: str, stub: StubStepPay, client: StepPayClient) -> None:
    stub.on("POST", "/api/v1/orders", Reply(503, _error("BUSY")), Reply(201, ORDER))
    stub.on(
        "PATCH", f"/api/v1/orders/{CODE}/cancel", Reply(503, _error("BUSY")), Reply(200, {"message": "ok"})
    )
    with pytest.raises(StepPayUnavailable):
        if method == "POST":
            client.create_order(order_request())
        else:
            client.cancel_order(CODE, request_price=0)
    assert len(stub.calls(method)) == 1


def test_get_read_timeout_is_retried_then_unavailable(stub: StubStepPay, client: StepPayClient) -> None:
    stub.on("GET", f"/api/v1/orders/{CODE}", Reply(hang=True))
    started = time.monotonic()
    with pytest.raises(StepPayUnavailable):
        client.get_order(CODE)
    assert time.monotonic() - started >= 3 * READ_TIMEOUT
    assert len(stub.calls()) == 3


def test_get_read_timeout_once_then_success(stub: StubStepPay, client: StepPayClient) -> None:
    stub.on("GET", f"/api/v1/orders/{CODE}", Reply(hang=True), Reply(200, ORDER))
    assert client.get_order(CODE).order_id == 1001
    assert len(stub.calls()) == 2


def test_post_read_timeout_is_not_retried(stub: StubStepPay, client: StepPayClient) -> None:
    stub.on("POST", "/api/v1/orders", Reply(hang=True))
    with pytest.raises(StepPayUnavailable, match="in time"):
        client.create_order(order_request())
    time.sleep(0.5)
    assert len(stub.calls("POST")) == 1


def test_dropped_connection_get_retried_post_not(stub: StubStepPay, client: StepPayClient) -> None:
    stub.on("GET", f"/api/v1/orders/{CODE}", Reply(drop=True), Reply(200, ORDER))
    assert client.get_order(CODE).order_id == 1001
    assert len(stub.calls("GET")) == 2
    stub.on("POST", "/api/v1/orders", Reply(drop=True), Reply(201, ORDER))
    with pytest.raises(StepPayUnavailable):
        client.create_order(order_request())
    assert len(stub.calls("POST")) == 1


def test_retry_after_is_respected(stub: StubStepPay, client: StepPayClient) -> None:
    stub.on(
        "GET",
        f"/api/v1/orders/{CODE}",
        Reply(429, _error("SLOW_DOWN"), {"Retry-After": "1"}),
        Reply(200, ORDER),
    )
    started = time.monotonic()
    assert client.get_order(CODE).order_id == 1001
    assert time.monotonic() - started >= 0.95
    assert len(stub.calls()) == 2


def test_a_long_retry_after_is_not_waited_for_inside_a_call(stub: StubStepPay, client: StepPayClient) -> None:
    stub.on("GET", f"/api/v1/orders/{CODE}", Reply(503, _error("MAINTENANCE"), {"Retry-After": "120"}))
    started = time.monotonic()
    with pytest.raises(StepPayUnavailable) as caught:
        client.get_order(CODE)
    assert time.monotonic() - started < 5
    assert caught.value.retry_after_seconds == 120
    assert len(stub.calls()) == 1


def test_connection_refused_is_unavailable() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    c = StepPayClient(f"http://127.0.0.1:{port}", SecretStr(TOKEN), max_retries=1, connect_timeout=0.5)
    with pytest.raises(StepPayUnavailable) as caught:
        c.get_order(CODE)
    assert TOKEN not in str(caught.value)
    with pytest.raises(StepPayUnavailable):
        c.create_order(order_request())


def test_the_retry_policy_repeats_get_only() -> None:
    retry = build_retry(2)
    assert retry.allowed_methods == frozenset({"GET"})
    assert set(retry.status_forcelist or ()) == {429, 502, 503, 504}
    refused = NewConnectionError(None, "refused")  # type: ignore[arg-type]
    again = retry.increment("GET", "/api/v1/orders/x", error=refused)
    assert isinstance(again, GetOnlyRetry) and again.total == 1
    for method in ("POST", "PATCH"):
        with pytest.raises(MaxRetryError):
            retry.increment(method, "/api/v1/orders", error=refused)
        with pytest.raises(ReadTimeoutError):
            retry.increment(method, "/api/v1/orders", error=ReadTimeoutError(None, "/", "slow"))  # type: ignore[arg-type]


def test_timeouts_are_explicit(stub: StubStepPay) -> None:
    seen: dict[str, Any] = {}

    class Spy(requests.Session):
        def request(self, *args: Any, **kwargs: Any) -> requests.Response:
            seen.update(kwargs)
            return super().request(*args, **kwargs)

    stub.on("GET", f"/api/v1/orders/{CODE}", Reply(200, ORDER))
    c = StepPayClient(stub.url, SecretStr(TOKEN), connect_timeout=1.5, read_timeout=7.0, session=Spy())
    c.get_order(CODE)
    assert seen["timeout"] == (1.5, 7.0)
    assert seen["allow_redirects"] is False


# -- measuring, secrets --------------------------------------------------------------------------


def test_every_call_is_measured_without_identifiers(
    stub: StubStepPay, client: StepPayClient, records: list[CallRecord]
) -> None:
    stub.on("GET", f"/api/v1/orders/{CODE}", Reply(200, ORDER))
    client.get_order(CODE)
    with pytest.raises(StepPayNotFound):
        client.get_order("order_unknown")
    ok, missing = records
    assert (ok.operation, ok.method, ok.path_template, ok.status_code, ok.outcome) == (
        "get_order",
        "GET",
        "/api/v1/orders/{orderIdOrCode}",
        200,
        "ok",
    )
    assert ok.elapsed_ms > 0 and ok.attempts == 1
    assert (missing.status_code, missing.outcome) == (404, "StepPayNotFound")


def test_a_failing_hook_never_breaks_a_call(stub: StubStepPay) -> None:
    def broken(record: CallRecord) -> None:
        raise RuntimeError("metrics backend down")

    stub.on("GET", f"/api/v1/orders/{CODE}", Reply(200, ORDER))
    c = StepPayClient(stub.url, SecretStr(TOKEN), on_call=broken)
    assert c.get_order(CODE).order_id == 1001


def test_a_token_provider_is_asked_on_each_call(stub: StubStepPay) -> None:
    tokens = iter([SecretStr("first"), SecretStr("second")])
    stub.on("GET", f"/api/v1/orders/{CODE}", Reply(200, ORDER))
    c = StepPayClient(stub.url, lambda: next(tokens))
    c.get_order(CODE)
    c.get_order(CODE)
    assert [s.headers["Secret-Token"] for s in stub.calls()] == ["first", "second"]


def test_the_token_never_appears_in_reprs_errors_or_logs(
    stub: StubStepPay,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
    request: pytest.FixtureRequest,
) -> None:
    caplog.set_level(logging.INFO, logger="urllib3")  # urllib3's own DEBUG lines show URLs only; keep quiet
    caplog.set_level(logging.DEBUG)  # after: the capture handler takes the last level set
    previous = client_module.logger.log_level
    client_module.logger.setLevel(logging.DEBUG)  # Powertools child loggers default to INFO
    request.addfinalizer(lambda: client_module.logger.setLevel(previous))
    stub.on("GET", f"/api/v1/orders/{CODE}", Reply(401, _error("INVALID_TOKEN")))
    c = StepPayClient(stub.url, SecretStr(TOKEN))  # default hook: a debug log line per call
    with pytest.raises(StepPayAuthFailed) as caught:
        c.get_order(CODE)
    stub.on("GET", "/api/v1/orders/1001", Reply(200, {**ORDER, "type": None}))
    with pytest.raises(StepPayMalformedResponse) as malformed:
        c.get_order(1001)
    out = capsys.readouterr()
    shown = [
        repr(c),
        str(c),
        str(caught.value),
        repr(caught.value),
        str(malformed.value),
        caplog.text,
        out.out,
        out.err,
        *(str(r.__dict__) for r in caplog.records),
    ]
    assert any("StepPay call" in text for text in shown)  # the call log was captured
    for text in shown:
        assert TOKEN not in text
    assert stub.calls()[0].headers["Secret-Token"] == TOKEN


def test_get_client_is_one_per_container(monkeypatch: pytest.MonkeyPatch, stub: StubStepPay) -> None:
    monkeypatch.delenv("STEPPAY_SECRET_TOKEN_PARAM", raising=False)
    monkeypatch.setenv("STEPPAY_SECRET_TOKEN", TOKEN)
    monkeypatch.setenv("STEPPAY_BASE_URL", stub.url)
    monkeypatch.setenv("STEPPAY_READ_TIMEOUT", "4")
    settings_module.get_settings.cache_clear()
    client_module.get_client.cache_clear()
    try:
        first = client_module.get_client()
        assert client_module.get_client() is first
        assert first.base_url == stub.url and first._timeout == (3.05, 4.0)
        stub.on("GET", f"/api/v1/orders/{CODE}", Reply(200, ORDER))
        first.get_order(CODE)
        assert stub.calls()[0].headers["Secret-Token"] == TOKEN
        assert TOKEN not in repr(first)
    finally:
        client_module.get_client.cache_clear()
        settings_module.get_settings.cache_clear()


def test_get_client_fails_fast_without_a_token(monkeypatch: pytest.MonkeyPatch) -> None:
    from steppay.errors import SecretUnavailable

    monkeypatch.delenv("STEPPAY_SECRET_TOKEN_PARAM", raising=False)
    monkeypatch.delenv("STEPPAY_SECRET_TOKEN", raising=False)
    settings_module.get_settings.cache_clear()
    client_module.get_client.cache_clear()
    try:
        with pytest.raises(SecretUnavailable):
            client_module.get_client()
    finally:
        client_module.get_client.cache_clear()
        settings_module.get_settings.cache_clear()


def test_base_url_must_be_http(stub: StubStepPay) -> None:
    for bad in ("ftp://x", "api.steppay.kr", "https://user:pw@api.steppay.kr"):
        with pytest.raises(ValueError):
            StepPayClient(bad, SecretStr(TOKEN))
