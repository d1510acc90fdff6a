"""``python -m steppay_sandbox``: run the sandbox, or drive a running one.

    python -m steppay_sandbox serve [--host --port --secret-token --webhook-key --webhook-url
                                     --webhook-v1 --state-file --catalogue]
    python -m steppay_sandbox [--url URL] complete ORDER_CODE [--outcome success|failure]
    python -m steppay_sandbox renew SUB_ID [--outcome success|failure]
    python -m steppay_sandbox status SUB_ID STATUS
    python -m steppay_sandbox refund ORDER_CODE [--amount N]
    python -m steppay_sandbox webhooks [--event E] [--order-code C]
    python -m steppay_sandbox fault --path GLOB [--status N] [--latency-ms N] [--drop] [--count N]
    python -m steppay_sandbox fault --webhooks drop|delay [--delay-ms N] [--count N]
    python -m steppay_sandbox clear-faults | faults | state | reset | health
    python -m steppay_sandbox config [--webhook-url U] [--webhook-key K] [--webhook-versions v2,v1]

``serve`` options fall back to ``SANDBOX_HOST``, ``SANDBOX_PORT``, ``SANDBOX_SECRET_TOKEN``,
``SANDBOX_WEBHOOK_KEY``, ``SANDBOX_WEBHOOK_URL``, ``SANDBOX_WEBHOOK_VERSIONS`` (``v2,v1``),
``SANDBOX_STATE_FILE``, ``SANDBOX_CATALOGUE``; the control commands' ``--url`` to
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

from steppay_sandbox.server import DEFAULT_HOST, DEFAULT_PORT, DEFAULT_SECRET_TOKEN, DEFAULT_WEBHOOK_KEY

DEFAULT_URL = f"http://{DEFAULT_HOST}:{DEFAULT_PORT}"


def _env(name: str, default: str | None = None) -> str | None:
    value = os.environ.get(name)
    return value if value not in (None, "") else default


def _versions(value: str) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m steppay_sandbox", description="The local StepPay sandbox."
    )
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
    serve.add_argument("--state-file", default=_env("SANDBOX_STATE_FILE"))
    serve.add_argument("--catalogue", default=_env("SANDBOX_CATALOGUE"), help="catalogue JSON file")
    serve.add_argument("--public-url", default=_env("SANDBOX_PUBLIC_URL"), help="base URL used in pay links")
    serve.add_argument("--verbose", "-v", action="store_true")

    complete = sub.add_parser("complete", help="pay (or fail) an order as the pay page would")
    complete.add_argument("order")
    complete.add_argument("--outcome", choices=("success", "failure"), default="success")

    renew = sub.add_parser("renew", help="charge a subscription's renewal")
    renew.add_argument("subscription")
    renew.add_argument("--outcome", choices=("success", "failure"), default="success")

    status = sub.add_parser("status", help="change a subscription's status")
    status.add_argument("subscription")
    status.add_argument("status")

    refund = sub.add_parser("refund", help="refund a paid order")
    refund.add_argument("order")
    refund.add_argument("--amount", type=int)

    webhooks = sub.add_parser("webhooks", help="show the webhook delivery log")
    webhooks.add_argument("--event")
    webhooks.add_argument("--order-code")

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


def _control(args: argparse.Namespace) -> tuple[str, str, Any]:
    command = args.command
    if command == "complete":
        return "POST", f"/_sandbox/orders/{quote(args.order, safe='')}/complete", {"outcome": args.outcome}
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
    )

    def _terminate(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _terminate)
    server.start()
    print(f"StepPay sandbox on {server.url} (webhooks: {args.webhook_url or 'not configured'})", flush=True)
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
    method, path, body = _control(args)
    try:
        status, payload = call(args.url, method, path, body)
    except (OSError, ValueError) as exc:
        print(f"cannot reach the sandbox at {args.url}: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(payload, ensure_ascii=False, indent=2))
    return 0 if 200 <= status < 300 else 1
