"""``python -m steppay_sandbox`` (installed: ``steppay-sandbox``): run the sandbox, or drive one.

    python -m steppay_sandbox serve [--host --port --secret-token --webhook-key --webhook-url
                                     --webhook-v1 --webhook-retry-delays-ms --state-file --catalogue
                                     --timezone UTC|Asia/Seoul]
    python -m steppay_sandbox [--url URL] complete ORDER_CODE [--outcome success|failure|standby]
                                               [--quantity N | --quantity PRICE_CODE=N ...]
    python -m steppay_sandbox deposit ORDER_CODE          # pay a virtual account (after standby)
    python -m steppay_sandbox tamper ORDER_CODE [--item I] [--min-quantity N] [--max-quantity N]
                                     [--price-code C] [--product-code C] [--customer-id N] [--body JSON]
    python -m steppay_sandbox renew SUB_ID [--outcome success|failure]
    python -m steppay_sandbox status SUB_ID STATUS
    python -m steppay_sandbox refund ORDER_CODE [--amount N]
    python -m steppay_sandbox webhooks [--event E] [--order-code C]
    python -m steppay_sandbox resend DELIVERY_ID           # the original signed request, again
    python -m steppay_sandbox fault --path GLOB [--status N] [--latency-ms N] [--drop] [--count N]
    python -m steppay_sandbox fault --webhooks drop|delay [--delay-ms N] [--count N]
    python -m steppay_sandbox clear-faults | faults | state | reset | health
    python -m steppay_sandbox config [--webhook-url U] [--webhook-key K] [--webhook-versions v2,v1]
                                     [--webhook-retry-delays-ms 500,2000] [--timezone UTC|Asia/Seoul]

``serve`` options fall back to ``SANDBOX_HOST``, ``SANDBOX_PORT``, ``SANDBOX_SECRET_TOKEN``,
``SANDBOX_WEBHOOK_KEY``, ``SANDBOX_WEBHOOK_URL``, ``SANDBOX_WEBHOOK_VERSIONS`` (``v2,v1``),
``SANDBOX_STATE_FILE``, ``SANDBOX_CATALOGUE``, ``SANDBOX_TIMEZONE``,
``SANDBOX_WEBHOOK_RETRY_DELAYS_MS``; the control commands' ``--url`` to
``SANDBOX_URL`` (default ``http://127.0.0.1:8181``). Only the standard library is used.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import urllib.error
import urllib.request
from collections.abc import Sequence
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

from steppay_sandbox import __version__
from steppay_sandbox.server import DEFAULT_HOST, DEFAULT_PORT, DEFAULT_SECRET_TOKEN, DEFAULT_WEBHOOK_KEY
from steppay_sandbox.timeutil import DEFAULT_ZONE_NAME, ZONES

DEFAULT_URL = f"http://{DEFAULT_HOST}:{DEFAULT_PORT}"


def _env(name: str, default: str | None = None) -> str | None:
    value = os.environ.get(name)
    return value if value not in (None, "") else default


def _versions(value: str) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()]


def _prog() -> str:
    """``steppay-sandbox`` when run as the installed console script, else ``python -m ...``."""
    name = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else ""
    return "steppay-sandbox" if name.startswith("steppay-sandbox") else "python -m steppay_sandbox"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=_prog(), description="The local StepPay sandbox.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument(
        "--url", default=_env("SANDBOX_URL", DEFAULT_URL), help="sandbox base URL for control commands"
    )
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the sandbox in the foreground")
    serve.add_argument("--host", default=_env("SANDBOX_HOST", DEFAULT_HOST))
    serve.add_argument(
        "--port", type=int, default=int(_env("SANDBOX_PORT", str(DEFAULT_PORT)) or DEFAULT_PORT)
    )
    serve.add_argument("--secret-token", default=_env("SANDBOX_SECRET_TOKEN", DEFAULT_SECRET_TOKEN))
    serve.add_argument("--webhook-key", default=_env("SANDBOX_WEBHOOK_KEY", DEFAULT_WEBHOOK_KEY))
    serve.add_argument("--webhook-url", default=_env("SANDBOX_WEBHOOK_URL"))
    serve.add_argument(
        "--webhook-versions",
        default=_env("SANDBOX_WEBHOOK_VERSIONS", "v2"),
        help="comma-separated: v2, v1 or both",
    )
    serve.add_argument("--webhook-v1", action="store_true", help="also send the deprecated v1 webhooks")
    serve.add_argument(
        "--webhook-retry-delays-ms",
        default=_env("SANDBOX_WEBHOOK_RETRY_DELAYS_MS", ""),
        help="comma-separated delays before retrying a failed delivery (default: no retry, as StepPay)",
    )
    serve.add_argument(
        "--timezone",
        choices=tuple(ZONES),
        default=_env("SANDBOX_TIMEZONE", DEFAULT_ZONE_NAME),
        help="zone of the zone-less date-times written and read (StepPay's is unverified)",
    )
    serve.add_argument("--state-file", default=_env("SANDBOX_STATE_FILE"))
    serve.add_argument("--catalogue", default=_env("SANDBOX_CATALOGUE"), help="catalogue JSON file")
    serve.add_argument("--public-url", default=_env("SANDBOX_PUBLIC_URL"), help="base URL used in pay links")
    serve.add_argument("--verbose", "-v", action="store_true")

    complete = sub.add_parser("complete", help="pay (or fail) an order as the pay page would")
    complete.add_argument("order")
    complete.add_argument(
        "--outcome",
        choices=("success", "failure", "standby"),
        default="success",
        help="standby: issue a virtual account (VBANK), paid later by 'deposit'",
    )
    complete.add_argument(
        "--quantity",
        action="append",
        metavar="N|PRICE_CODE=N",
        help="the shopper's chosen quantity: N for every item, or PRICE_CODE=N (repeatable) per item",
    )

    tamper = sub.add_parser(
        "tamper",
        help="test only, not something StepPay does: change an unpaid order's item bounds, price or customer",
    )
    tamper.add_argument("order")
    tamper.add_argument("--item", type=int, default=0, help="which order item (0-based, default 0)")
    tamper.add_argument("--min-quantity", type=int)
    tamper.add_argument("--max-quantity", type=int)
    tamper.add_argument("--price-code")
    tamper.add_argument("--product-code")
    tamper.add_argument("--customer-id", type=int)
    tamper.add_argument("--body", help="the raw JSON body instead of the options above")

    renew = sub.add_parser("renew", help="charge a subscription's renewal")
    renew.add_argument("subscription")
    renew.add_argument("--outcome", choices=("success", "failure"), default="success")

    status = sub.add_parser("status", help="change a subscription's status")
    status.add_argument("subscription")
    status.add_argument("status")

    deposit = sub.add_parser("deposit", help="deposit into an order's virtual account (pays it)")
    deposit.add_argument("order")

    refund = sub.add_parser("refund", help="refund a paid order")
    refund.add_argument("order")
    refund.add_argument("--amount", type=int)

    webhooks = sub.add_parser("webhooks", help="show the webhook delivery log")
    webhooks.add_argument("--event")
    webhooks.add_argument("--order-code")

    resend = sub.add_parser("resend", help="send a logged webhook delivery's original request again")
    resend.add_argument("delivery", help="the deliveryId from 'webhooks'")

    fault = sub.add_parser("fault", help="inject a fault")
    fault.add_argument("--path", help="glob of request paths, e.g. '/api/v1/orders/*'")
    fault.add_argument("--method")
    fault.add_argument("--status", type=int)
    fault.add_argument("--latency-ms", type=int, default=0)
    fault.add_argument("--drop", action="store_true")
    fault.add_argument("--webhooks", choices=("drop", "delay"))
    fault.add_argument("--delay-ms", type=int, default=0)
    fault.add_argument("--count", type=int, default=1)

    sub.add_parser("clear-faults", help="remove every pending fault")
    sub.add_parser("faults", help="list pending faults")
    sub.add_parser("state", help="dump orders and subscriptions")
    sub.add_parser("reset", help="forget orders, subscriptions, faults and the delivery log")
    sub.add_parser("health", help="is the sandbox up?")

    config = sub.add_parser("config", help="show or change webhook settings")
    config.add_argument("--webhook-url")
    config.add_argument("--webhook-key")
    config.add_argument("--webhook-versions")
    config.add_argument("--webhook-retry-delays-ms", help="e.g. 500,2000; an empty string turns retries off")
    config.add_argument("--timezone", choices=tuple(ZONES))
    return parser


def call(
    base_url: str, method: str, path: str, body: Any | None = None, timeout: float = 30.0
) -> tuple[int, Any]:
    """One control-API call; returns (status, parsed JSON body)."""
    if urlsplit(base_url).scheme not in ("http", "https"):
        raise ValueError("--url must be an http(s) URL")
    data = None if body is None else json.dumps(body).encode("utf-8")
    request = urllib.request.Request(  # noqa: S310 - scheme checked above
        base_url.rstrip("/") + path, data=data, method=method, headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as exc:
        raw = exc.read()
        try:
            return exc.code, json.loads(raw or b"null")
        except ValueError:
            return exc.code, raw.decode("utf-8", "replace")


def _quantity_option(values: list[str]) -> Any:
    """``--quantity 3`` → ``3``; ``--quantity price_a=2 --quantity price_b=1`` → a map."""
    if len(values) == 1 and "=" not in values[0]:
        return _int_option(values[0], "--quantity")
    chosen: dict[str, int] = {}
    for value in values:
        code, sep, number = value.partition("=")
        if not sep or not code:
            raise CliError("--quantity is N (every item) or PRICE_CODE=N (repeatable), not both")
        chosen[code] = _int_option(number, "--quantity")
    return chosen


def _int_option(value: str, name: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise CliError(f"{name}: {value!r} is not an integer") from None


def _tamper_body(args: argparse.Namespace) -> Any:
    if args.body is not None:
        try:
            return json.loads(args.body)
        except ValueError as exc:
            raise CliError(f"--body is not JSON: {exc}") from None
    if args.item < 0:
        raise CliError("--item is a 0-based index")
    entry: dict[str, Any] = {}
    for key, value in (
        ("minimumQuantity", args.min_quantity),
        ("maximumQuantity", args.max_quantity),
        ("priceCode", args.price_code),
        ("productCode", args.product_code),
    ):
        if value is not None:
            entry[key] = value
    body: dict[str, Any] = {}
    if entry:
        body["items"] = [{} for _ in range(args.item)] + [entry]
    if args.customer_id is not None:
        body["customerId"] = args.customer_id
    if not body:
        raise CliError(
            "tamper needs --min-quantity, --max-quantity, --price-code, --product-code, "
            "--customer-id or --body"
        )
    return body


def _delays_ms(value: str) -> list[int]:
    """``500,2000`` → ``[500, 2000]`` (milliseconds); ``""`` → no retries."""
    return [_int_option(v.strip(), "--webhook-retry-delays-ms") for v in value.split(",") if v.strip()]


class CliError(Exception):
    """A usage error in a control command's options (exit code 2)."""


