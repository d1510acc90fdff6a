"""POST /checkouts, GET /checkouts/{checkoutId}, GET /checkouts?merchantRef=: the merchant's backend.

Authenticated on the HTTP API (AWS_IAM: requests SigV4-signed by the backend's role or access
key); never called by a shopper's browser. The backend registers what is sold, and hands only the
answer's `payUrl` (or `orderCode`) to the browser.
"""

# No `from __future__ import annotations` here: the event handler reads the route functions'
# annotations at run time (through the tracer's wrapper) to validate requests.
from typing import Annotated, Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from aws_lambda_powertools.event_handler.openapi.params import Path, Query
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from steppay.api_models import (
    CHECKOUT_ID_PATTERN,
    IDEMPOTENCY_KEY_PATTERN,
    MERCHANT_REF_PATTERN,
    CheckoutRequest,
    CheckoutResponse,
    CheckoutView,
)
from steppay.http import NO_STORE, documented_responses, register_error_handlers, resolve_http
from steppay.merchant_auth import refuse_unless_merchant
from steppay.payments import checkout_id_for, checkout_view
from steppay.problems import CheckoutNotFound, InvalidRequest
from steppay.service import get_payment_flows
from steppay.snapstart import register_snapstart_hooks
from steppay.tracing import get_tracer

logger = Logger()
tracer = get_tracer()
metrics = Metrics()
app = APIGatewayHttpResolver(enable_validation=True)
register_error_handlers(app)
register_snapstart_hooks()  # SnapStart: warm before the snapshot, renew after a restore

IDEMPOTENCY_HEADER = "idempotency-key"
IDEMPOTENCY_DOC: dict[str, Any] = {
    "parameters": [
        {
            "name": "Idempotency-Key",
            "in": "header",
            "required": False,
            "description": "1-255 printable ASCII characters, bound to the request body for 24 hours: the "
            "same key with the same body answers the first checkout; with another body, 409 "
            "idempotency_key_reused.",
            "schema": {"type": "string", "pattern": "^[\\x21-\\x7e]{1,255}$"},
        }
    ]
}


@app.post(
    "/checkouts",
    summary="Register a checkout (merchant backend, AWS_IAM): create its StepPay order, answer its pay link",
    responses=documented_responses(
        {
            200: {
                "description": "The same registration again: the checkout first answered",
                "content": {"application/json": {"model": CheckoutResponse}},
            },
            201: {
                "description": "Checkout registered",
                "content": {"application/json": {"model": CheckoutResponse}},
            },
        },
        (400, 401, 403, 404, 409, 413, 415, 422, 502, 503),
    ),
    openapi_extensions=IDEMPOTENCY_DOC,
)
@tracer.capture_method
def register_checkout(request: CheckoutRequest) -> Response[CheckoutResponse]:
    key = (app.current_event.headers or {}).get(IDEMPOTENCY_HEADER)
    if key is not None and not IDEMPOTENCY_KEY_PATTERN.fullmatch(key):
        raise InvalidRequest("Idempotency-Key must be 1-255 printable ASCII characters.")
    result, created = get_payment_flows().register_checkout(request, idempotency_key=key)
    if created:
        metrics.add_metric(name="CheckoutsRegistered", unit=MetricUnit.Count, value=1)
    return Response(
        status_code=201 if created else 200, content_type="application/json", body=result, headers=NO_STORE
    )


@app.get(
    "/checkouts/<checkoutId>",
    summary="A registered checkout and what came of it (merchant backend, AWS_IAM)",
    responses=documented_responses(
        {200: {"description": "The checkout", "content": {"application/json": {"model": CheckoutView}}}},
        (400, 401, 403, 404, 503),
    ),
)
@tracer.capture_method
def get_checkout(
    checkoutId: Annotated[str, Path(pattern=CHECKOUT_ID_PATTERN)],  # the template's path parameter name
) -> Response[CheckoutView]:
    return _checkout(checkoutId)


@app.get(
    "/checkouts",
    summary="The checkout registered under a merchantRef (merchant backend, AWS_IAM)",
    responses=documented_responses(
        {200: {"description": "The checkout", "content": {"application/json": {"model": CheckoutView}}}},
        (400, 401, 403, 404, 503),
    ),
)
@tracer.capture_method
def find_checkout(
    merchant_ref: Annotated[
        str, Query(alias="merchantRef", min_length=1, max_length=128, pattern=MERCHANT_REF_PATTERN)
    ],
) -> Response[CheckoutView]:
    return _checkout(checkout_id_for(merchant_ref))


def _checkout(checkout_id: str) -> Response[CheckoutView]:
    found = get_payment_flows().find_checkout(checkout_id)
    if found is None:
        raise CheckoutNotFound("No checkout is registered under this id or merchantRef.")
    return Response(
        status_code=200, content_type="application/json", body=checkout_view(*found), headers=NO_STORE
    )


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    refused = refuse_unless_merchant(event)  # api-key mode only; before any routing or I/O
    if refused is not None:
        return refused
    return resolve_http(app, event, context)
