"""The sandbox's HTTP server: ``SandboxServer`` (a threaded stdlib ``http.server``).

    from steppay_sandbox.server import SandboxServer
    server = SandboxServer(port=0).start()   # serves in a daemon thread
    server.url                               # "http://127.0.0.1:<port>"
    server.stop()

It binds to the given host only (loopback by default). Inbound faults are applied here, where
the connection itself can be delayed or dropped.
"""

from __future__ import annotations

import logging
import socket
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from steppay_sandbox.app import Request, Response, SandboxApp, json_response
from steppay_sandbox.catalogue import Catalogue, load_catalogue, parse_catalogue
from steppay_sandbox.errors import error_body
from steppay_sandbox.faults import FaultRegistry
from steppay_sandbox.state import SandboxState
from steppay_sandbox.timeutil import DEFAULT_ZONE_NAME, now, zone_name, zone_named
from steppay_sandbox.webhooks import WebhookDispatcher, WebhookSettings

log = logging.getLogger("steppay_sandbox")

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8181
DEFAULT_SECRET_TOKEN = "sandbox-secret-token"  # noqa: S105 - a documented local-only default
DEFAULT_WEBHOOK_KEY = "sandbox-webhook-key"
MAX_BODY = 1024 * 1024


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True
    request_queue_size = 128  # bursts of concurrent clients are queued, not reset
    app: SandboxApp

    def server_activate(self) -> None:
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().server_activate()

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._connections_lock:
            self._connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._connections_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that hung up (timeouts, dropped connections) is no error worth a traceback."""
        if isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            log.debug("client %s went away", client_address)
            return
        log.exception("error answering %s", client_address)

    def close_connections(self) -> None:
        """Hang up on kept-alive clients, so that a stopped sandbox really answers nothing."""
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


class _Handler(BaseHTTPRequestHandler):
    server: _HTTPServer
    protocol_version = "HTTP/1.1"
    server_version = "StepPaySandbox/1.0"
    sys_version = ""
    timeout = 60  # idle keep-alive connections are closed after this many seconds
    disable_nagle_algorithm = True  # headers and body go out at once (no 40 ms delayed-ACK stalls)
    wbufsize = 64 * 1024  # buffered: one write per response, flushed after each request

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s %s", self.address_string(), format % args)

    def do_GET(self) -> None:
        self._dispatch()

    def do_HEAD(self) -> None:
        self._dispatch()

    def do_POST(self) -> None:
        self._dispatch()

    def do_PUT(self) -> None:
        self._dispatch()

    def do_PATCH(self) -> None:
        self._dispatch()

    def do_DELETE(self) -> None:
        self._dispatch()

    def do_OPTIONS(self) -> None:
        self._dispatch()

    # -- plumbing --------------------------------------------------------------------------

    def _read_body(self) -> bytes | None:
        """The request body, or None after answering 411/413/400 for an unreadable one."""
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks: list[bytes] = []
            total = 0
            while True:
                line = self.rfile.readline(1024)
                try:
                    size = int(line.split(b";", 1)[0].strip() or b"x", 16)
                except ValueError:
                    self._send(
                        json_response(400, error_body("INVALID_REQUEST", "Bad chunked body.")), close=True
                    )
                    return None
                if size == 0:
                    while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                total += size
                if total > MAX_BODY:
                    self._send(
                        json_response(413, error_body("PAYLOAD_TOO_LARGE", "Body too large.")), close=True
                    )
                    return None
                chunks.append(self.rfile.read(size))
                self.rfile.readline(1024)
        length_header = self.headers.get("Content-Length")
        if not length_header:
            return b""
        try:
            length = int(length_header)
        except ValueError:
            self._send(json_response(400, error_body("INVALID_REQUEST", "Bad Content-Length.")), close=True)
            return None
        if length < 0 or length > MAX_BODY:
            self._send(json_response(413, error_body("PAYLOAD_TOO_LARGE", "Body too large.")), close=True)
            return None
        return self.rfile.read(length)

    def _dispatch(self) -> None:
        body = self._read_body()
        if body is None:
            return
        app = self.server.app
        request = Request.build(self.command, self.path, self.headers, body)
        if not request.path.startswith("/_sandbox/"):
            fault = app.faults.take_inbound(request.method, request.path)
            if fault is not None:
                if fault.latency_ms:
                    time.sleep(fault.latency_ms / 1000)
                if fault.drop:
                    self._drop()
                    return
                if fault.status is not None:
                    payload = error_body("SANDBOX_FAULT", f"Injected fault: HTTP {fault.status}.")
                    self._send(json_response(fault.status, payload))
                    return
        self._send(app.handle(request))

    def _drop(self) -> None:
        """Close the connection without a single byte of answer."""
        self.close_connection = True
        try:
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def _send(self, response: Response, *, close: bool = False) -> None:
        try:
            self.send_response(response.status)
            for name, value in response.headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(response.body)))
            if close:
                self.send_header("Connection", "close")
                self.close_connection = True
            self.end_headers()
            if self.command != "HEAD" and response.body:
                self.wfile.write(response.body)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True


class SandboxServer:
    """The local StepPay sandbox: API, pay page, webhooks, control API."""

    def __init__(
        self,
        host: str = DEFAULT_HOST,
        port: int = DEFAULT_PORT,
        secret_token: str = DEFAULT_SECRET_TOKEN,
        webhook_key: str = DEFAULT_WEBHOOK_KEY,
        webhook_url: str | None = None,
        webhook_versions: Sequence[str] = ("v2",),
        state_file: str | Path | None = None,
        catalogue_path: str | Path | None = None,
        *,
        catalogue: Catalogue | Mapping[str, Any] | str | Path | None = None,
        webhook_retry_delays: Sequence[float] = (),
        webhook_timeout: float = 5.0,
        public_url: str | None = None,
        clock: Callable[[], datetime] = now,
        timezone: str = DEFAULT_ZONE_NAME,
    ) -> None:
        if not secret_token:
            raise ValueError("secret_token must not be empty")
        self.host = host
        self.port = port
        self._public_url = public_url.rstrip("/") if public_url else None
        if isinstance(catalogue, Catalogue):
            loaded = catalogue
        elif isinstance(catalogue, Mapping):
            loaded = parse_catalogue(catalogue)
        else:
            loaded = load_catalogue(catalogue if catalogue is not None else catalogue_path)
        self.faults = FaultRegistry()
        self.state = SandboxState(loaded, state_file=state_file, clock=clock, zone=zone_named(timezone))
        self.dispatcher = WebhookDispatcher(
            WebhookSettings(
                key=webhook_key, retry_delays=tuple(webhook_retry_delays), timeout=webhook_timeout
            ),
            self.faults,
        )
        self.dispatcher.configure(url=webhook_url, versions=list(webhook_versions))
        self.app = SandboxApp(
            self.state,
            self.dispatcher,
            self.faults,
            secret_token=secret_token,
            public_url=lambda: self.public_url,
        )
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> SandboxServer:
        """Bind and serve in a daemon thread; returns self."""
        if self._httpd is not None:
            return self
        server_cls: type[_HTTPServer] = _HTTPServer
        if ":" in self.host:
            server_cls = type("_HTTPServer6", (_HTTPServer,), {"address_family": socket.AF_INET6})
        httpd = server_cls((self.host, self.port), _Handler)
        httpd.app = self.app
        self.port = int(httpd.server_address[1])
        self._httpd = httpd
        self.dispatcher.start()
        self._thread = threading.Thread(
            target=httpd.serve_forever, kwargs={"poll_interval": 0.1}, name="steppay-sandbox", daemon=True
        )
        self._thread.start()
        log.info("StepPay sandbox listening on %s", self.url)
        return self

    def stop(self) -> None:
        """Stop serving and stop the webhook worker."""
        httpd, self._httpd = self._httpd, None
        if httpd is not None:
            httpd.shutdown()
            httpd.server_close()
            httpd.close_connections()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        self.dispatcher.stop()

    def serve_forever(self) -> None:
        """Start and block until interrupted (used by ``python -m steppay_sandbox serve``)."""
        self.start()
        try:
            while self._thread is not None and self._thread.is_alive():
                self._thread.join(timeout=0.5)
        finally:
            self.stop()

    def __enter__(self) -> SandboxServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- addresses -------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """``http://<host>:<port>`` (the bound port once started)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def public_url(self) -> str:
        """Base URL used in pay-link redirects (``url`` unless configured)."""
        return self._public_url or self.url

    @property
    def secret_token(self) -> str:
        """The ``Secret-Token`` StepPay's API calls must send."""
        return self.app.secret_token

    @property
    def webhook_key(self) -> str:
        """The key v2 webhooks are signed with from now on (after any rotation)."""
        return self.dispatcher.settings.key

    @property
    def timezone(self) -> str:
        """The zone of the zone-less date-times the sandbox writes and reads (``UTC`` or ``Asia/Seoul``)."""
        return zone_name(self.state.zone)

    @timezone.setter
    def timezone(self, name: str) -> None:
        self.state.zone = zone_named(name)

    # -- conveniences for tests and tools --------------------------------------------------

    def configure_webhooks(
        self,
        *,
        url: Any = ...,
        key: Any = ...,
        versions: Any = ...,
        retry_delays: Any = ...,
        timeout: Any = ...,
    ) -> None:
        """Same as ``POST /_sandbox/config``; ``...`` leaves a setting unchanged."""
        self.dispatcher.configure(
            url=url, key=key, versions=versions, retry_delays=retry_delays, timeout=timeout
        )

    def wait_for_webhooks(self, timeout: float = 10.0) -> bool:
        """Block until every queued webhook attempt has been made; False on timeout."""
        return self.dispatcher.wait_idle(timeout)

    def webhook_log(self, **filters: Any) -> list[dict[str, Any]]:
        return self.dispatcher.log(**filters)

    def reset(self) -> None:
        """Forget orders, subscriptions, faults and the delivery log."""
        self.state.reset()
        self.faults.clear()
        self.dispatcher.clear_log()
