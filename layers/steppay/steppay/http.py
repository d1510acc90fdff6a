"""What every HTTP handler shares: the error envelope, the checks made before routing, and the
mapping of exceptions to statuses.

Hostile input is ordinary input here: every refusal is a 4xx with a stable code in
`{"error": {"code": ..., "message": ...}}`, and nothing from the exception, the stack or the
request is echoed back.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from aws_lambda_powertools.event_handler.exceptions import NotFoundError
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestValidationError
from aws_lambda_powertools.utilities.typing import LambdaContext

from steppay.api_models import ErrorResponse
from steppay.errors import InvalidIdentifier
from steppay.problems import Problem

logger = Logger(child=True)

MAX_BODY_BYTES = 16 * 1024  # our requests are a few hundred bytes; refuse anything far larger
MAX_JSON_DEPTH = 16
JSON_CONTENT_TYPES = ("application/json",)
NO_STORE = {"Cache-Control": "no-store"}


# What each refusal status means, for the OpenAPI document (`responses=` of the routes).
ERROR_DESCRIPTIONS: dict[int, str] = {
    400: "Refused: invalid_request, malformed_json, malformed_body, redirect_not_allowed, invalid_webhook",
    401: "Webhook signature refused: signature_missing, signature_malformed, signature_stale, "
    "signature_mismatch; or (api-key mode) unauthorized: no valid merchant API key",
    403: "Refused by the HTTP API before the function runs (AWS_IAM): the request is not SigV4-signed "
    "by an allowed principal, or its signature is wrong or expired. API Gateway's own body.",
    404: "order_not_found (no checkout registered for this order code, or StepPay knows no such order) "
    "or checkout_not_found",
    409: "merchant_ref_conflict, idempotency_key_reused or checkout_in_progress (retry after Retry-After)",
    413: "payload_too_large",
    415: "unsupported_media_type: send the body as application/json",
    422: "order_rejected (StepPay refused to create the order) or expected_amount_mismatch",
    502: "steppay_auth_failed (StepPay refused the configured Secret-Token) or steppay_customer_mismatch",
    503: "steppay_unavailable, storage_unavailable, queue_unavailable, webhook_keys_unconfigured or "
    "merchant_auth_unconfigured; "
    "retry after Retry-After seconds",
}
# API Gateway's own refusal body (not the bundle's envelope).
GATEWAY_MESSAGE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"message": {"type": "string"}},
    "required": ["message"],
}


def documented_responses(success: Mapping[int, Any], errors: tuple[int, ...]) -> dict[int, Any]:
    """A route's `responses=`: its success answers plus the error envelope for each status in `errors`.

    The OpenAPI document then says what the handler really answers (Powertools' default 422 for
    validation errors is not among them: `register_error_handlers` answers 400 invalid_request).
    """
    responses: dict[int, Any] = dict(success)
    for status in errors:
        response: dict[str, Any] = {
            "description": ERROR_DESCRIPTIONS[status],
            "content": {"application/json": {"model": ErrorResponse}},
        }
        if status == 403:
            response["content"] = {"application/json": {"schema": GATEWAY_MESSAGE_SCHEMA}}
        if status == 503:
            response["headers"] = {
                "Retry-After": {
                    "description": "Seconds to wait before retrying",
                    "schema": {"type": "string"},
                }
            }
        responses[status] = response
    return responses


def error_response(
    status: int, code: str, message: str, headers: Mapping[str, str] | None = None
) -> Response[str]:
    return Response(
        status_code=status,
        content_type="application/json",
        body=json.dumps({"error": {"code": code, "message": message}}),
        headers={**NO_STORE, **(headers or {})},
    )


def raw_error(
    status: int, code: str, message: str, headers: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """An error answered before the resolver runs, in API Gateway's payload 2.0 response shape."""
    return {
        "statusCode": status,
        "headers": {"Content-Type": "application/json", **NO_STORE, **(headers or {})},
        "body": json.dumps({"error": {"code": code, "message": message}}),
        "isBase64Encoded": False,
    }