def _control(args: argparse.Namespace) -> tuple[str, str, Any]:
    command = args.command
    if command == "complete":
        body: dict[str, Any] = {"outcome": args.outcome}
        if args.quantity:
            body["quantity"] = _quantity_option(args.quantity)
        return "POST", f"/_sandbox/orders/{quote(args.order, safe='')}/complete", body
    if command == "tamper":
        return "POST", f"/_sandbox/orders/{quote(args.order, safe='')}/tamper", _tamper_body(args)
    if command == "renew":
        return (
            "POST",
            f"/_sandbox/subscriptions/{quote(args.subscription, safe='')}/renew",
            {"outcome": args.outcome},
        )
    if command == "status":
        return (
            "POST",
            f"/_sandbox/subscriptions/{quote(args.subscription, safe='')}/status",
            {"status": args.status},
        )
    if command == "deposit":
        return "POST", f"/_sandbox/orders/{quote(args.order, safe='')}/deposit", {}
    if command == "resend":
        return "POST", f"/_sandbox/webhooks/{quote(args.delivery, safe='')}/resend", {}
    if command == "refund":
        body = {} if args.amount is None else {"amount": args.amount}
        return "POST", f"/_sandbox/orders/{quote(args.order, safe='')}/refund", body
    if command == "webhooks":
        query = {k: v for k, v in (("event", args.event), ("orderCode", args.order_code)) if v}
        return "GET", "/_sandbox/webhooks" + (f"?{urlencode(query)}" if query else ""), None
    if command == "fault":
        if args.webhooks:
            return (
                "POST",
                "/_sandbox/faults",
                {"webhooks": args.webhooks, "delayMs": args.delay_ms, "count": args.count},
            )
        fault: dict[str, Any] = {
            "path": args.path,
            "latencyMs": args.latency_ms,
            "drop": args.drop,
            "count": args.count,
        }
        if args.status is not None:
            fault["status"] = args.status
        if args.method:
            fault["method"] = args.method
        return "POST", "/_sandbox/faults", fault
    if command == "clear-faults":
        return "DELETE", "/_sandbox/faults", None
    if command == "faults":
        return "GET", "/_sandbox/faults", None
    if command == "state":
        return "GET", "/_sandbox/state", None
    if command == "reset":
        return "POST", "/_sandbox/reset", {}
    if command == "health":
        return "GET", "/_sandbox/health", None
    if command == "config":
        changes: dict[str, Any] = {}
        if args.webhook_url is not None:
            changes["webhookUrl"] = args.webhook_url
        if args.webhook_key is not None:
            changes["webhookKey"] = args.webhook_key
        if args.webhook_versions is not None:
            changes["webhookVersions"] = _versions(args.webhook_versions)
        if args.webhook_retry_delays_ms is not None:
            changes["webhookRetryDelaysMs"] = _delays_ms(args.webhook_retry_delays_ms)
        if args.timezone is not None:
            changes["timezone"] = args.timezone
        return ("POST", "/_sandbox/config", changes) if changes else ("GET", "/_sandbox/config", None)
    raise SystemExit(f"unknown command {command!r}")


