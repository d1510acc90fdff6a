"""Warm latency through the local API (`make run`'s stack): HTTP in, payload-2.0 event, warm worker
process, response out; measured by a client with one kept-alive connection.

The stack shares DynamoDB Local and moto with the in-process run and has its own sandbox (with
webhook delivery off, so nothing but the measured requests runs through the API). Its event
sources keep running as in `make run`: the publisher follows the table's stream and the webhook
processor the queue, in their own worker processes.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import requests
from botocore.credentials import Credentials

from bench.backends import (
    REGION,
    ROOT,
    Backends,
    ConnectionCounter,
    SandboxControl,
    checkout_body,
    fresh_webhook,
)
from bench.warm import ENDPOINTS, Series, timed
from steppay_local.stack import LocalStack, LocalStackConfig
from steppay_merchant import SigV4RequestsAuth

# The merchant backend's credentials on the local stack: its API accepts only these (SigV4 for
# execute-api, as API Gateway checks an AWS_IAM route).
MERCHANT_AUTH = SigV4RequestsAuth(REGION, Credentials("local", "local"))


class LocalApiBench:
    def __init__(self, backends: Backends, log_file: Path) -> None:
        config = LocalStackConfig(
            root=ROOT,
            stack_name="steppay-bench-api",
            api_port=0,
            sandbox_port=0,
            data_dir=None,
            dynamodb_endpoint=backends.dynamodb.endpoint_url,
            moto_endpoint=backends.moto.endpoint_url,
            log_file=log_file,
            sandbox_options={"webhook_url": None},
            reload_on_change=False,
        )
        self.stack = LocalStack(config).start()
        assert self.stack.sandbox_url is not None
        self.control = SandboxControl(self.stack.sandbox_url, token=config.secret_token)
        self.key = config.webhook_keys.split(",")[0]
        self.sandbox_connections = ConnectionCounter(self.stack.sandbox)
        self.http = requests.Session()
        self.url = self.stack.api_url
        self._webhooks_used: set[str] = set()

    def stop(self) -> None:
        self.stack.stop()

    def _expect(self, response: requests.Response, status: int) -> requests.Response:
        if response.status_code != status:
            raise RuntimeError(
                f"{response.request.method} {response.url}: {response.status_code} {response.text}"
            )
        return response

    def checkout(self) -> str:
        """Register a checkout as the merchant's backend does: signed, a fresh merchantRef."""
        response = self.http.post(
            f"{self.url}/checkouts", json=checkout_body(), auth=MERCHANT_AUTH, timeout=30
        )
        return str(self._expect(response, 201).json()["orderCode"])

    def verify(self, code: str) -> None:
        body = {"orderCode": code, "status": "success"}
        response = self.http.post(f"{self.url}/payments/verify", json=body, timeout=30)
        if self._expect(response, 200).json()["verdict"] != "PAID":
            raise RuntimeError(f"{code} not paid: {response.text}")

    def callback(self, code: str) -> None:
        params = {"order_code": code, "status": "success"}
        response = self.http.get(
            f"{self.url}/payments/callback", params=params, allow_redirects=False, timeout=30
        )
        if "result=paid" not in self._expect(response, 303).headers["Location"]:
            raise RuntimeError(f"{code} not paid: {response.headers}")

    def webhook(self, raw: bytes, headers: dict[str, str]) -> None:
        response = self.http.post(f"{self.url}/webhooks/steppay", data=raw, headers=headers, timeout=30)
        self._expect(response, 200)

    def paid_orders(self, count: int) -> list[str]:
        codes = [self.checkout() for _ in range(count)]
        for code in codes:
            self.control.complete(code)
        return codes

    def webhooks(self, count: int) -> list[tuple[bytes, dict[str, str]]]:
        found = []
        for delivery in self.control.webhooks():
            key = json.dumps([delivery["event"], json.loads(delivery["body"])["data"]], sort_keys=True)
            if delivery["version"] == "v2" and key not in self._webhooks_used:
                self._webhooks_used.add(key)
                found.append(fresh_webhook(delivery, self.key))
            if len(found) == count:
                return found
        raise RuntimeError(f"only {len(found)} unused webhooks recorded, {count} needed")

    def run(self, iterations: int, warmup: int, progress: Callable[[str], None] = print) -> dict[str, Any]:
        total = iterations + warmup
        series = {name: Series() for name in ENDPOINTS}

        def measure(name: str, call: Callable[[int], Any]) -> None:
            progress(f"  local API: {ENDPOINTS[name]} x {iterations}")
            for i in range(total):
                _, wall, cpu = timed(lambda i=i: call(i))  # type: ignore[misc]
                if i >= warmup:
                    series[name].add(wall, cpu)

        callback_codes = self.paid_orders(total)
        codes: list[str] = []
        measure("checkout", lambda i: codes.append(self.checkout()))
        for code in codes:
            self.control.complete(code)
        measure("verify", lambda i: self.verify(codes[i]))
        measure("callback", lambda i: self.callback(callback_codes[i]))
        hooks = self.webhooks(total)  # signed now: well within the intake's tolerance
        measure("webhook", lambda i: self.webhook(*hooks[i]))
        return {name: s.summary() for name, s in series.items()}

    def reuse(self, invocations: int = 100) -> dict[str, Any]:
        """New connections the stack's sandbox accepts over `invocations` warm verifications."""
        codes = self.paid_orders(invocations + 5)
        for code in codes[:5]:  # the warm worker is there and connected
            self.verify(code)
        self.sandbox_connections.reset()
        for code in codes[5:]:
            self.verify(code)
        return {
            "invocations": invocations,
            "sandbox_new_connections": self.sandbox_connections.count,
            "note": "from the VerifyFunction worker process(es) of the local stack",
        }
