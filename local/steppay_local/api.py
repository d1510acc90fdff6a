"""The HTTP API of ``template.yaml`` on 127.0.0.1, invoking the real handlers with payload 2.0 events.

What API Gateway HTTP APIs do and this server does too: route matching (exact routes before
``{param}`` routes before ``{proxy+}`` before ``$default``; a method before ``ANY``), the format 2.0
event (lower-cased headers with repeats comma-joined, ``cookies``, comma-joined repeated query
parameters, ``pathParameters``, ``requestContext``), base64 bodies for binary content, the format 2.0
response mapping (including the inference for responses without ``statusCode``), CORS preflight and
headers from the API's ``CorsConfiguration``, the 10 MB payload limit, the 30 s integration timeout
and API Gateway's own error bodies (``{"message":"Not Found"}``, ``{"message":"Internal Server Error"}``).
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import re
import secrets
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, unquote

from steppay_local import LOOPBACK, REPO_ROOT
from steppay_local._util import LOG, LogSink, ensure_port_free
from steppay_local.template import CorsConfig, HttpApiEvent, HttpApiSpec, Template
from steppay_local.workers import FunctionRegistry, InvocationError

MAX_PAYLOAD_BYTES = 10 * 1024 * 1024
DRAIN_LIMIT_BYTES = 64 * 1024 * 1024
INTEGRATION_TIMEOUT_SECONDS = 30.0
ACCOUNT_ID = "123456789012"
OPENAPI_PATH = "/openapi.json"
OPENAPI_FILE = REPO_ROOT / "openapi.json"  # scripts/export_openapi.py writes it

#: Content types API Gateway passes to Lambda as text; every other body is base64-encoded.
_TEXT_TYPES = re.compile(
    r"^(text/.*|application/(json|.*\+json|javascript|ecmascript|xml|.*\+xml|yaml|x-yaml|graphql))$"
)


@dataclass(frozen=True)
class Route:
    method: str  # "ANY" or an upper-case method
    path: str  # "$default" or "/a/{b}/{proxy+}"
    function: str  # logical id
    api: str  # HttpApi logical id
    route_key: str
    payload_format_version: str = "2.0"
    timeout_seconds: float = INTEGRATION_TIMEOUT_SECONDS

    @property
    def segments(self) -> list[str]:
        return [] if self.path == "$default" else self.path.strip("/").split("/")

    def match(self, method: str, path: str) -> dict[str, str] | None:
        """Path parameters when this route serves ``method path`` (decoded path), else None."""
        if self.method not in ("ANY", method):
            return None
        if self.path == "$default":
            return {}
        wanted = self.segments
        given = path.strip("/").split("/") if path.strip("/") else [""]
        params: dict[str, str] = {}
        for index, segment in enumerate(wanted):
            if segment.startswith("{") and segment.endswith("+}"):
                rest = "/".join(given[index:])
                if not rest:
                    return None
                params[segment[1:-2]] = rest
                return params
            if index >= len(given):
                return None
            if segment.startswith("{") and segment.endswith("}"):
                if not given[index]:
                    return None
                params[segment[1:-1]] = given[index]
            elif segment != given[index]:
                return None
        return params if len(given) == len(wanted) else None

    @property
    def priority(self) -> tuple[int, int, int, int]:
        """Lower sorts first: exact paths, more literal segments, fewer greedy ones; a method before ANY."""
        if self.path == "$default":
            return (3, 0, 0, 1 if self.method == "ANY" else 0)
        segments = self.segments
        greedy = sum(1 for s in segments if s.endswith("+}"))
        params = sum(1 for s in segments if s.startswith("{"))
        literal = len(segments) - params
        kind = 2 if greedy else (1 if params else 0)
        return (kind, -literal, -len(segments), 1 if self.method == "ANY" else 0)


def routes_from_template(template: Template) -> tuple[list[Route], dict[str, HttpApiSpec]]:
    routes: list[Route] = []
    seen: dict[str, Route] = {}
    for function in template.functions():
        for event in function.events_of(HttpApiEvent):
            if event.payload_format_version != "2.0":
                LOG.warning(
                    "%s.%s: PayloadFormatVersion %s is not emulated; sending format 2.0 events",
                    function.logical_id,
                    event.name,
                    event.payload_format_version,
                )
            timeout = INTEGRATION_TIMEOUT_SECONDS
            if event.timeout_in_millis:
                timeout = min(INTEGRATION_TIMEOUT_SECONDS, event.timeout_in_millis / 1000)
            route = Route(
                event.method,
                event.path,
                function.logical_id,
                event.api_id,
                event.route_key,
                event.payload_format_version,
                timeout,
            )
            if route.route_key in seen:
                LOG.warning(
                    "route %s is declared by %s and %s; serving %s",
                    route.route_key,
                    seen[route.route_key].function,
                    route.function,
                    seen[route.route_key].function,
                )
                continue
            seen[route.route_key] = route
            routes.append(route)
    routes.sort(key=lambda r: r.priority)
    return routes, template.http_apis()


def _request_id() -> str:
    return base64.b64encode(secrets.token_bytes(11)).decode()


def _is_text(content_type: str | None) -> bool:
    if not content_type:
        return False
    media = content_type.split(";", 1)[0].strip().lower()
    return bool(_TEXT_TYPES.match(media))


def _json_bytes(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


class _LocalHTTPServer(ThreadingHTTPServer):
    # API Gateway queues bursts; the default backlog of 5 would reset concurrent clients.
    request_queue_size = 128
    daemon_threads = True


class LocalApi:
    """``ThreadingHTTPServer`` on ``127.0.0.1:<port>`` serving the template's HttpApi routes."""

    def __init__(
        self,
        routes: Iterable[Route],
        functions: FunctionRegistry,
        apis: Mapping[str, HttpApiSpec] | None = None,
        *,
        port: int = 3000,
        api_id: str = "local",
        log_sink: LogSink | None = None,
        max_payload_bytes: int = MAX_PAYLOAD_BYTES,
    ) -> None:
        self.routes = list(routes)
        self.functions = functions
        self.apis = dict(apis or {})
        self.api_id = api_id
        self.log_sink = log_sink
        self.max_payload_bytes = max_payload_bytes
        if port:
            ensure_port_free(port, "local API", "LOCAL_API_PORT")
        self._server = _LocalHTTPServer((LOOPBACK, port), _Handler)
        self._server.daemon_threads = True
        self._server.api = self  # type: ignore[attr-defined]
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    def start(self) -> LocalApi:
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._server.serve_forever,
                kwargs={"poll_interval": 0.2},
                name="local-api",
                daemon=True,
            )
            self._thread.start()
            LOG.info(
                "local API on %s: %s", self.url, ", ".join(r.route_key for r in self.routes) or "no routes"
            )
        return self

    def stop(self) -> None:
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(timeout=10)
            self._thread = None
        self._server.server_close()

    def log(self, line: str) -> None:
        if self.log_sink is not None:
            self.log_sink("api", line)

    def find_route(self, method: str, path: str) -> tuple[Route, dict[str, str]] | None:
        for route in self.routes:
            params = route.match(method, path)
            if params is not None:
                return route, params
        return None

    def cors_for(self, route: Route | None) -> CorsConfig | None:
        if route is not None:
            spec = self.apis.get(route.api)
            return spec.cors if spec else None
        configs = [api.cors for api in self.apis.values() if api.cors is not None]
        return configs[0] if configs else None


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "steppay-local-api"
    sys_version = ""
    timeout = 60  # a slow client must not hold a request thread forever
    disable_nagle_algorithm = True  # headers and body go out at once (no 40 ms delayed-ACK stalls)

    @property
    def api(self) -> LocalApi:
        return self.server.api  # type: ignore[attr-defined,no-any-return]

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self._serve()

    do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = do_GET

    # -- plumbing --

    def _read_body(self) -> bytes | None:
        """The request body, or None when it exceeds the payload limit (the connection then closes)."""
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            chunks: list[bytes] = []
            total = 0
            while True:
                size_line = self.rfile.readline(65537).split(b";", 1)[0].strip()
                size = int(size_line or b"0", 16)
                if size == 0:
                    while self.rfile.readline(65537).strip():
                        pass
                    break
                total += size
                if total > self.api.max_payload_bytes:
                    return None
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            return b"".join(chunks)
        length = int(self.headers.get("Content-Length") or 0)
        if length > self.api.max_payload_bytes:
            # Read (and drop) a moderately oversized body so the client gets the 413 rather than a reset.
            remaining = length if length <= DRAIN_LIMIT_BYTES else 0
            while remaining > 0:
                chunk = self.rfile.read(min(remaining, 1 << 20))
                if not chunk:
                    break
                remaining -= len(chunk)
            return None
        return self.rfile.read(length) if length else b""

    def _send(self, status: int, headers: list[tuple[str, str]], body: bytes, request_id: str) -> None:
        self.send_response_only(status)
        names = {name.lower() for name, _ in headers}
        for name, value in headers:
            if name.lower() not in ("content-length", "connection", "transfer-encoding"):
                self.send_header(name, value)
        if "date" not in names:
            self.send_header("Date", self.date_time_string())
        self.send_header("apigw-requestid", request_id)
        self.send_header("Content-Length", str(len(body)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _message(
        self, status: int, message: str, request_id: str, extra: list[tuple[str, str]] | None = None
    ) -> None:
        headers = [("Content-Type", "application/json"), *(extra or [])]
        self._send(status, headers, _json_bytes({"message": message}), request_id)

    # -- the request --

    def _serve(self) -> None:
        started = time.monotonic()
        request_id = _request_id()
        raw_path, _, raw_query = self.path.partition("?")
        if raw_path.startswith(("http://", "https://")):
            raw_path = "/" + raw_path.split("/", 3)[-1]
        path = unquote(raw_path)
        method = self.command.upper()
        origin = self.headers.get("Origin")
        found = self.api.find_route(method, path)
        route = found[0] if found else None
        cors = self.api.cors_for(route)
        status = 0
        try:
            body = self._read_body()
            if body is None:
                self.close_connection = True
                status = 413
                self._message(413, "Request Entity Too Large", request_id)
                return
            if (
                method == "OPTIONS"
                and cors is not None
                and self.headers.get("Access-Control-Request-Method")
                and (route is None or route.method == "ANY")
            ):
                status = 204
                self._send(204, self._preflight_headers(cors, origin), b"", request_id)
                return
            if found is None and method in ("GET", "HEAD") and path == OPENAPI_PATH and OPENAPI_FILE.exists():
                # Local only (not an API Gateway route): the API's OpenAPI document, see openapi.json.
                status = 200
                self._send(200, [("Content-Type", "application/json")], OPENAPI_FILE.read_bytes(), request_id)
                return
            if found is None:
                status = 404
                self._message(404, "Not Found", request_id, self._cors_headers(cors, origin))
                return
            assert route is not None
            event = self._event(route, found[1], raw_path, raw_query, body, request_id)
            status, headers, payload = self._invoke(route, event, request_id)
            headers = [(n, v) for n, v in headers if not (cors and n.lower().startswith("access-control-"))]
            headers += self._cors_headers(cors, origin)
            self._send(status, headers, payload, request_id)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        finally:
            elapsed = (time.monotonic() - started) * 1000
            self.api.log(
                f"{method} {raw_path} {status or '-'} {elapsed:.0f}ms"
                + (f" -> {route.function}" if route else "")
            )

    def _invoke(
        self, route: Route, event: dict[str, Any], request_id: str
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        function = self.api.functions[route.function]
        outcome: dict[str, Any] = {}
        done = threading.Event()

        def call() -> None:
            try:
                outcome["payload"] = function.invoke_json(json.dumps(event))
            except InvocationError as exc:
                outcome["error"] = exc
            except Exception as exc:  # noqa: BLE001 - reported as API Gateway's 500
                outcome["error"] = exc
            finally:
                done.set()

        threading.Thread(target=call, daemon=True, name=f"invoke-{route.function}").start()
        if not done.wait(route.timeout_seconds):
            self.api.log(f"{route.route_key}: integration timed out after {route.timeout_seconds:.0f}s")
            return (
                503,
                [("Content-Type", "application/json")],
                _json_bytes({"message": "Service Unavailable"}),
            )
        if "error" in outcome:
            error = outcome["error"]
            if isinstance(error, InvocationError):
                self.api.log(
                    f"{route.route_key}: {route.function} failed: {error.error_type}: {error.error_message}"
                )
            else:
                self.api.log(f"{route.route_key}: {route.function} could not be invoked: {error!r}")
            return (
                500,
                [("Content-Type", "application/json")],
                _json_bytes({"message": "Internal Server Error"}),
            )
        try:
            return self._response(str(outcome["payload"]))
        except (ValueError, TypeError, binascii.Error) as exc:
            self.api.log(f"{route.route_key}: {route.function} returned an invalid response: {exc}")
            return (
                500,
                [("Content-Type", "application/json")],
                _json_bytes({"message": "Internal Server Error"}),
            )

    def _event(
        self,
        route: Route,
        params: dict[str, str],
        raw_path: str,
        raw_query: str,
        body: bytes,
        request_id: str,
    ) -> dict[str, Any]:
        headers: dict[str, str] = {}
        cookies: list[str] = []
        for name, value in self.headers.items():
            key = name.lower()
            if key == "cookie":
                cookies += [c.strip() for c in value.split(";") if c.strip()]
                continue
            if key in ("connection", "transfer-encoding", "keep-alive"):
                continue
            headers[key] = f"{headers[key]},{value}" if key in headers else value
        client_ip = self.client_address[0]
        headers.setdefault("x-forwarded-for", client_ip)
        headers["x-forwarded-port"] = str(self.api.port)
        headers["x-forwarded-proto"] = "http"
        headers["x-amzn-trace-id"] = f"Root=1-{int(time.time()):08x}-{os.urandom(12).hex()}"
        if body and "content-length" not in headers:
            headers["content-length"] = str(len(body))
        query: dict[str, str] = {}
        for key, value in parse_qsl(raw_query, keep_blank_values=True):
            query[key] = f"{query[key]},{value}" if key in query else value
        now = time.time()
        domain = headers.get("host", f"{LOOPBACK}:{self.api.port}")
        event: dict[str, Any] = {
            "version": "2.0",
            "routeKey": route.route_key,
            "rawPath": raw_path,
            "rawQueryString": raw_query,
        }
        if cookies:
            event["cookies"] = cookies
        event["headers"] = headers
        if query:
            event["queryStringParameters"] = query
        event["requestContext"] = {
            "accountId": ACCOUNT_ID,
            "apiId": self.api.api_id,
            "domainName": domain,
            "domainPrefix": domain.split(".", 1)[0],
            "http": {
                "method": self.command.upper(),
                "path": raw_path,
                "protocol": self.request_version,
                "sourceIp": client_ip,
                "userAgent": headers.get("user-agent", ""),
            },
            "requestId": request_id,
            "routeKey": route.route_key,
            "stage": "$default",
            "time": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(now)),
            "timeEpoch": int(now * 1000),
        }
        if params:
            event["pathParameters"] = {k: unquote(v) for k, v in params.items()}
        if body:
            text: str | None = None
            if _is_text(headers.get("content-type")):
                try:
                    text = body.decode("utf-8")
                except UnicodeDecodeError:
                    text = None
            if text is None:
                event["body"] = base64.b64encode(body).decode()
                event["isBase64Encoded"] = True
            else:
                event["body"] = text
                event["isBase64Encoded"] = False
        else:
            event["isBase64Encoded"] = False
        return event

    @staticmethod
    def _response(payload: str) -> tuple[int, list[tuple[str, str]], bytes]:
        """Format 2.0 response mapping."""
        result = json.loads(payload)
        if not isinstance(result, dict) or "statusCode" not in result:
            # No statusCode: API Gateway infers 200, application/json, and the payload as the body.
            return 200, [("Content-Type", "application/json")], payload.encode()
        status = int(result["statusCode"])
        if status < 100 or status > 599:
            raise ValueError(f"statusCode {status} out of range")
        headers: list[tuple[str, str]] = []
        for name, value in (result.get("headers") or {}).items():
            headers.append((str(name), _header_value(value)))
        for name, values in (result.get("multiValueHeaders") or {}).items():
            headers += [(str(name), _header_value(v)) for v in (values or [])]
        for cookie in result.get("cookies") or []:
            headers.append(("Set-Cookie", str(cookie)))
        if not any(name.lower() == "content-type" for name, _ in headers):
            headers.append(("Content-Type", "application/json"))
        body = result.get("body")
        if body is None:
            data = b""
        elif result.get("isBase64Encoded"):
            data = base64.b64decode(str(body), validate=True)
        else:
            data = (body if isinstance(body, str) else json.dumps(body)).encode()
        return status, headers, data

    # -- CORS --

    @staticmethod
    def _origin_allowed(cors: CorsConfig, origin: str | None) -> str | None:
        if not origin:
            return None
        for allowed in cors.allow_origins:
            if allowed == "*":
                return "*" if not cors.allow_credentials else origin
            if allowed.lower() == origin.lower():
                return origin
            if "*" in allowed and re.fullmatch(
                re.escape(allowed).replace(r"\*", "[^/]*"), origin, re.IGNORECASE
            ):
                return origin
        return None

    def _cors_headers(self, cors: CorsConfig | None, origin: str | None) -> list[tuple[str, str]]:
        if cors is None:
            return []
        allowed = self._origin_allowed(cors, origin)
        if allowed is None:
            return []
        headers = [("Access-Control-Allow-Origin", allowed), ("Vary", "Origin")]
        if cors.allow_credentials:
            headers.append(("Access-Control-Allow-Credentials", "true"))
        if cors.expose_headers:
            headers.append(("Access-Control-Expose-Headers", ",".join(cors.expose_headers)))
        return headers

    def _preflight_headers(self, cors: CorsConfig, origin: str | None) -> list[tuple[str, str]]:
        allowed = self._origin_allowed(cors, origin)
        if allowed is None:
            return []
        requested_method = (self.headers.get("Access-Control-Request-Method") or "").upper()
        if (
            cors.allow_methods
            and "*" not in cors.allow_methods
            and requested_method not in cors.allow_methods
        ):
            return []
        requested_headers = [
            h.strip().lower()
            for h in (self.headers.get("Access-Control-Request-Headers") or "").split(",")
            if h.strip()
        ]
        if "*" not in cors.allow_headers and any(h not in cors.allow_headers for h in requested_headers):
            return []
        headers = [("Access-Control-Allow-Origin", allowed), ("Vary", "Origin")]
        methods = cors.allow_methods or ("*",)
        headers.append(("Access-Control-Allow-Methods", ",".join(methods)))
        if cors.allow_headers:
            headers.append(("Access-Control-Allow-Headers", ",".join(cors.allow_headers)))
        if cors.max_age is not None:
            headers.append(("Access-Control-Max-Age", str(cors.max_age)))
        if cors.allow_credentials:
            headers.append(("Access-Control-Allow-Credentials", "true"))
        return headers


def _header_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