def serve(args: argparse.Namespace) -> int:
    from steppay_sandbox.server import SandboxServer

    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO, format="%(asctime)s %(message)s"
    )
    versions = _versions(args.webhook_versions)
    if args.webhook_v1 and "v1" not in versions:
        versions.append("v1")
    try:
        retry_delays = [ms / 1000 for ms in _delays_ms(args.webhook_retry_delays_ms)]
    except CliError as exc:
        print(str(exc), file=sys.stderr)
        return 2
    server = SandboxServer(
        host=args.host,
        port=args.port,
        secret_token=args.secret_token,
        webhook_key=args.webhook_key,
        webhook_url=args.webhook_url,
        webhook_versions=versions,
        state_file=args.state_file,
        catalogue_path=args.catalogue,
        public_url=args.public_url,
        webhook_retry_delays=retry_delays,
        timezone=args.timezone,
    )

    def _terminate(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _terminate)
    server.start()
    print(
        f"StepPay sandbox on {server.url} (webhooks: {args.webhook_url or 'not configured'}, "
        f"date-times in {server.timezone})",
        flush=True,
    )
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "serve":
        return serve(args)
    if args.command == "fault" and not args.webhooks and not args.path:
        print("fault needs --path (inbound) or --webhooks drop|delay", file=sys.stderr)
        return 2
    try:
        method, path, body = _control(args)
    except CliError as exc:
        print(str(exc), file=sys.stderr)
        return 2
    try:
        status, payload = call(args.url, method, path, body)
    except (OSError, ValueError) as exc:
        print(f"cannot reach the sandbox at {args.url}: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(payload, ensure_ascii=False, indent=2))
    return 0 if 200 <= status < 300 else 1
