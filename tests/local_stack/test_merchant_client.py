"""merchant/steppay_merchant.py: its signatures verify with the local API's verifier; the client's errors.

A tiny stub HTTP server stands in for the API: it checks every request with the local API's SigV4
verifier (``steppay_local.api.verify_sigv4``) and answers what the test asks.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import requests
from botocore.credentials import Credentials

from steppay_local.api import SigV4Refusal, iam_identity, verify_sigv4
from steppay_local.stack import LocalStack
from steppay_merchant import CheckoutClient, CheckoutError, SigV4RequestsAuth, sign_request

LOCAL = Credentials("local", "local")
REGION = "ap-northeast-2"

Answer = Callable[[str, str, bytes, dict[str, str]], tuple[int, Any]]


@dataclass
class Stub:
    url: str
    answer: Answer
    seen: list[dict[str, Any]] = field(default_factory=list)


@pytest.fixture
def stub() -> Iterator[Stub]:
    state = Stub("", lambda method, target, body, headers: (200, {}))

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            raw_path, _, raw_query = self.path.partition("?")
            headers = {k.lower(): v for k, v in self.headers.items()}
            try:
                identity = verify_sigv4(self.command, raw_path, raw_query, self.headers.items(), body)
            except SigV4Refusal as refusal:
                status, payload = 403, {"message": refusal.message}
            else:
                state.seen.append(
                    {
                        "method": self.command,
                        "target": self.path,
                        "body": body,
                        "headers": headers,
                        "id": identity,
                    }
                )
                status, payload = state.answer(self.command, self.path, body, headers)
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_POST = do_GET

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}/prod"
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()


def test_sign_request_verifies_with_the_local_verifier() -> None:
    url = "http://127.0.0.1:3000/checkouts?merchantRef=order%201"
    body = b'{"amount":1000}'
    headers = sign_request(
        "POST",
        url,
        body=body,
        headers={"Content-Type": "application/json", "Idempotency-Key": "k-1"},
        credentials=LOCAL,
        region=REGION,
    )
    assert headers["Content-Type"] == "application/json" and headers["Idempotency-Key"] == "k-1"
    assert headers["Authorization"].startswith("AWS4-HMAC-SHA256 Credential=local/")
    assert "/ap-northeast-2/execute-api/aws4_request" in headers["Authorization"]
    assert "content-type;host;idempotency-key;x-amz-date" in headers["Authorization"]
    received = [*headers.items(), ("Host", "127.0.0.1:3000"), ("User-Agent", "anything")]
    assert verify_sigv4("POST", "/checkouts", "merchantRef=order%201", received, body) == iam_identity()
    with pytest.raises(SigV4Refusal):
        verify_sigv4("POST", "/checkouts", "merchantRef=order%201", received, b'{"amount":1}')
    changed = [(k, "k-2" if k == "Idempotency-Key" else v) for k, v in received]
    with pytest.raises(SigV4Refusal):
        verify_sigv4("POST", "/checkouts", "merchantRef=order%201", changed, body)


def test_sign_request_uses_botocores_default_chain(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "local")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "local")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    headers = sign_request("GET", "http://127.0.0.1:3000/checkouts/c-1", body=None, headers={})
    received = [*headers.items(), ("Host", "127.0.0.1:3000")]
    assert verify_sigv4("GET", "/checkouts/c-1", "", received, b"") == iam_identity()
    monkeypatch.setenv("AWS_SESSION_TOKEN", "session")
    headers = sign_request("GET", "http://127.0.0.1:3000/x", body=None, headers={}, region=REGION)
    assert headers["X-Amz-Security-Token"] == "session"


def test_requests_auth_signs_what_requests_sends(stub: Stub) -> None:
    response = requests.post(
        f"{stub.url}/anything?b=2&a=%ED%95%9C",
        json={"a": "한"},
        headers={"X-Custom": "v"},
        auth=SigV4RequestsAuth(REGION, LOCAL),
        timeout=10,
    )
    assert response.status_code == 200, response.text
    [seen] = stub.seen
    assert seen["id"] == iam_identity()
    assert "x-custom" in seen["headers"]["authorization"]
    bad = requests.get(f"{stub.url}/x", auth=SigV4RequestsAuth(REGION, Credentials("local", "x")), timeout=10)
    assert bad.status_code == 403


def test_checkout_client_calls_and_signs_each_route(stub: Stub) -> None:
    def answer(method: str, target: str, body: bytes, headers: dict[str, str]) -> tuple[int, Any]:
        return (201 if method == "POST" else 200), {"checkoutId": "c-1", "target": target}

    stub.answer = answer
    client = CheckoutClient(stub.url, region=REGION, credentials=LOCAL)
    created = client.create_checkout({"merchantRef": "order 1", "amount": 1000}, idempotency_key="k-1")
    assert created == {"checkoutId": "c-1", "target": "/prod/checkouts"}
    assert client.get_checkout("c/1")["target"] == "/prod/checkouts/c%2F1"
    assert client.find_checkout("order 1/가")["target"] == "/prod/checkouts?merchantRef=order%201%2F%EA%B0%80"
    post, get, find = stub.seen
    assert json.loads(post["body"]) == {"merchantRef": "order 1", "amount": 1000}
    assert post["headers"]["content-type"] == "application/json"
    assert post["headers"]["idempotency-key"] == "k-1"
    assert "idempotency-key" in post["headers"]["authorization"]
    assert get["method"] == find["method"] == "GET"
    assert all(s["id"]["iam"]["accessKey"] == "local" for s in stub.seen)


def test_checkout_client_raises_checkout_error_from_envelopes(stub: Stub) -> None:
    def answer(method: str, target: str, body: bytes, headers: dict[str, str]) -> tuple[int, Any]:
        if target.endswith("/missing"):
            return 404, {"error": {"code": "CHECKOUT_NOT_FOUND", "message": "no such checkout"}}
        return 422, {"error": {"code": "VALIDATION_FAILED", "message": "amount must be positive"}}

    stub.answer = answer
    client = CheckoutClient(stub.url, region=REGION, credentials=LOCAL)
    with pytest.raises(CheckoutError) as info:
        client.get_checkout("missing")
    assert (info.value.status, info.value.code, info.value.message) == (
        404,
        "CHECKOUT_NOT_FOUND",
        "no such checkout",
    )
    with pytest.raises(CheckoutError) as info:
        client.create_checkout({"amount": -1})
    assert (info.value.status, info.value.code) == (422, "VALIDATION_FAILED")
    # API Gateway's own answer (a refused signature): {"message": ...}
    wrong = CheckoutClient(stub.url, region=REGION, credentials=Credentials("local", "wrong"))
    with pytest.raises(CheckoutError) as info:
        wrong.get_checkout("c-1")
    assert info.value.status == 403 and info.value.code == "Forbidden"
    assert info.value.message.startswith("The request signature we calculated does not match")


def test_signed_requests_pass_the_local_api(fixture_stack: LocalStack) -> None:
    """End to end: the helper's signatures are accepted by the LocalApi's AWS_IAM routes."""
    response = requests.post(
        f"{fixture_stack.api_url}/iam/echo?marker=merchant",
        json={"a": 1},
        headers={"Idempotency-Key": "k"},
        auth=SigV4RequestsAuth(REGION, LOCAL),
        timeout=30,
    )
    assert response.status_code == 200, response.text
    assert response.json()["event"]["requestContext"]["authorizer"]["iam"]["accessKey"] == "local"
    refused = requests.get(f"{fixture_stack.api_url}/default/inherit", timeout=30)
    assert refused.status_code == 403
