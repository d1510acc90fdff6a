"""POST /payments/verify and GET /payments/callback: two doors to one verification.

Both ask StepPay for the order and record a verified payment exactly once. The callback is
meant to be used directly as StepPay's successUrl/errorUrl: it answers 303 to the merchant's
result page with the outcome, whatever the redirect's own `status` claimed.
"""

# No `from __future__ import annotations` here: the event handler reads the route functions'
# annotations at run time (through the tracer's wrapper) to validate requests.
from typing import Annotated, Any
from urllib.parse import urlencode, urlsplit, urlunsplit

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from aws_lambda_powertools.event_handler.openapi.params import Query
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from steppay.api_models import VerifyRequest, VerifyResponse
from steppay.http import NO_STORE, documented_responses, register_error_handlers, resolve_http
from steppay.identifiers import MAX_ID, ORDER_CODE_MAX_LENGTH, ORDER_CODE_NOT_ID_PATTERN
from steppay.persistence import VerifiedVia
from steppay.service import get_payment_flows, get_settings
from steppay.snapstart import register_snapstart_hooks
from steppay.tracing import get_tracer
from steppay.verification import Verdict

logger = Logger()
tracer = get_tracer()
metrics = Metrics()
app = APIGatewayHttpResolver(enable_validation=True)
register_error_handlers(app)
register_snapstart_hooks()  # SnapStart: warm before the snapshot, renew after a restore

RESULT_FOR_VERDICT = {
    Verdict.PAID: "paid",
    Verdict.NOT_PAID: "pending",
    Verdict.FAILED: "failed",
    Verdict.CANCELED: "failed",
    Verdict.MISMATCH: "failed",
    Verdict.NEEDS_REVIEW: "pending",  # StepPay said something new: nobody can tell the shopper yet
}


@app.post(
    "/payments/verify",
    summary="Verify a payment with StepPay and record it once",
    responses=documented_responses(
        {
            200: {
                "description": "StepPay's verdict",
                "content": {"application/json": {"model": VerifyResponse}},
            }
        },
        (400, 404, 413, 415, 502, 503),
    ),
)
@tracer.capture_method
def verify_payment(request: VerifyRequest) -> Response[VerifyResponse]:
    outcome = get_payment_flows().verify_and_record(
        request.order_code,
        order_id=request.order_id,
        claimed_status=request.status,
        via=VerifiedVia.VERIFY_API,
    )
    _count(outcome.result.verdict, outcome.newly_recorded)
    return Response(status_code=200, content_type="application/json", body=outcome.response, headers=NO_STORE)


@app.get(
    "/payments/callback",
    summary="StepPay's successUrl/errorUrl: verify, then redirect to the result page",
    responses=documented_responses(
        {
            303: {
                "description": "Redirect to the merchant's result page with orderCode and result",
                "headers": {
                    "Location": {
                        "description": "The result page",
                        "required": True,
                        "schema": {"type": "string"},
                    }
                },
                "content": {"text/plain": {"schema": {"type": "string", "maxLength": 0}}},
            }
        },
        (400, 404, 502, 503),
    ),
)
@tracer.capture_method
def payment_callback(
    order_code: Annotated[
        str, Query(alias="order_code", max_length=ORDER_CODE_MAX_LENGTH, pattern=ORDER_CODE_NOT_ID_PATTERN)
    ],
    order_id: Annotated[int | None, Query(alias="order_id", gt=0, le=MAX_ID)] = None,
    status: Annotated[str | None, Query(alias="status", max_length=32, pattern=r"^[A-Za-z_]*$")] = None,
) -> Response[str]:
    outcome = get_payment_flows().verify_and_record(
        order_code, order_id=order_id, claimed_status=status, via=VerifiedVia.CALLBACK
    )
    _count(outcome.result.verdict, outcome.newly_recorded)
    result = RESULT_FOR_VERDICT[outcome.result.verdict]
    return Response(
        status_code=303,
        content_type="text/plain",
        body="",
        headers={"Location": _result_page(order_code, result), **NO_STORE},
    )


def _result_page(order_code: str, result: str) -> str:
    base = urlsplit(get_settings().result_page_url)
    query = "&".join(q for q in (base.query, urlencode({"orderCode": order_code, "result": result})) if q)
    return urlunsplit((base.scheme, base.netloc, base.path, query, ""))


def _count(verdict: Verdict, newly_recorded: bool) -> None:
    metrics.add_metric(
        name=f"Verdict{verdict.value.title().replace('_', '')}", unit=MetricUnit.Count, value=1
    )
    if newly_recorded:
        metrics.add_metric(name="PaymentsVerified", unit=MetricUnit.Count, value=1)


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return resolve_http(app, event, context)
