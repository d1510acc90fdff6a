"""``python -m steppay_demo``: serve the demo checkout page next to a running local stack (`make run`)."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import threading

from steppay_demo.server import DEFAULT_PORT, DEFAULT_SECRET_TOKEN, LOCAL_MERCHANT_CREDENTIALS, DemoServer


def main(argv: list[str] | None = None) -> int:
    env = os.environ
    parser = argparse.ArgumentParser(prog="python -m steppay_demo", description=__doc__)
    parser.add_argument("--port", type=int, default=int(env.get("DEMO_PORT", DEFAULT_PORT)))
    parser.add_argument(
        "--api-url", default=f"http://127.0.0.1:{env.get('LOCAL_API_PORT', '3000')}", help="the bundle's API"
    )
    parser.add_argument("--sandbox-url", default=f"http://127.0.0.1:{env.get('SANDBOX_PORT', '8181')}")
    parser.add_argument(
        "--moto-endpoint",
        default=f"http://127.0.0.1:{env.get('MOTO_PORT', '5010')}",
        help="moto (EventBridge, SQS) for the live event feed; '' turns the feed off",
    )
    parser.add_argument("--bus-name", default="steppay-payments-local", help="the bus to show events of")
    parser.add_argument("--region", default=env.get("AWS_REGION", "ap-northeast-2"), help="the API's region")
    args = parser.parse_args(argv)
    # The merchant backend's keys to sign POST /checkouts: the local stack's dummy ones unless given.
    credentials = (
        env.get("DEMO_MERCHANT_ACCESS_KEY_ID") or LOCAL_MERCHANT_CREDENTIALS[0],
        env.get("DEMO_MERCHANT_SECRET_ACCESS_KEY") or LOCAL_MERCHANT_CREDENTIALS[1],
    )
    logging.basicConfig(level=logging.INFO, format="[demo] %(message)s")
    demo = DemoServer(
        args.port,
        api_url=args.api_url,
        sandbox_url=args.sandbox_url,
        moto_endpoint=args.moto_endpoint or None,
        bus_name=args.bus_name or None,
        secret_token=env.get("STEPPAY_SECRET_TOKEN") or DEFAULT_SECRET_TOKEN,
        region=args.region,
        merchant_credentials=credentials,
    ).start()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        stop.wait()
    except KeyboardInterrupt:
        pass
    finally:
        demo.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
