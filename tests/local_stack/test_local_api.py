"""The local HTTP API: payload 2.0 events, response mapping, errors, limits, CORS, concurrency."""

from __future__ import annotations

import base64
import json
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import requests

from steppay_local.stack import LocalStack

ORIGIN = "http://127.0.0.1:8080"  # the local stack's default AllowedOrigins


def echo(stack: LocalStack, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
    response = requests.request(method, f"{stack.api_url}{path}", timeout=30, **kwargs)
    assert response.status_code == 200, response.text
    assert response.headers["x-echo"] == "yes"
    return dict(response.json())


def test_get_event_shape(fixture_stack: LocalStack) -> None:
    got = echo(
        fixture_stack,
        "GET",
        "/echo?a=1&a=2&b=x%20y&empty=",
        headers={"X-Custom": "One", "Cookie": "c1=v1; c2=v2", "User-Agent": "pytest-agent"},
    )
    event = got["event"]
    assert event["version"] == "2.0"
    assert event["routeKey"] == "GET /echo"
    assert event["rawPath"] == "/echo"
    assert event["rawQueryString"] == "a=1&a=2&b=x%20y&empty="
    assert event["queryStringParameters"] == {"a": "1,2", "b": "x y", "empty": ""}
    assert event["cookies"] == ["c1=v1", "c2=v2"]
    headers = event["headers"]
    assert all(name == name.lower() for name in headers)
    assert headers["x-custom"] == "One"
    assert "cookie" not in headers
    assert headers["x-forwarded-proto"] == "http"
    assert headers["host"] == fixture_stack.api_url.removeprefix("http://")
    assert "pathParameters" not in event
    assert "body" not in event and event["isBase64Encoded"] is False
    context = event["requestContext"]
    assert context["accountId"] == "123456789012"
    assert context["stage"] == "$default"
    assert context["routeKey"] == "GET /echo"
    assert context["http"] == {
        "method": "GET",
        "path": "/echo",
        "protocol": "HTTP/1.1",
        "sourceIp": "127.0.0.1",
        "userAgent": "pytest-agent",
    }
    assert context["domainName"] == headers["host"]
    assert isinstance(context["timeEpoch"], int) and abs(context["timeEpoch"] / 1000 - time.time()) < 60
    assert context["time"].endswith("+0000")
    assert context["requestId"]


def test_repeated_headers_are_comma_joined(fixture_stack: LocalStack) -> None:
    host, port = fixture_stack.api_url.removeprefix("http://").split(":")
    request = (
        f"GET /echo HTTP/1.1\r\nHost: {host}:{port}\r\nX-Multi: a\r\nX-Multi: b\r\nConnection: close\r\n\r\n"
    ).encode()
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall(request)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    body = json.loads(data.split(b"\r\n\r\n", 1)[1])
    assert body["event"]["headers"]["x-multi"] == "a,b"


def test_json_body_is_text(fixture_stack: LocalStack) -> None:
    payload = {"name": "주문", "amount": 1000}
    got = echo(fixture_stack, "POST", "/echo", json=payload)
    event = got["event"]
    assert event["isBase64Encoded"] is False
    assert json.loads(event["body"]) == payload
    assert event["headers"]["content-type"] == "application/json"


def test_binary_and_non_utf8_bodies_are_base64(fixture_stack: LocalStack) -> None:
    raw = b"\x00\xff\xfe binary"
    for content_type in ("application/octet-stream", "application/json"):  # the second is not valid UTF-8
        event = echo(fixture_stack, "POST", "/echo", data=raw, headers={"Content-Type": content_type})[
            "event"
        ]
        assert event["isBase64Encoded"] is True
        assert base64.b64decode(event["body"]) == raw
    # A form post is not a text type for API Gateway either: the raw bytes arrive base64-encoded.
    event = echo(fixture_stack, "POST", "/echo", data={"a": "b"})["event"]
    assert event["isBase64Encoded"] is True
    assert base64.b64decode(event["body"]) == b"a=b"
    # Chunked request bodies arrive whole.
    event = echo(
        fixture_stack,
        "POST",
        "/echo",
        data=iter([b"hello ", b"world"]),
        headers={"Content-Type": "text/plain"},
    )["event"]
    assert event["body"] == "hello world"


def test_path_parameters_and_route_priority(fixture_stack: LocalStack) -> None:
    event = echo(fixture_stack, "DELETE", "/items/abc%20d")["event"]
    assert event["routeKey"] == "ANY /items/{id}"
    assert event["pathParameters"] == {"id": "abc d"}
    assert event["requestContext"]["http"]["method"] == "DELETE"
    special = echo(fixture_stack, "GET", "/items/special")["event"]
    assert special["routeKey"] == "GET /items/special" and "pathParameters" not in special
    greedy = echo(fixture_stack, "GET", "/files/a/b/c.txt")["event"]
    assert greedy["routeKey"] == "GET /files/{proxy+}"
    assert greedy["pathParameters"] == {"proxy": "a/b/c.txt"}


def test_context_object(fixture_stack: LocalStack) -> None:
    context = echo(fixture_stack, "GET", "/echo")["context"]
    assert context["function_name"] == "fixture-EchoFunction"
    assert context["memory_limit_in_mb"] == 384
    assert context["invoked_function_arn"].endswith(":function:fixture-EchoFunction")
    assert 0 < context["remaining_ms"] <= 10_000
    assert context["aws_request_id"]


@pytest.mark.parametrize(
    ("response", "status", "headers", "body"),
    [
        (
            {"statusCode": 201, "headers": {"X-A": "1", "Content-Type": "text/plain"}, "body": "created"},
            201,
            {"x-a": "1", "content-type": "text/plain"},
            b"created",
        ),
        (
            {"statusCode": 302, "headers": {"Location": "http://127.0.0.1:8080/r"}},
            302,
            {"location": "http://127.0.0.1:8080/r"},
            b"",
        ),
        (
            {
                "statusCode": 200,
                "isBase64Encoded": True,
                "body": base64.b64encode(b"\x00\x01").decode(),
                "headers": {"content-type": "application/octet-stream"},
            },
            200,
            {},
            b"\x00\x01",
        ),
        ({"hello": "world"}, 200, {"content-type": "application/json"}, b'{"hello": "world"}'),
        ("just a string", 200, {"content-type": "application/json"}, b'"just a string"'),
        ({"statusCode": 204}, 204, {}, b""),
    ],
)
def test_response_mapping(
    fixture_stack: LocalStack, response: Any, status: int, headers: dict[str, str], body: bytes
) -> None:
    got = requests.post(
        f"{fixture_stack.api_url}/respond", json={"response": response}, timeout=30, allow_redirects=False
    )
    assert got.status_code == status
    for name, value in headers.items():
        assert got.headers[name] == value
    assert got.content == body
    assert got.headers["apigw-requestid"]


def test_cookies_become_set_cookie_headers(fixture_stack: LocalStack) -> None:
    response = {"statusCode": 200, "cookies": ["a=1; Path=/", "b=2; HttpOnly"], "body": "ok"}
    got = requests.post(f"{fixture_stack.api_url}/respond", json={"response": response}, timeout=30)
    assert got.raw.headers.getlist("Set-Cookie") == ["a=1; Path=/", "b=2; HttpOnly"]


def test_unknown_route_is_404_like_api_gateway(fixture_stack: LocalStack) -> None:
    for method, path in (("GET", "/nope"), ("POST", "/pid"), ("GET", "/items"), ("GET", "/files/")):
        got = requests.request(method, f"{fixture_stack.api_url}{path}", timeout=30)
        assert got.status_code == 404, path
        assert got.json() == {"message": "Not Found"}


def test_function_error_is_500_without_details(fixture_stack: LocalStack) -> None:
    got = requests.post(f"{fixture_stack.api_url}/crash", json={}, timeout=30)
    assert got.status_code == 500
    assert got.json() == {"message": "Internal Server Error"}
    assert "boom" not in got.text and "Traceback" not in got.text
    # ... but the error is in the local logs, as in CloudWatch.
    assert fixture_stack.logs.wait_for("ValueError: boom", source="CrashFunction")
    assert fixture_stack.logs.wait_for("CrashFunction failed: ValueError", source="api")


def test_invalid_function_response_is_500(fixture_stack: LocalStack) -> None:
    got = requests.get(f"{fixture_stack.api_url}/bad-response", timeout=30)
    assert got.status_code == 500
    assert got.json() == {"message": "Internal Server Error"}


def test_timeout_and_crash_replace_the_worker(fixture_stack: LocalStack) -> None:
    url = fixture_stack.api_url
    pid = requests.get(f"{url}/pid", timeout=30).json()["pid"]
    assert requests.get(f"{url}/pid", timeout=30).json()["pid"] == pid  # warm
    started = time.monotonic()
    got = requests.get(f"{url}/sleep", timeout=30)
    assert got.status_code == 500 and got.json() == {"message": "Internal Server Error"}
    assert 1.5 < time.monotonic() - started < 10  # the function's Timeout is 2 s
    assert fixture_stack.logs.wait_for("Task timed out after 2.00 seconds", source="CrashFunction")
    got = requests.get(f"{url}/exit", timeout=30)
    assert got.status_code == 500
    assert fixture_stack.logs.wait_for("Runtime exited with error: exit status 3", source="CrashFunction")
    # The pool still serves, with fresh workers where the dead ones were.
    after = {requests.get(f"{url}/pid", timeout=30).json()["pid"] for _ in range(3)}
    assert after


def test_payload_limit_is_413(fixture_stack: LocalStack) -> None:
    big = b"x" * (10 * 1024 * 1024 + 1)
    got = requests.post(
        f"{fixture_stack.api_url}/echo", data=big, headers={"Content-Type": "text/plain"}, timeout=60
    )
    assert got.status_code == 413
    assert got.json() == {"message": "Request Entity Too Large"}


def test_cors(fixture_stack: LocalStack) -> None:
    url = f"{fixture_stack.api_url}/echo"
    preflight = requests.options(
        url,
        headers={
            "Origin": ORIGIN,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type",
        },
        timeout=30,
    )
    assert preflight.status_code == 204
    assert preflight.headers["access-control-allow-origin"] == ORIGIN
    assert set(preflight.headers["access-control-allow-methods"].split(",")) == {"GET", "POST", "OPTIONS"}
    assert preflight.headers["access-control-allow-headers"] == "content-type"
    assert preflight.headers["access-control-max-age"] == "600"
    denied = requests.options(
        url, headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"}, timeout=30
    )
    assert denied.status_code == 204
    assert "access-control-allow-origin" not in denied.headers
    allowed = requests.get(url, headers={"Origin": ORIGIN}, timeout=30)
    assert allowed.headers["access-control-allow-origin"] == ORIGIN
    other = requests.get(url, headers={"Origin": "https://evil.example"}, timeout=30)
    assert "access-control-allow-origin" not in other.headers


def test_sixteen_concurrent_requests(fixture_stack: LocalStack) -> None:
    url = f"{fixture_stack.api_url}/slow?seconds=1"

    def call(_: int) -> int:
        response = requests.get(url, timeout=60)
        assert response.status_code == 200, response.text
        return int(response.json()["pid"])

    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=16) as pool:
        pids = list(pool.map(call, range(16)))
    elapsed = time.monotonic() - started
    assert len(pids) == 16
    assert 2 <= len(set(pids)) <= 8  # the pool grew, up to max_concurrency
    assert elapsed < 12, elapsed  # served in parallel, not one after another (16 s)
    assert fixture_stack.functions["EchoFunction"].worker_count <= 8
