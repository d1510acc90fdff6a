"""``DemoServer``: the demo shop's own small web server (a stand-in for a merchant's backend).

    from steppay_demo.server import DemoServer
    demo = DemoServer(port=8080, api_url="http://127.0.0.1:3000", sandbox_url="http://127.0.0.1:8181",
                      moto_endpoint="http://127.0.0.1:5010", bus_name="steppay-payments-local").start()
    demo.url     # "http://127.0.0.1:8080"
    demo.stop()

It serves, on 127.0.0.1 only:

* ``/`` and the static files of ``demo/site/`` (the shop page, the return page, app.js, style.css);
* ``/config.json``: where the page finds the bundle's API and the sandbox (never the Secret-Token);
* ``/catalogue.json``: the sandbox's products and prices, fetched here, server-side, with the local
  Secret-Token, as a merchant's backend would (the page itself never holds the token);
* ``POST /api/checkout`` ``{"product": <priceCode>, "mode": "redirect"|"popup"|"iframe", "lang"?}``:
  the page's "Pay". This server is the merchant's backend: it decides what is sold (the catalogue
  line of that price code, quantity 1, its price as ``expectedAmount``, the signed-in customer, its
  own ``merchantRef`` and return URLs) and registers the checkout with the bundle's
  ``POST /checkouts``, SigV4-signed (``steppay_merchant.CheckoutClient``). Any other field (a price,
  a quantity, items...) is refused with 400. It answers 201 ``{"payUrl", "orderCode"}`` and nothing
  else; a refusal of the bundle (bad credentials: 403) is answered 502 ``{"error": {code, message}}``;
* ``GET /api/checkout/<orderCode>``: the merchant's side of a checkout this server registered (the
  bundle's ``GET /checkouts/{checkoutId}``, signed): state, items, customer, merchantRef...;
* ``/events?after=<seq>``: the live feed, the last ``FEED_SIZE`` events put on the bus, newest last.

The feed has its own SQS queue (``local-demo-feed``) and its own catch-all EventBridge rule on the bus,
created at start in moto: it never reads ``local-event-tap``, which belongs to tests and to
``python -m steppay_local tap``.
"""

from __future__ import annotations

import collections
import json
import logging
import re
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

LOG = logging.getLogger("steppay_demo")

SITE_DIR = Path(__file__).resolve().parents[1] / "site"
#: merchant/steppay_merchant.py, the signing merchant client: the demo is its first user.
MERCHANT_DIR = Path(__file__).resolve().parents[2] / "merchant"
LOOPBACK = "127.0.0.1"
DEFAULT_PORT = 8080
DEFAULT_SECRET_TOKEN = "sandbox-secret-token"  # noqa: S105 - the sandbox's documented local-only token
DEFAULT_REGION = "ap-northeast-2"
#: The local stack's dummy credentials, the only ones its API accepts for AWS_IAM routes.
LOCAL_MERCHANT_CREDENTIALS = ("local", "local")
MODES = ("redirect", "popup", "iframe")
LANGS = ("ko", "en")
#: What the page may say when it asks for a checkout; anything else (price, quantity...) is refused.
CHECKOUT_FIELDS = frozenset({"product", "mode", "lang"})
MAX_BODY = 4096
REGISTERED_KEPT = 500
_ORDER_CODE = re.compile(r"[A-Za-z0-9_-]{1,64}")
_LOCAL_HOSTS = ("127.0.0.1", "localhost")
FEED_QUEUE_NAME = "local-demo-feed"
FEED_RULE_NAME = "local-demo-feed"
FEED_SIZE = 50
#: Every event: EventBridge has no "match all" pattern, but every event has a source with a prefix "".
MATCH_EVERYTHING = {"source": [{"prefix": ""}]}

CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".json": "application/json",
    ".png": "image/png",
    ".svg": "image/svg+xml",
    ".ico": "image/x-icon",
}
_STATIC_NAME = re.compile(r"[a-z0-9][a-z0-9_-]*\.(html|js|css|png|svg|ico)")

