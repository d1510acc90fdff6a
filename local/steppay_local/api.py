"""The HTTP API of ``template.yaml`` on 127.0.0.1, invoking the real handlers with payload 2.0 events.

What API Gateway HTTP APIs do and this server does too: route matching (exact routes before
``{param}`` routes before ``{proxy+}`` before ``$default``; a method before ``ANY``), the format 2.0
event (lower-cased headers with repeats comma-joined, ``cookies``, comma-joined repeated query
parameters, ``pathParameters``, ``requestContext``), base64 bodies for binary content, the format 2.0
response mapping (including the inference for responses without ``statusCode``), CORS preflight and
headers from the API's ``CorsConfiguration``, the 10 MB payload limit, the 30 s integration timeout
and API Gateway's own error bodies (``{"message":"Not Found"}``, ``{"message":"Internal Server Error"}``).

Authorization: routes whose authorizer is ``AWS_IAM`` need a valid Signature Version 4 signature (the
``Authorization`` header, or a presigned query string) made with the local stack's dummy credentials
(``local``/``local``) for ``ap-northeast-2``/``execute-api``, as API Gateway checks it; refused requests
get API Gateway's 403 bodies and invoke nothing. Other authorizers (JWT, Lambda) are not emulated:
their routes refuse every request (403), never serve it unchecked.
"""

from __future__ import annotations

import base64
import binascii
import calendar
import hashlib
import hmac
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

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest, HTTPHeaders
from botocore.credentials import Credentials

from steppay_local import LOOPBACK, REPO_ROOT
from steppay_local._util import DEFAULT_REGION, DUMMY_CREDENTIALS, LOG, LogSink, ensure_port_free
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


# --------------------------------------------------------------------------------------------
# AWS_IAM authorization (Signature Version 4), as API Gateway checks it
# --------------------------------------------------------------------------------------------

IAM_AUTHORIZER = "AWS_IAM"
IAM_SERVICE = "execute-api"
IAM_REGION = DEFAULT_REGION
#: The only credentials the local API accepts (the local stack's dummy ones).
IAM_ACCESS_KEY = DUMMY_CREDENTIALS["aws_access_key_id"]
IAM_SECRET_KEY = DUMMY_CREDENTIALS["aws_secret_access_key"]
#: How far X-Amz-Date may be from the server's clock (API Gateway: 5 minutes).
IAM_CLOCK_SKEW_SECONDS = 300
SIGV4_ALGORITHM = "AWS4-HMAC-SHA256"
_AMZ_DATE = "%Y%m%dT%H%M%SZ"

FORBIDDEN = "Forbidden"
SIGNATURE_MISMATCH = (
    "The request signature we calculated does not match the signature you provided. "
    "Check your AWS Secret Access Key and signing method. Consult the service documentation for details."
)
UNKNOWN_KEY_MESSAGE = "The security token included in the request is invalid."


