"""The OpenAPI document of the HTTP API: committed, generated, served, and true (schemathesis).

* `openapi.json` at the repository root is exactly what `scripts/export_openapi.py` generates now
  from the Powertools resolvers of every HTTP function (so it cannot drift from the code).
* The local API serves it at `GET /openapi.json`.
* schemathesis generates valid and invalid requests for every operation from that document and
  sends them to the local API: no 5xx, every status documented, every answer in the documented
  shape and content type, every documented header present, and invalid data always refused.
  The merchant backend's operations (AWS_IAM, `security: sigv4`) are sent twice: SigV4-signed as
  the backend (the function validates what was generated) and unsigned (API Gateway's documented
  403, nothing runs). Nothing is recorded or announced, and no order is made at StepPay.
"""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hostile.harness import MERCHANT_AUTH, Harness, begin, finish, leaks, steppay_order_count
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.generation import GenerationMode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
SUITE = "OpenAPI (schemathesis)"
EXAMPLES = int(os.environ.get("SCHEMATHESIS_EXAMPLES", "25"))
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
    negative_data_rejection,
]


def _exporter() -> Any:
    spec = importlib.util.spec_from_file_location("export_openapi", ROOT / "scripts" / "export_openapi.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_committed_document_is_what_the_exporter_generates(reliability: Any) -> None:
    with reliability.case(SUITE, "openapi.json is up to date"):
        exporter = _exporter()
        generated = exporter.render(exporter.build())
        committed = (ROOT / "openapi.json").read_text(encoding="utf-8")
        assert committed == generated, "openapi.json is stale: run python scripts/export_openapi.py"
        document = json.loads(committed)
        assert set(document["paths"]) == {
            "/checkouts",
            "/checkouts/{checkoutId}",
            "/payments/verify",
            "/payments/callback",
            "/webhooks/steppay",
        }
        # Truthful: no Powertools 422 default where the bundle answers 400 invalid_request.
        for path, operations in document["paths"].items():
            for method, operation in operations.items():
                assert "400" in operation["responses"], (method, path)
                assert "HTTPValidationError" not in json.dumps(operation), (method, path)
        # Who may call what: the backend's routes need SigV4 and document API Gateway's 403.
        assert (
            document["components"]["securitySchemes"]["sigv4"]["x-amazon-apigateway-authtype"] == "awsSigv4"
        )
        for path, operations in document["paths"].items():
            for method, operation in operations.items():
                if path.startswith("/checkouts"):
                    assert operation["security"] == [{"sigv4": []}], (method, path)
                    forbidden = operation["responses"]["403"]["content"]["application/json"]["schema"]
                    assert forbidden["required"] == ["message"], (method, path)
                else:
                    assert operation["security"] == [], (method, path)
                    assert "403" not in operation["responses"], (method, path)


def test_the_exporter_refuses_a_route_no_resolver_serves(tmp_path: Path) -> None:
    exporter = _exporter()
    routes = exporter.http_routes()
    assert routes[("post", "/checkouts")] == "AWS_IAM"
    assert routes[("post", "/payments/verify")] == "NONE"
    assert ("post", "/payments/pay-url") not in routes
    paths = json.loads((ROOT / "openapi.json").read_text(encoding="utf-8"))["paths"]
    with pytest.raises(SystemExit, match="without a resolver"):
        exporter._authorize(paths, {**routes, ("post", "/payments/pay-url"): "NONE"})


def test_local_api_serves_the_document(harness: Harness, reliability: Any) -> None:
    with reliability.case(SUITE, "GET /openapi.json"):
        response = harness.request("GET", "/openapi.json")
        assert response.status_code == 200
        assert response.headers["Content-Type"] == "application/json"
        assert response.json() == json.loads((ROOT / "openapi.json").read_text(encoding="utf-8"))
        assert not leaks(response.text)


@pytest.fixture(scope="module")
def api_schema(harness: Harness) -> Any:
    schema = schemathesis.openapi.from_url(f"{harness.stack.api_url}/openapi.json")
    return schema


OPERATIONS = [
    ("POST", "/checkouts", True),
    ("POST", "/checkouts", False),
    ("GET", "/checkouts", True),
    ("GET", "/checkouts", False),
    ("GET", "/checkouts/{checkoutId}", True),
    ("GET", "/checkouts/{checkoutId}", False),
    ("POST", "/payments/verify", False),
    ("GET", "/payments/callback", False),
    ("POST", "/webhooks/steppay", False),
]


def _operation_id(method: str, path: str, signed: bool) -> str:
    return f"{method} {path}" + (
        " signed" if signed else " unsigned" if path.startswith("/checkouts") else ""
    )


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=["valid", "invalid"])
@pytest.mark.parametrize(
    ("method", "path", "signed"), OPERATIONS, ids=[_operation_id(*operation) for operation in OPERATIONS]
)
def test_schemathesis(
    harness: Harness,
    reliability: Any,
    api_schema: Any,
    method: str,
    path: str,
    signed: bool,
    mode: GenerationMode,
) -> None:
    h = harness
    operation = api_schema[path][method]
    events_before, before = begin(h)
    orders_before = steppay_order_count(h)
    counts = {"tried": 0, "passed": 0}
    extra = {"auth": MERCHANT_AUTH} if signed else {}
    statuses: set[int] = set()

    # Unsigned, every request meets the same gateway refusal: fewer examples tell as much.
    unsigned_backend = path.startswith("/checkouts") and not signed
    examples = max(5, EXAMPLES // 5) if unsigned_backend else EXAMPLES

    @settings(max_examples=examples, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(case=operation.as_strategy(generation_mode=mode))
    def run(case: Any) -> None:
        counts["tried"] += 1
        body = case.body.decode("utf-8", "replace") if isinstance(case.body, bytes) else case.body
        h.report.sent(json.dumps([case.path_parameters, case.query, body], default=str))
        response = case.call(base_url=h.stack.api_url, session=h.http, timeout=60, **extra)
        h.report.saw(response.text)
        case.validate_response(response, checks=CHECKS)
        assert not leaks(response.text), response.text[:300]
        if unsigned_backend:
            # Whatever was generated (an Authorization header too): API Gateway refuses it.
            assert response.status_code == 403, (response.status_code, response.text[:300])
            assert set(response.json()) == {"message"}, response.text[:300]
        statuses.add(response.status_code)
        counts["passed"] += 1

    try:
        run()
    finally:
        reliability.cases(SUITE, counts["tried"], counts["passed"])
    if signed:  # the signed requests reached the function (its own answers, not the gateway's)
        assert statuses - {403}, f"every signed request was refused by the gateway: {statuses}"
    # Generated requests name no real order: nothing was recorded or announced, nor ordered.
    assert steppay_order_count(h) == orders_before, "an order was created at StepPay"
    finish(h, events_before, before)