LogSink = Callable[[str, str], None]


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def merchant_module() -> ModuleType:
    """``steppay_merchant`` (merchant/steppay_merchant.py), importable however the demo was started.

    pytest has merchant/ on its pythonpath; ``make run`` (the local stack puts only demo/ on
    ``sys.path``) and ``python -m steppay_demo`` may not: then it is taken from this repository.
    """
    try:
        import steppay_merchant
    except ImportError:
        if str(MERCHANT_DIR) not in sys.path:
            sys.path.append(str(MERCHANT_DIR))
        import steppay_merchant
    return steppay_merchant


class CheckoutRefused(Exception):
    """What ``POST /api/checkout`` answers instead of a checkout: ``status`` and the error body."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message

    def body(self) -> dict[str, Any]:
        return {"error": {"code": self.code, "message": self.message}}


def _amount(value: Any) -> int | str | None:
    """A catalogue price as ``expectedAmount`` (an integer or a decimal string, never a float)."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        return value
    try:
        number = Decimal(str(value))
    except ArithmeticError:
        return None
    if not number.is_finite():
        return None
    return int(number) if number == number.to_integral_value() else str(number)


class EventFeed:
    """A copy of every event on ``bus_name`` (through its own queue and rule), the last ``size`` kept."""

    def __init__(
        self,
        moto_endpoint: str,
        bus_name: str,
        *,
        region: str = DEFAULT_REGION,
        queue_name: str = FEED_QUEUE_NAME,
        rule_name: str = FEED_RULE_NAME,
        size: int = FEED_SIZE,
        log: Callable[[str], None] = LOG.info,
    ) -> None:
        self.moto_endpoint = moto_endpoint
        self.bus_name = bus_name
        self.region = region
        self.queue_name = queue_name
        self.rule_name = rule_name
        self._log = log
        self._events: collections.deque[dict[str, Any]] = collections.deque(maxlen=size)
        self._seq = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.queue_url = ""

    def _client(self, service: str, **config: Any) -> Any:
        import boto3
        from botocore.config import Config

        return boto3.session.Session().client(
            service,  # type: ignore[call-overload]
            endpoint_url=self.moto_endpoint,
            region_name=self.region,
            aws_access_key_id="local",
            aws_secret_access_key="local",  # noqa: S106 - moto's dummy credentials
            config=Config(retries={"max_attempts": 2, "mode": "standard"}, **config),
        )

    def start(self) -> EventFeed:
        sqs = self._client("sqs")
        events = self._client("events")
        self.queue_url = str(
            sqs.create_queue(QueueName=self.queue_name, Attributes={"MessageRetentionPeriod": "3600"})[
                "QueueUrl"
            ]
        )
        arn = sqs.get_queue_attributes(QueueUrl=self.queue_url, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
        events.put_rule(
            Name=self.rule_name, EventBusName=self.bus_name, EventPattern=json.dumps(MATCH_EVERYTHING)
        )
        events.put_targets(
            Rule=self.rule_name, EventBusName=self.bus_name, Targets=[{"Id": self.queue_name, "Arn": arn}]
        )
        self._thread = threading.Thread(target=self._run, args=(sqs,), name="demo-feed", daemon=True)
        self._thread.start()
        return self

    def _run(self, sqs: Any) -> None:
        failures = 0
        while not self._stop.is_set():
            try:
                messages = sqs.receive_message(
                    QueueUrl=self.queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1
                ).get("Messages", [])
                failures = 0
            except Exception as exc:  # noqa: BLE001 - moto gone or restarting: retry with backoff
                failures += 1
                if failures == 1:
                    self._log(f"event feed: cannot read {self.queue_name} ({exc}); retrying")
                self._stop.wait(min(5.0, 0.5 * failures))
                continue
            for message in messages:
                try:
                    self.add(json.loads(message["Body"]))
                except ValueError:
                    continue
            if messages:
                try:
                    sqs.delete_message_batch(
                        QueueUrl=self.queue_url,
                        Entries=[
                            {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]}
                            for i, m in enumerate(messages)
                        ],
                    )
                except Exception:  # noqa: BLE001, S110 - at worst an event is shown twice
                    pass

    def add(self, envelope: dict[str, Any]) -> dict[str, Any]:
        """Keep one EventBridge envelope (as delivered to SQS) in the feed; returns the feed entry."""
        raw_detail = envelope.get("detail")
        detail: dict[str, Any] = raw_detail if isinstance(raw_detail, dict) else {}
        with self._lock:
            self._seq += 1
            entry = {
                "seq": self._seq,
                "receivedAt": datetime.now(UTC).isoformat(timespec="seconds"),
                "id": envelope.get("id"),
                "source": envelope.get("source"),
                "detailType": envelope.get("detail-type"),
                "time": envelope.get("time"),
                "orderCode": detail.get("orderCode"),
                "amount": detail.get("amount"),
                "currency": detail.get("currency"),
                "detail": detail,
            }
            self._events.append(entry)
        return entry

    def since(self, after: int) -> list[dict[str, Any]]:
        with self._lock:
            return [e for e in self._events if e["seq"] > after]

    def stop(self) -> None:
        """Stop reading; remove the rule and the queue (best effort: moto may already be gone)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        if not self.queue_url:
            return
        quick = {"connect_timeout": 1, "read_timeout": 3}
        try:
            events = self._client("events", **quick)
            events.remove_targets(Rule=self.rule_name, EventBusName=self.bus_name, Ids=[self.queue_name])
            events.delete_rule(Name=self.rule_name, EventBusName=self.bus_name)
            self._client("sqs", **quick).delete_queue(QueueUrl=self.queue_url)
        except Exception:  # noqa: BLE001, S110 - moto stopped first: nothing left to clean
            pass
        self.queue_url = ""


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True
    demo: DemoServer


class _Handler(BaseHTTPRequestHandler):
    server: _HTTPServer
    protocol_version = "HTTP/1.1"
    server_version = "steppay-demo"
    sys_version = ""
    disable_nagle_algorithm = True  # headers and body go out at once (no 40 ms delayed-ACK stalls)

    def log_message(self, format: str, *args: Any) -> None:
        LOG.debug("%s %s", self.address_string(), format % args)

    def do_HEAD(self) -> None:
        self._dispatch(head=True)

    def do_GET(self) -> None:
        self._dispatch(head=False)

    def do_POST(self) -> None:
        demo = self.server.demo
        path = urlsplit(self.path).path
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if length < 0 or length > MAX_BODY:
            self.close_connection = True  # the body is not read: the connection cannot be reused
            self._json(413, {"error": {"code": "payload_too_large", "message": "at most 4 KiB"}}, head=False)
            return
        raw = self.rfile.read(length) if length else b""
        if path != "/api/checkout":
            self._json(404, {"error": {"code": "not_found", "message": "no such route"}}, head=False)
            return
        try:
            body = demo.checkout_for_page(raw, self.headers)
        except CheckoutRefused as refused:
            self._json(refused.status, refused.body(), head=False)
            return
        self._json(201, body, head=False)

    def _dispatch(self, *, head: bool) -> None:
        demo = self.server.demo
        url = urlsplit(self.path)
        path = url.path
        if path == "/config.json":
            self._json(200, demo.page_config(), head=head)
        elif path == "/catalogue.json":
            status, body = demo.catalogue()
            self._json(status, body, head=head)
        elif path.startswith("/api/checkout/"):
            status, body = demo.merchant_view(path.removeprefix("/api/checkout/"))
            self._json(status, body, head=head)
        elif path == "/events":
            try:
                after = int(parse_qs(url.query).get("after", ["0"])[0])
            except ValueError:
                after = 0
            feed = demo.feed
            self._json(
                200,
                {"feed": "on" if feed else "off", "events": feed.since(after) if feed else []},
                head=head,
            )
        else:
            self._static(path, head=head)

    def _static(self, path: str, *, head: bool) -> None:
        name = "index.html" if path in ("/", "") else path.lstrip("/")
        file = SITE_DIR / name
        if not _STATIC_NAME.fullmatch(name) or not file.is_file():
            self._send(404, b"not found\n", "text/plain; charset=utf-8", head=head)
            return
        content_type = CONTENT_TYPES[file.suffix]
        self._send(200, file.read_bytes(), content_type, head=head)

    def _json(self, status: int, body: Any, *, head: bool) -> None:
        data = json.dumps(body, ensure_ascii=False).encode("utf-8")
        self._send(status, data, "application/json; charset=utf-8", head=head)

    def _send(self, status: int, data: bytes, content_type: str, *, head: bool) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Referrer-Policy", "strict-origin-when-cross-origin")
        if content_type.startswith("text/html"):
            self.send_header("Content-Security-Policy", self.server.demo.content_security_policy())
        self.end_headers()
        if not head:
            self.wfile.write(data)


class DemoServer:
    """The demo checkout page and its tiny backend; ``start()`` serves in a daemon thread."""

    def __init__(
        self,
        port: int = DEFAULT_PORT,
        *,
        api_url: str,
        sandbox_url: str,
        moto_endpoint: str | None = None,
        bus_name: str | None = None,
        secret_token: str = DEFAULT_SECRET_TOKEN,
        region: str = DEFAULT_REGION,
        host: str = LOOPBACK,
        log_sink: LogSink | None = None,
        merchant_credentials: tuple[str, str] = LOCAL_MERCHANT_CREDENTIALS,
    ) -> None:
        self.port = port
        self.host = host
        self.api_url = api_url.rstrip("/")
        self.sandbox_url = sandbox_url.rstrip("/")
        self.moto_endpoint = moto_endpoint
        self.bus_name = bus_name
        self.region = region
        self.log_sink = log_sink
        # Used only here, server-side, to read the sandbox's catalogue: this process plays the
        # merchant's backend. It is never sent to the page (see ``page_config``).
        self._secret_token = secret_token
        # The merchant backend's AWS credentials (access key id, secret), to sign POST /checkouts:
        # the local stack's dummy ones by default. Never sent to the page either.
        self._merchant_credentials = merchant_credentials
        # The checkouts this server registered, by order code (the page knows only that): checkoutId.
        self.registered: collections.OrderedDict[str, str] = collections.OrderedDict()
        self._registered_lock = threading.Lock()
        self.feed: EventFeed | None = None
        self._server: _HTTPServer | None = None
        self._thread: threading.Thread | None = None

    def _log(self, line: str) -> None:
        if self.log_sink is not None:
            self.log_sink("demo", line)
        else:
            LOG.info("%s", line)

    # -- lifecycle --

    def start(self) -> DemoServer:
        if self._server is not None:
            return self
        server = _HTTPServer((self.host, self.port), _Handler)
        server.demo = self
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.1}, name="demo-http", daemon=True
        )
        self._thread.start()
        if self.moto_endpoint and self.bus_name:
            feed = EventFeed(self.moto_endpoint, self.bus_name, region=self.region, log=self._log)
            try:
                self.feed = feed.start()
            except Exception as exc:  # noqa: BLE001 - the page still works, without its feed
                self._log(f"live event feed off: no bus {self.bus_name} at {self.moto_endpoint} ({exc})")
                feed.stop()
        self._log(f"demo checkout on {self.url}/ (API {self.api_url}, feed {'on' if self.feed else 'off'})")
        return self

    def stop(self) -> None:
        if self.feed is not None:
            self.feed.stop()
            self.feed = None
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> DemoServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("DemoServer is not started")
        return f"http://{self.host}:{self._server.server_address[1]}"

    # -- what the page gets --

    def page_config(self) -> dict[str, Any]:
        """What the page needs to know: public addresses only, never the Secret-Token."""
        return {"apiUrl": self.api_url, "sandboxUrl": self.sandbox_url, "feed": self.feed is not None}

    def content_security_policy(self) -> str:
        return "; ".join(
            [
                "default-src 'self'",
                "script-src 'self'",
                "style-src 'self'",
                "img-src 'self' data:",
                f"connect-src 'self' {_origin(self.api_url)}",
                # The pay page, then (after StepPay's redirect) this site's own result page.
                f"frame-src 'self' {_origin(self.sandbox_url)}",
                "frame-ancestors 'self'",
                "base-uri 'none'",
                "form-action 'none'",
                "object-src 'none'",
            ]
        )

    def catalogue(self) -> tuple[int, dict[str, Any]]:
        """The products on sale and the customer to order for, read from the sandbox server-side.

        StepPay's product list needs the Secret-Token, which may never reach a browser; a real shop
        would keep its own catalogue and know its signed-in customer. Here the demo server is that
        backend: it asks the sandbox with the local token and passes on only what the page shows.
        """
        try:
            products = self._steppay("/api/v1/products?size=100")
            customers = self._steppay("/api/v1/customers?size=1")
        except (OSError, ValueError) as exc:
            return 502, {"error": {"code": "catalogue_unavailable", "message": str(exc)[:200]}}
        items = []
        for product in products.get("content", []):
            if product.get("status") not in (None, "SALE"):
                continue
            for price in product.get("prices", []):
                recurring = price.get("recurring")
                items.append(
                    {
                        "productCode": product["code"],
                        "name": product.get("name"),
                        "description": product.get("description"),
                        "priceCode": price["code"],
                        "planName": price.get("planName"),
                        "price": price.get("price"),
                        "currency": price.get("currency"),
                        "kind": "subscription" if recurring else "one_time",
                        "interval": (recurring or {}).get("interval"),
                        "intervalCount": (recurring or {}).get("intervalCount"),
                    }
                )
        content = customers.get("content") or [{}]
        customer = {"id": content[0].get("id"), "name": content[0].get("name")}
        return 200, {"customer": customer, "items": items}

    def _steppay(self, path: str) -> dict[str, Any]:
        request = urllib.request.Request(  # noqa: S310 - the configured sandbox URL (http on loopback)
            self.sandbox_url + path,
            headers={"Secret-Token": self._secret_token, "Accept": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310
                body = json.loads(response.read().decode("utf-8"))
        except urllib.error.HTTPError as exc:
            raise OSError(f"StepPay answered {exc.code} for {urlsplit(path).path}") from None
        if not isinstance(body, dict):
            raise ValueError("unexpected answer from StepPay")
        return body

    # -- the merchant's backend: registering what is sold --

    def checkout_client(self) -> Any:
        """A ``steppay_merchant.CheckoutClient`` of the bundle's API, signing with this shop's keys."""
        from botocore.credentials import Credentials

        merchant = merchant_module()
        access_key, secret_key = self._merchant_credentials
        return merchant.CheckoutClient(
            self.api_url, region=self.region, credentials=Credentials(access_key, secret_key), timeout=30
        )

    def shop_origin(self, host_header: str | None) -> str:
        """This site's origin as the browser addressed it (127.0.0.1 or localhost), else ``self.url``.

        The result page must come back on the shop page's own origin: popup and iframe hand their
        result over by postMessage to that origin only. Any other Host header is not believed.
        """
        own = self.url
        if host_header:
            parts = urlsplit(f"http://{host_header}")
            try:
                port = parts.port
            except ValueError:
                return own
            if parts.hostname in _LOCAL_HOSTS and port == int(own.rsplit(":", 1)[1]):
                return f"http://{parts.hostname}:{port}"
        return own

    def _return_url(self, origin: str, mode: str, landing: str, lang: str) -> str:
        # The mode and which of the three URLs it was travel in our own parameters; StepPay appends
        # order_id, order_code and status (no status on cancel).
        return f"{origin}/result.html?" + urlencode({"mode": mode, "return": landing, "lang": lang})

    @staticmethod
    def _page_choice(raw: bytes) -> tuple[str, str, str]:
        """The page's choice (product, mode, lang) from its JSON body; anything else is refused."""
        try:
            choice = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            raise CheckoutRefused(400, "invalid_request", "the body must be a JSON object") from None
        if not isinstance(choice, dict):
            raise CheckoutRefused(400, "invalid_request", "the body must be a JSON object")
        unknown = sorted(set(choice) - CHECKOUT_FIELDS)
        if unknown:
            # What is sold, its price and quantity are this server's to decide, never the page's.
            raise CheckoutRefused(
                400,
                "invalid_request",
                f"unknown field(s) {', '.join(unknown)}: the page chooses only product, mode and lang",
            )
        product, mode, lang = choice.get("product"), choice.get("mode"), choice.get("lang", "ko")
        if not isinstance(product, str) or not product:
            raise CheckoutRefused(400, "invalid_request", "product (a catalogue price code) is required")
        if mode not in MODES:
            raise CheckoutRefused(400, "invalid_request", f"mode must be one of {', '.join(MODES)}")
        if lang not in LANGS:
            raise CheckoutRefused(400, "invalid_request", f"lang must be one of {', '.join(LANGS)}")
        return product, str(mode), str(lang)

    def checkout_for_page(self, raw: bytes, headers: Any) -> dict[str, Any]:
        """``POST /api/checkout``: register what the page chose, signed; the page gets the pay link only."""
        content_type = (headers.get("Content-Type") or "").split(";")[0].strip().lower()
        if content_type != "application/json":
            raise CheckoutRefused(415, "unsupported_media_type", "send application/json")
        origin = self.shop_origin(headers.get("Host"))
        page_origin = headers.get("Origin")
        if page_origin is not None and page_origin != origin:
            raise CheckoutRefused(
                403, "forbidden_origin", "checkouts are asked for by this shop's pages only"
            )
        product, mode, lang = self._page_choice(raw)

        status, catalogue = self.catalogue()
        if status != 200:
            raise CheckoutRefused(502, "catalogue_unavailable", catalogue["error"]["message"])
        item = next((i for i in catalogue["items"] if i["priceCode"] == product), None)
        if item is None:
            raise CheckoutRefused(400, "unknown_product", "no such product on sale")
        customer_id = catalogue["customer"].get("id")
        if customer_id is None:
            raise CheckoutRefused(502, "catalogue_unavailable", "no customer to order for")

        merchant_ref = f"demo-{uuid.uuid4().hex}"  # the shop's own cart id
        body: dict[str, Any] = {
            "merchantRef": merchant_ref,
            "customerId": customer_id,
            "items": [
                {
                    "productCode": item["productCode"],
                    "priceCode": item["priceCode"],
                    "currency": item["currency"],
                    "quantity": 1,
                }
            ],
            "successUrl": self._return_url(origin, mode, "success", lang),
            "errorUrl": self._return_url(origin, mode, "error", lang),
            "cancelUrl": self._return_url(origin, mode, "cancel", lang),
            "lang": lang,
        }
        expected = _amount(item.get("price"))
        if expected is not None:
            body["expectedAmount"] = expected  # the bundle checks StepPay's price against ours

        merchant = merchant_module()
        try:
            checkout = self.checkout_client().create_checkout(body, idempotency_key=merchant_ref)
        except merchant.CheckoutError as exc:
            self._log(f"checkout {merchant_ref} refused by the API: {exc.status} {exc.code}: {exc.message}")
            raise CheckoutRefused(
                502, "checkout_refused", f"the payments API refused the checkout: {exc}"[:300]
            ) from None
        except (OSError, RuntimeError, ValueError) as exc:  # requests' errors are OSErrors
            self._log(f"checkout {merchant_ref}: payments API unreachable ({exc})")
            raise CheckoutRefused(502, "checkout_unavailable", "the payments API did not answer") from None
        order_code, pay_url = checkout.get("orderCode"), checkout.get("payUrl")
        if not isinstance(order_code, str) or not isinstance(pay_url, str):
            raise CheckoutRefused(502, "checkout_unavailable", "unexpected answer from the payments API")
        with self._registered_lock:
            self.registered[order_code] = str(checkout.get("checkoutId"))
            while len(self.registered) > REGISTERED_KEPT:
                self.registered.popitem(last=False)
        self._log(
            f"checkout {checkout.get('checkoutId')} ({merchant_ref}) registered: {order_code}, "
            f"{checkout.get('amount')} {checkout.get('currency')}, {mode}"
        )
        return {"payUrl": pay_url, "orderCode": order_code}

    def merchant_view(self, order_code: str) -> tuple[int, dict[str, Any]]:
        """``GET /api/checkout/<orderCode>``: the bundle's record of a checkout this server registered."""
        with self._registered_lock:
            checkout_id = self.registered.get(order_code) if _ORDER_CODE.fullmatch(order_code) else None
        if checkout_id is None:
            return 404, {
                "error": {"code": "not_found", "message": "no checkout of this shop has this order code"}
            }
        merchant = merchant_module()
        try:
            return 200, dict(self.checkout_client().get_checkout(checkout_id))
        except merchant.CheckoutError as exc:
            return 502, {"error": {"code": "checkout_refused", "message": str(exc)[:300]}}
        except (OSError, RuntimeError, ValueError):
            return 502, {
                "error": {"code": "checkout_unavailable", "message": "the payments API did not answer"}
            }


def wait_for(url: str, timeout: float = 10.0) -> bool:
    """True once ``url`` answers (any status); for scripts starting the server."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=1):  # noqa: S310
                return True
        except urllib.error.HTTPError:
            return True
        except OSError:
            time.sleep(0.1)
    return False
