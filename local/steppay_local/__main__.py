"""``python -m steppay_local run | tap | invoke`` (see local/README.md)."""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path
from types import FrameType
from typing import Any

from steppay_local import LOOPBACK
from steppay_local._util import StreamLogSink, client
from steppay_local.stack import ENVIRONMENT_VARIABLES, LocalStack, LocalStackConfig
from steppay_local.template import TAP_QUEUE_NAME, Template, create_infrastructure
from steppay_local.workers import InvocationError, LocalFunction, function_environment


def _config(args: argparse.Namespace) -> LocalStackConfig:
    overrides: dict[str, Any] = {}
    for name in ("api_port", "dynamodb_port", "moto_port", "sandbox_port"):
        value = getattr(args, name, None)
        if value is not None:
            overrides[name] = value
    config = LocalStackConfig.from_env(**overrides)
    if getattr(args, "data_dir", None):
        config = replace(config, data_dir=Path(args.data_dir).resolve())
    if getattr(args, "in_memory", False):
        config = replace(config, data_dir=None)
    if getattr(args, "template", None):
        config = replace(config, template_path=Path(args.template).resolve())
    return config


def _run(args: argparse.Namespace) -> int:
    config = replace(_config(args), echo=sys.stdout)
    stack = LocalStack(config)
    stopping = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        if stopping.is_set():  # a second Ctrl-C: leave now; the children notice their parent is gone
            print("\nforced exit", flush=True)
            os._exit(130)
        stopping.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    print("starting the local stack ...", flush=True)
    try:
        stack.start()
        print("\nlocal stack ready (Ctrl-C stops everything):\n" + stack.summary() + "\n", flush=True)
        while not stopping.wait(0.5):
            pass
        print("\nstopping the local stack ...", flush=True)
    finally:
        stack.stop()
    print("stopped.", flush=True)
    return 0


def _tap(args: argparse.Namespace) -> int:
    config = _config(args)
    endpoint = f"http://{LOOPBACK}:{config.moto_port}"
    sqs = client("sqs", endpoint, config.region)
    try:
        url = sqs.get_queue_url(QueueName=TAP_QUEUE_NAME)["QueueUrl"]
    except Exception as exc:  # noqa: BLE001 - tell the user what to do
        print(f"no {TAP_QUEUE_NAME} queue at {endpoint} ({exc}); is `make run` running?", file=sys.stderr)
        return 1
    print(f"reading {url} (events are removed from the tap as they are printed)", file=sys.stderr)
    try:
        while True:
            messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1).get(
                "Messages", []
            )
            for message in messages:
                body = json.loads(message["Body"])
                print(json.dumps(body, indent=None if args.compact else 2, ensure_ascii=False), flush=True)
                sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
            if not messages and not args.follow:
                return 0
    except KeyboardInterrupt:
        return 0


def _invoke(args: argparse.Namespace) -> int:
    """Invoke one function once against the running local stack's services (like `sam local invoke`)."""
    config = _config(args)
    stack = LocalStack(config)  # only for its parameter and environment rules; nothing is started
    stack.sandbox_url = f"http://{LOOPBACK}:{config.sandbox_port}" if config.sandbox else None
    ddb = f"http://{LOOPBACK}:{config.dynamodb_port}"
    moto = f"http://{LOOPBACK}:{config.moto_port}"
    template = Template(
        stack.template_path,
        stack.parameter_overrides(),
        stack_name=config.stack_name,
        region=config.region,
        moto_endpoint=moto,
    )
    create_infrastructure(template, ddb, moto)
    spec = template.function(args.function)
    if args.event == "-":
        event: Any = json.load(sys.stdin)
    elif args.event:
        event = json.loads(Path(args.event).read_text(encoding="utf-8"))
    else:
        event = {}
    environment = function_environment(
        spec,
        region=config.region,
        dynamodb_endpoint=ddb,
        moto_endpoint=moto,
        overrides=stack.environment_overrides(),
    )
    function = LocalFunction(spec, environment, log_sink=StreamLogSink(sys.stderr), max_concurrency=1)
    try:
        print(json.dumps(function.invoke(event), indent=2, ensure_ascii=False))
        return 0
    except InvocationError as exc:
        print(json.dumps(exc.payload, indent=2), file=sys.stderr)
        return 1
    finally:
        function.stop()


def main(argv: list[str] | None = None) -> int:
    env_help = "\n".join(f"  {name:<24} {text}" for name, text in ENVIRONMENT_VARIABLES.items())
    parser = argparse.ArgumentParser(
        prog="python -m steppay_local",
        description="The bundle's local stack (DynamoDB Local, moto, StepPay sandbox, local API).",
        epilog=f"environment variables:\n{env_help}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging of the stack itself")
    commands = parser.add_subparsers(dest="command", required=True)

    def ports(sub: argparse.ArgumentParser) -> None:
        sub.add_argument("--api-port", type=int)
        sub.add_argument("--dynamodb-port", type=int)
        sub.add_argument("--moto-port", type=int)
        sub.add_argument("--sandbox-port", type=int)
        sub.add_argument("--template", help="template file (default: template.yaml at the repository root)")

    run = commands.add_parser("run", help="start everything in the foreground until Ctrl-C")
    ports(run)
    run.add_argument("--data-dir", help="where data is kept (LOCAL_DATA_DIR, default .local-data)")
    run.add_argument("--in-memory", action="store_true", help="keep nothing on disk")
    run.set_defaults(handler=_run)

    tap = commands.add_parser("tap", help="print the events on the bus(es), from the local-event-tap queue")
    ports(tap)
    tap.add_argument("-f", "--follow", action="store_true", help="keep waiting for more events")
    tap.add_argument("--compact", action="store_true", help="one line per event")
    tap.set_defaults(handler=_tap)

    invoke = commands.add_parser("invoke", help="invoke one function once against the running stack")
    ports(invoke)
    invoke.add_argument("function", help="logical id, e.g. PublisherFunction")
    invoke.add_argument("--event", help="JSON file with the event, or - for stdin (default: {})")
    invoke.set_defaults(handler=_invoke)

    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="[local] %(message)s",
        stream=sys.stdout,
    )
    if args.verbose:
        for noisy in ("botocore", "urllib3", "boto3"):
            logging.getLogger(noisy).setLevel(logging.INFO)
    started = time.monotonic()
    try:
        return int(args.handler(args))
    except KeyboardInterrupt:
        return 130
    finally:
        logging.getLogger("steppay_local").debug("done in %.1fs", time.monotonic() - started)


if __name__ == "__main__":
    sys.exit(main())
