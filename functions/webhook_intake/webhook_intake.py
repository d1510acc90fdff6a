"""POST /webhooks/steppay: authenticate, store durably, queue, then acknowledge.

Nothing here believes the webhook: it is kept as received and handed to the processor,
which asks StepPay what is true. The 2xx goes out only after the webhook is stored and
queued, so a webhook StepPay considers delivered is never lost; the intake itself makes no
call to StepPay and answers quickly even when StepPay is slow.
"""

from __future__ import annotations

import base64
from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext
from steppay.http import NO_STORE, register_error_handlers, resolve_http
from steppay.intake import accept_webhook

logger = Logger()
tracer = Tracer()
metrics = Metrics()
app = APIGatewayHttpResolver()
register_error_handlers(app)

MAX_WEBHOOK_BYTES = 256 * 1024


@app.post("/webhooks/steppay")
@tracer.capture_method
def receive_webhook() -> Response[dict[str, Any]]:
    event = app.current_event
    body = event.body or ""
    # The signature covers the body's exact bytes: take them as API Gateway received them.
    raw = base64.b64decode(body) if event.is_base64_encoded else body.encode("utf-8")
    accepted = accept_webhook(raw, dict(event.headers or {}))
    metrics.add_dimension(name="EventType", value=accepted.webhook.event_type[:64])
    metrics.add_metric(name="WebhooksAccepted", unit=MetricUnit.Count, value=1)
    if accepted.duplicate:
        metrics.add_metric(name="WebhookDuplicates", unit=MetricUnit.Count, value=1)
    return Response(
        status_code=200,
        content_type="application/json",
        body={"received": True, "duplicate": accepted.duplicate},
        headers=NO_STORE,
    )


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return resolve_http(app, event, context, max_body_bytes=MAX_WEBHOOK_BYTES, max_json_depth=64)