class SigV4Refusal(Exception):
    """The request is not authorised: API Gateway answers 403 with ``{"message": message}``."""

    def __init__(self, message: str, detail: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.detail = detail  # for the local log only (e.g. the canonical request we expected)


def iam_identity(access_key: str = IAM_ACCESS_KEY) -> dict[str, Any]:
    """``requestContext.authorizer`` of payload 2.0 for a request signed with the local credentials."""
    return {
        "iam": {
            "accessKey": access_key,
            "accountId": ACCOUNT_ID,
            "callerId": access_key,
            "cognitoIdentity": None,
            "principalOrgId": None,
            "userArn": f"arn:aws:iam::{ACCOUNT_ID}:user/{access_key}",
            "userId": access_key,
        }
    }


class _SigV4Verifier(SigV4Auth):
    """botocore's signer, fed with exactly the headers the client says it signed and the body's hash."""

    def __init__(
        self,
        region: str,
        signed: list[str],
        headers: list[tuple[str, str]],
        payload_hash: str,
    ) -> None:
        super().__init__(Credentials(IAM_ACCESS_KEY, IAM_SECRET_KEY), IAM_SERVICE, region)
        self._signed = signed
        self._headers = headers
        self._payload_hash = payload_hash

    def headers_to_sign(self, request: AWSRequest) -> HTTPHeaders:
        header_map = HTTPHeaders()
        for name in self._signed:
            for key, value in self._headers:
                if key.lower() == name:
                    header_map[name] = value
        return header_map

    def payload(self, request: AWSRequest) -> str:
        return self._payload_hash


def _parse_amz_date(value: str) -> float:
    try:
        return float(calendar.timegm(time.strptime(value, _AMZ_DATE)))
    except ValueError as exc:
        raise SigV4Refusal(
            f"Date must be in ISO-8601 'basic format'. Got '{value}'. See http://en.wikipedia.org/wiki/ISO_8601"
        ) from exc


def _fmt(epoch: float) -> str:
    return time.strftime(_AMZ_DATE, time.gmtime(epoch))


def _check_clock(amz_date: str, now: float, expires: int | None = None) -> None:
    signed_at = _parse_amz_date(amz_date)
    if expires is not None:
        if signed_at + expires < now:
            raise SigV4Refusal(f"Signature expired: {amz_date} is now earlier than {_fmt(now - expires)}")
    elif signed_at < now - IAM_CLOCK_SKEW_SECONDS:
        raise SigV4Refusal(
            f"Signature expired: {amz_date} is now earlier than "
            f"{_fmt(now - IAM_CLOCK_SKEW_SECONDS)} ({_fmt(now)} - 5 min.)"
        )
    if signed_at > now + IAM_CLOCK_SKEW_SECONDS:
        raise SigV4Refusal(
            f"Signature not yet current: {amz_date} is still later than "
            f"{_fmt(now + IAM_CLOCK_SKEW_SECONDS)} ({_fmt(now)} + 5 min.)"
        )


def _parse_authorization(value: str) -> tuple[str, list[str], str]:
    scheme, _, rest = value.strip().partition(" ")
    if scheme != SIGV4_ALGORITHM:
        raise SigV4Refusal(FORBIDDEN, f"Authorization scheme {scheme!r} is not {SIGV4_ALGORITHM}")
    params: dict[str, str] = {}
    for part in rest.split(","):
        key, eq, item = part.strip().partition("=")
        if not eq:
            raise SigV4Refusal(
                f"Invalid key=value pair (missing equal-sign) in Authorization header: '{part.strip()}'."
            )
        params[key.strip()] = item.strip()
    missing = [k for k in ("Credential", "SignedHeaders", "Signature") if not params.get(k)]
    if missing:
        raise SigV4Refusal(
            " ".join(f"Authorization header requires '{k}' parameter." for k in missing)
            + f" Authorization={value.strip()}"
        )
    signed = params["SignedHeaders"].split(";")
    return params["Credential"], signed, params["Signature"]


def _check_credential(credential: str, amz_date: str, region: str) -> None:
    parts = credential.split("/")
    if len(parts) != 5:
        raise SigV4Refusal(
            f"Credential should be scoped to a valid region, not '{parts[2] if len(parts) > 2 else ''}'. "
        )
    access_key, date, scope_region, service, terminator = parts
    if date != amz_date[:8]:
        raise SigV4Refusal(
            f"Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: "
            f"'{date}' != '{amz_date[:8]}', from '{amz_date}'."
        )
    if scope_region != region:
        raise SigV4Refusal(f"Credential should be scoped to a valid region, not '{scope_region}'. ")
    if service != IAM_SERVICE:
        raise SigV4Refusal(f"Credential should be scoped to correct service: '{IAM_SERVICE}'. ")
    if terminator != "aws4_request":
        raise SigV4Refusal("Credential should be scoped with a valid terminator: 'aws4_request'. ")
    if not hmac.compare_digest(access_key.encode(), IAM_ACCESS_KEY.encode()):
        raise SigV4Refusal(UNKNOWN_KEY_MESSAGE, f"unknown access key id {access_key!r}")


def verify_sigv4(
    method: str,
    raw_path: str,
    raw_query: str,
    headers: Iterable[tuple[str, str]],
    body: bytes,
    *,
    now: float | None = None,
    region: str = IAM_REGION,
) -> dict[str, Any]:
    """Check a request's SigV4 signature as API Gateway does for ``AWS_IAM`` routes.

    ``raw_path``/``raw_query`` are the request target as received (not decoded); ``headers`` the
    request's headers (repeats allowed). Accepted: the local credentials (``local``/``local``), scope
    ``<date>/ap-northeast-2/execute-api/aws4_request``, ``X-Amz-Date`` within 5 minutes (or a presigned
    query string within its ``X-Amz-Expires``), ``host`` signed, the body matching its hash. Returns
    ``requestContext.authorizer``; raises ``SigV4Refusal`` (403) otherwise.
    """
    now = time.time() if now is None else now
    header_list = [(str(k), str(v)) for k, v in headers]

    def header(name: str) -> str | None:
        values = [v for k, v in header_list if k.lower() == name]
        return ",".join(values) if values else None

    authorization = header("authorization")
    query_pairs = [pair.partition("=") for pair in raw_query.split("&")] if raw_query else []
    query = {unquote(k): unquote(v) for k, _, v in query_pairs}
    canonical_query = raw_query
    expires: int | None = None
    if authorization is not None:
        credential, signed, signature = _parse_authorization(authorization)
        amz_date = header("x-amz-date")
        if not amz_date:
            raise SigV4Refusal(
                "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header. "
                f"Authorization={authorization.strip()}"
            )
    elif "X-Amz-Signature" in query or "X-Amz-Algorithm" in query:
        if query.get("X-Amz-Algorithm") != SIGV4_ALGORITHM:
            raise SigV4Refusal(FORBIDDEN, "presigned URL without X-Amz-Algorithm=AWS4-HMAC-SHA256")
        missing = [
            k
            for k in ("X-Amz-Credential", "X-Amz-Date", "X-Amz-SignedHeaders", "X-Amz-Signature")
            if not query.get(k)
        ]
        if missing:
            raise SigV4Refusal(" ".join(f"Query-string requires '{k}' parameter." for k in missing))
        credential, signature, amz_date = (
            query["X-Amz-Credential"],
            query["X-Amz-Signature"],
            query["X-Amz-Date"],
        )
        signed = query["X-Amz-SignedHeaders"].split(";")
        try:
            expires = int(query.get("X-Amz-Expires") or 0) or None
        except ValueError as exc:
            raise SigV4Refusal("X-Amz-Expires should be a number") from exc
        canonical_query = "&".join(
            f"{k}{sep}{v}" for k, sep, v in query_pairs if unquote(k) != "X-Amz-Signature"
        )
    else:
        raise SigV4Refusal(FORBIDDEN, "no Authorization header and no presigned query string")

    _check_clock(amz_date, now, expires)
    _check_credential(credential, amz_date, region)
    if header("x-amz-security-token") or query.get("X-Amz-Security-Token"):
        raise SigV4Refusal(UNKNOWN_KEY_MESSAGE, "the local credentials have no session token")
    signed = [name.strip().lower() for name in signed]
    if "host" not in signed:
        raise SigV4Refusal("'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization.")
    if authorization is not None and "x-amz-date" not in signed:
        raise SigV4Refusal(SIGNATURE_MISMATCH, "x-amz-date is not among the signed headers")
    absent = [name for name in signed if header(name) is None]
    if absent:
        raise SigV4Refusal(SIGNATURE_MISMATCH, f"signed headers missing from the request: {absent}")
    payload_hash = hashlib.sha256(body).hexdigest()
    claimed = header("x-amz-content-sha256")
    if claimed is not None and not hmac.compare_digest(claimed.strip().lower(), payload_hash):
        raise SigV4Refusal(SIGNATURE_MISMATCH, "x-amz-content-sha256 does not match the body")

    verifier = _SigV4Verifier(region, signed, header_list, payload_hash)
    target = raw_path + (f"?{canonical_query}" if canonical_query else "")
    request = AWSRequest(method=method.upper(), url=f"http://localhost{target}", data=body)
    request.context["timestamp"] = amz_date
    canonical_request = verifier.canonical_request(request)
    string_to_sign = verifier.string_to_sign(request, canonical_request)
    expected = verifier.signature(string_to_sign, request)
    if not hmac.compare_digest(expected.encode(), signature.strip().lower().encode()):
        raise SigV4Refusal(SIGNATURE_MISMATCH, f"expected canonical request:\n{canonical_request}")
    return iam_identity()


# --------------------------------------------------------------------------------------------
# Routes
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Route:
    method: str  # "ANY" or an upper-case method
    path: str  # "$default" or "/a/{b}/{proxy+}"
    function: str  # logical id
    api: str  # HttpApi logical id
    route_key: str
    payload_format_version: str = "2.0"
    timeout_seconds: float = INTEGRATION_TIMEOUT_SECONDS
    #: None (no authorization), "AWS_IAM" (SigV4 checked), or another authorizer (refused: not emulated).
    authorizer: str | None = None

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
                event.authorizer,
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
            authorizer: dict[str, Any] | None = None
            if route.authorizer is not None:
                try:
                    authorizer = self._authorize(route, method, raw_path, raw_query, body)
                except SigV4Refusal as refusal:
                    status = 403
                    self.api.log(
                        f"{route.route_key}: refused ({route.authorizer}): {refusal.message}"
                        + (f" [{refusal.detail}]" if refusal.detail else "")
                    )
                    self._message(403, refusal.message, request_id, self._cors_headers(cors, origin))
                    return
            event = self._event(route, found[1], raw_path, raw_query, body, request_id)
            if authorizer is not None:
                event["requestContext"]["authorizer"] = authorizer
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

    def _authorize(
        self, route: Route, method: str, raw_path: str, raw_query: str, body: bytes
    ) -> dict[str, Any]:
        """``requestContext.authorizer`` for an authorised request; raises ``SigV4Refusal`` otherwise."""
        if route.authorizer != IAM_AUTHORIZER:
            raise SigV4Refusal(FORBIDDEN, f"authorizer {route.authorizer} is not emulated locally")
        return verify_sigv4(method, raw_path, raw_query, self.headers.items(), body)

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
