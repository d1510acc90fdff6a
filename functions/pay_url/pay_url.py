"""POST /payments/pay-url: create (or take) a StepPay order and answer its pay URL."""

# No `from __future__ import annotations` here: the event handler reads the route functions'
# annotations at run time (through the tracer's wrapper) to validate requests.
from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from steppay.api_models import PayUrlRequest, PayUrlResponse
from steppay.http import NO_STORE, documented_responses, register_error_handlers, resolve_http
from steppay.service import get_payment_flows

logger = Logger()
tracer = Tracer()
metrics = Metrics()
app = APIGatewayHttpResolver(enable_validation=True)
register_error_handlers(app)


@app.post(
    "/payments/pay-url",
    summary="Create (or take) a StepPay order and answer its pay link",
    responses=documented_responses(
        {201: {"description": "Pay link issued", "content": {"application/json": {"model": PayUrlResponse}}}},
        (400, 404, 409, 413, 415, 422, 502, 503),
    ),
)
@tracer.capture_method
def create_pay_url(request: PayUrlRequest) -> Response[PayUrlResponse]:
    result = get_payment_flows().create_pay_url(request)
    metrics.add_metric(name="PayLinksIssued", unit=MetricUnit.Count, value=1)
    return Response(status_code=201, content_type="application/json", body=result, headers=NO_STORE)


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return resolve_http(app, event, context)