def _json_depth(value: Any, limit: int = MAX_JSON_DEPTH) -> int:
    depth, frontier = 0, [value]
    while frontier:
        depth += 1
        if depth > limit:
            return depth
        nxt: list[Any] = []
        for item in frontier:
            if isinstance(item, dict):
                nxt.extend(item.values())
            elif isinstance(item, list):
                nxt.extend(item)
        frontier = nxt
    return depth - 1


def precheck_json_body(
    event: Mapping[str, Any], *, max_body_bytes: int = MAX_BODY_BYTES, max_json_depth: int = MAX_JSON_DEPTH
) -> dict[str, Any] | None:
    """Refuse a POST body that is too large, not JSON, not UTF-8, or absurdly nested.

    Returns a ready payload-2.0 error response, or None when the body may go to the resolver.
    Runs before routing so that the refusal is the same whatever the route's model says.
    """
    method = str(event.get("requestContext", {}).get("http", {}).get("method", "")).upper()
    if method not in ("POST", "PUT", "PATCH"):
        return None
    headers = {str(k).lower(): str(v) for k, v in (event.get("headers") or {}).items()}
    body = event.get("body") or ""
    try:
        raw = base64.b64decode(body, validate=True) if event.get("isBase64Encoded") else body.encode()
    except (binascii.Error, ValueError):
        return raw_error(400, "malformed_body", "The request body could not be read.")
    if len(raw) > max_body_bytes:
        return raw_error(413, "payload_too_large", f"The request body exceeds {max_body_bytes} bytes.")
    content_type = headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type not in JSON_CONTENT_TYPES:
        return raw_error(415, "unsupported_media_type", "Send the body as application/json.")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw_error(400, "malformed_json", "The request body is not valid UTF-8.")
    try:
        parsed = json.loads(text)
    except (ValueError, RecursionError):
        # ValueError covers broken JSON and numbers beyond Python's int-parsing limit.
        return raw_error(400, "malformed_json", "The request body is not valid JSON.")
    if not isinstance(parsed, dict):
        return raw_error(400, "invalid_request", "The request body must be a JSON object.")
    if _json_depth(parsed, max_json_depth) > max_json_depth:
        return raw_error(400, "invalid_request", "The request body is nested too deeply.")
    return None


def _validation_message(exc: RequestValidationError) -> str:
    fields: list[str] = []
    for error in exc.errors():
        loc = [str(p) for p in error.get("loc", ()) if p not in ("body", "query")]
        if loc and ".".join(loc) not in fields:
            fields.append(".".join(loc))
    if fields:
        return "Invalid or missing fields: " + ", ".join(fields[:10]) + "."
    return "The request is invalid."


def register_error_handlers(app: APIGatewayHttpResolver) -> None:
    @app.exception_handler(RequestValidationError)
    def _invalid(exc: RequestValidationError) -> Response[str]:
        return error_response(400, "invalid_request", _validation_message(exc))

    @app.exception_handler(InvalidIdentifier)
    def _bad_identifier(exc: InvalidIdentifier) -> Response[str]:
        return error_response(400, "invalid_request", "An identifier in the request is not valid.")

    @app.exception_handler(Problem)
    def _problem(exc: Problem) -> Response[str]:
        headers: dict[str, str] = {}
        retry_after = getattr(exc, "retry_after_seconds", None)
        if retry_after is not None:
            headers["Retry-After"] = str(retry_after)
        if exc.status >= 500:
            logger.warning("Request failed", extra={"error_code": exc.code})
        return error_response(exc.status, exc.code, exc.message, headers)

    @app.not_found
    def _not_found(exc: NotFoundError) -> Response[str]:
        return error_response(404, "not_found", "No such route.")

    @app.exception_handler(Exception)
    def _unexpected(exc: Exception) -> Response[str]:
        logger.exception("Unhandled error")
        return error_response(500, "internal_error", "The request could not be completed.")


def resolve_http(
    app: APIGatewayHttpResolver,
    event: dict[str, Any],
    context: LambdaContext,
    *,
    max_body_bytes: int = MAX_BODY_BYTES,
    max_json_depth: int = MAX_JSON_DEPTH,
) -> dict[str, Any]:
    """Prechecks, then the resolver."""
    refused = precheck_json_body(event, max_body_bytes=max_body_bytes, max_json_depth=max_json_depth)
    if refused is not None:
        return refused
    return app.resolve(event, context)
