"""The OpenAPI document of the HTTP API: committed, generated, served, and true (schemathesis).

* `openapi.json` at the repository root is exactly what `scripts/export_openapi.py` generates now
  from the Powertools resolvers of every HTTP function (so it cannot drift from the code).
* The local API serves it at `GET /openapi.json`.
* schemathesis generates valid and invalid requests for every operation from that document and
  sends them to the local API: no 5xx, every status documented, every answer in the documented
  shape and content type, every documented header present, and invalid data always refused.
"""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hostile.harness import Harness, begin, finish_without_records, leaks
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
            "/payments/pay-url",
            "/payments/verify",
            "/payments/callback",
            "/webhooks/steppay",
        }
        # Truthful: no Powertools 422 default where the bundle answers 400 invalid_request.
        for path, operations in document["paths"].items():
            for method, operation in operations.items():
                assert "400" in operation["responses"], (method, path)
                assert "HTTPValidationError" not in json.dumps(operation), (method, path)


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
    ("POST", "/payments/pay-url"),
    ("POST", "/payments/verify"),
    ("GET", "/payments/callback"),
    ("POST", "/webhooks/steppay"),
]


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=["valid", "invalid"])
@pytest.mark.parametrize(("method", "path"), OPERATIONS, ids=[f"{m} {p}" for m, p in OPERATIONS])
def test_schemathesis(
    harness: Harness, reliability: Any, api_schema: Any, method: str, path: str, mode: GenerationMode
) -> None:
    h = harness
    operation = api_schema[path][method]
    events_before, before = begin(h)
    counts = {"tried": 0, "passed": 0}

    @settings(max_examples=EXAMPLES, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(case=operation.as_strategy(generation_mode=mode))
    def run(case: Any) -> None:
        counts["tried"] += 1
        body = case.body.decode("utf-8", "replace") if isinstance(case.body, bytes) else case.body
        h.report.sent(json.dumps([case.path_parameters, case.query, body], default=str))
        response = case.call(base_url=h.stack.api_url, session=h.http, timeout=60)
        h.report.saw(response.text)
        case.validate_response(response, checks=CHECKS)
        assert not leaks(response.text), response.text[:300]
        counts["passed"] += 1

    try:
        run()
    finally:
        reliability.cases(SUITE, counts["tried"], counts["passed"])
    # Generated requests name no real order: nothing was recorded or announced.
    finish_without_records(h, events_before, before)
