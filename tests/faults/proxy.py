"""A fault-injecting HTTP proxy in front of an AWS endpoint (moto's EventBridge, DynamoDB Local).

The functions of the fault stack are pointed at it through boto3's own endpoint variables
(`AWS_ENDPOINT_URL_EVENTBRIDGE`, `AWS_ENDPOINT_URL_DYNAMODB`), so the real publisher and the real
persistence code, with their real boto3 clients and retries, meet the faults. Everything else
is forwarded unchanged. Rules match an operation by its `X-Amz-Target` (`PutEvents`, `PutItem`,
`UpdateItem`, ...) and are used for `count` requests (or until cleared):

* `error`: answer an AWS JSON error (`status`, `error_type`) without forwarding;
* `partial` (PutEvents): forward only some entries, report the others failed (`ErrorCode`);
* `hang`: hold the request, unanswered, until released (the caller may die meanwhile);
* `forward_then_hang`: forward it (the effect happens), then hold the answer until released.
"""

from __future__ import annotations

import json
import threading
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import requests

HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "host"}


@dataclass
class Rule:
    target: str  # the operation (suffix of X-Amz-Target), or "*"
    action: str  # "error", "partial", "hang", "forward_then_hang"
    status: int = 500
    error_type: str = "InternalException"
    count: int | None = None  # None: until cleared
    used: int = 0

    def matches(self, operation: str) -> bool:
        return (self.target in ("*", operation)) and (self.count is None or self.used < self.count)


@dataclass
class FaultProxy:
    name: str
    upstream: str | None = None
    rules: list[Rule] = field(default_factory=list)
    calls: Counter[str] = field(default_factory=Counter)
    injected: Counter[str] = field(default_factory=Counter)
    held: threading.Event = field(default_factory=threading.Event)  # a request is being held
    release: threading.Event = field(default_factory=threading.Event)
    failed_event_ids: set[str] = field(default_factory=set)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _server: ThreadingHTTPServer | None = None
    _local: threading.local = field(default_factory=threading.local)

    # -- control ---------------------------------------------------------------------------

    def add(self, target: str, action: str, **options: Any) -> Rule:
        rule = Rule(target, action, **options)
        with self._lock:
            self.rules.append(rule)
        return rule

    def clear(self) -> None:
        with self._lock:
            self.rules.clear()
        self.release.set()

    def reset(self) -> None:
        self.clear()
        with self._lock:
            self.calls.clear()
            self.injected.clear()
            self.failed_event_ids.clear()
        self.held.clear()
        self.release.clear()

    def _take(self, operation: str) -> Rule | None:
        with self._lock:
            self.calls[operation] += 1
            for rule in self.rules:
                if rule.matches(operation):
                    rule.used += 1
                    self.injected[operation] += 1
                    return rule
        return None

    # -- server ----------------------------------------------------------------------------

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> FaultProxy:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                proxy._handle(self)

            do_GET = do_PUT = do_DELETE = do_HEAD = do_POST

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        server.request_queue_size = 128
        self._server = server
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True).start()
        return self

    def stop(self) -> None:
        self.release.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    # -- one request -----------------------------------------------------------------------

    def _session(self) -> requests.Session:
        session = getattr(self._local, "session", None)
        if session is None:
            session = requests.Session()
            self._local.session = session
        return session

    def _forward(
        self, handler: BaseHTTPRequestHandler, body: bytes
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        assert self.upstream is not None, f"{self.name}: no upstream yet"
        headers = {k: v for k, v in handler.headers.items() if k.lower() not in HOP_BY_HOP}
        response = self._session().request(
            handler.command,
            self.upstream + handler.path,
            data=body,
            headers=headers,
            timeout=60,
            stream=True,
        )
        content = response.raw.read(decode_content=False)
        out = [(k, v) for k, v in response.headers.items() if k.lower() not in HOP_BY_HOP]
        return response.status_code, out, content

    @staticmethod
    def _reply(
        handler: BaseHTTPRequestHandler, status: int, headers: list[tuple[str, str]], body: bytes
    ) -> None:
        try:
            handler.send_response(status)
            for name, value in headers:
                handler.send_header(name, value)
            handler.send_header("Content-Length", str(len(body)))
            handler.end_headers()
            handler.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError, OSError):
            handler.close_connection = True

    def _error(self, handler: BaseHTTPRequestHandler, rule: Rule, content_type: str) -> None:
        body = json.dumps({"__type": rule.error_type, "message": f"injected by the {self.name} fault proxy"})
        self._reply(handler, rule.status, [("Content-Type", content_type)], body.encode())

    def _hold(self) -> None:
        self.held.set()
        self.release.wait(timeout=120)

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length) if length else b""
        target = handler.headers.get("X-Amz-Target", "")
        operation = target.rsplit(".", 1)[-1] if target else handler.command
        content_type = handler.headers.get("Content-Type", "application/x-amz-json-1.1")
        rule = self._take(operation)
        try:
            if rule is None:
                self._reply(handler, *self._forward(handler, body))
            elif rule.action == "error":
                self._error(handler, rule, content_type)
            elif rule.action == "hang":
                self._hold()
                handler.close_connection = True  # the caller is gone or gave up: answer nothing
            elif rule.action == "forward_then_hang":
                self._forward(handler, body)
                self._hold()
                handler.close_connection = True
            elif rule.action == "partial":
                self._reply(handler, *self._partial(handler, body))
            else:  # pragma: no cover - a test's typo
                raise ValueError(rule.action)
        except requests.RequestException:
            self._reply(handler, 502, [("Content-Type", content_type)], b"{}")

    def _partial(
        self, handler: BaseHTTPRequestHandler, body: bytes
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        """PutEvents: every other entry not failed before fails now; the rest go through."""
        request = json.loads(body)
        entries = request.get("Entries", [])
        failing: set[int] = set()
        with self._lock:
            for index, entry in enumerate(entries):
                event_id = str(json.loads(entry.get("Detail", "{}")).get("eventId"))
                if index % 2 == 0 and event_id not in self.failed_event_ids:
                    self.failed_event_ids.add(event_id)
                    failing.add(index)
        passing = [entry for index, entry in enumerate(entries) if index not in failing]
        results: list[dict[str, Any]] = []
        headers: list[tuple[str, str]] = [("Content-Type", "application/x-amz-json-1.1")]
        if passing:
            forwarded = json.dumps({**request, "Entries": passing}).encode()
            status, headers, content = self._forward_body(handler, forwarded)
            if status != 200:
                return status, headers, content
            results = list(json.loads(content).get("Entries", []))
        merged: list[dict[str, Any]] = []
        for index in range(len(entries)):
            if index in failing:
                merged.append({"ErrorCode": "InternalFailure", "ErrorMessage": "injected partial failure"})
            else:
                merged.append(results.pop(0))
        answer = {"FailedEntryCount": len(failing), "Entries": merged}
        kept = [(k, v) for k, v in headers if k.lower() in ("content-type", "x-amzn-requestid")]
        return 200, kept, json.dumps(answer).encode()

    def _forward_body(
        self, handler: BaseHTTPRequestHandler, body: bytes
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        return self._forward(handler, body)
