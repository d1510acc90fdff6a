"""Who may call what, as deployed: each route's authorization, the bus's policy, throttling, TTL.

Read from SAM's own translation of template.yaml (tests/fixtures/sam.py), so the assertions hold
for what CloudFormation receives, not only for what the template's author wrote.
"""

from __future__ import annotations

from typing import Any

import pytest
from fixtures.sam import sam_template, translated_template

# Every route of the HTTP API and who may call it. A new route must be added here on purpose.
INTENDED = {
    ("POST", "/checkouts"): "AWS_IAM",  # the merchant's backend
    ("GET", "/checkouts"): "AWS_IAM",
    ("GET", "/checkouts/{checkoutId}"): "AWS_IAM",
    ("POST", "/payments/verify"): "NONE",  # the shopper's page
    ("GET", "/payments/callback"): "NONE",  # StepPay's successUrl/errorUrl
    ("POST", "/webhooks/steppay"): "NONE",  # StepPay, authenticated by its signature
}


@pytest.fixture(scope="module")
def deployed() -> dict[str, Any]:
    return translated_template()


# The api-key variant (MerchantApiKeyAuth=enabled): the same checkout routes on a second API, open
# at the gateway; the function checks the bearer key before anything else.
INTENDED_KEY_API = {
    ("POST", "/checkouts"): "NONE",
    ("GET", "/checkouts"): "NONE",
    ("GET", "/checkouts/{checkoutId}"): "NONE",
}


def _api_body(deployed: dict[str, Any], api: str = "HttpApi") -> dict[str, Any]:
    body: dict[str, Any] = deployed["Resources"][api]["Properties"]["Body"]
    return body


def route_authorization(deployed: dict[str, Any], api: str = "HttpApi") -> dict[tuple[str, str], str]:
    found: dict[tuple[str, str], str] = {}
    for path, methods in _api_body(deployed, api)["paths"].items():
        # A conditional function's paths come wrapped: {"Fn::If": [condition, paths, NoValue]}.
        methods = methods["Fn::If"][1] if "Fn::If" in methods else methods
        for method, operation in methods.items():
            operation = operation["Fn::If"][1] if "Fn::If" in operation else operation
            (scheme,) = [name for requirement in operation.get("security", [{}]) for name in requirement] or [
                "NONE"
            ]
            found[(method.upper(), path)] = scheme
    return found


def test_each_route_has_the_intended_authorization(deployed: dict[str, Any]) -> None:
    assert route_authorization(deployed) == INTENDED
    assert route_authorization(deployed, "MerchantKeyApi") == INTENDED_KEY_API


def test_the_api_key_variant_exists_only_when_enabled_and_checks_the_key_itself(
    deployed: dict[str, Any],
) -> None:
    resources = deployed["Resources"]
    assert resources["MerchantKeyApi"]["Condition"] == "MerchantApiKeyAuthEnabled"
    function = resources["CheckoutApiKeyFunction"]
    assert function["Condition"] == "MerchantApiKeyAuthEnabled"
    variables = function["Properties"]["Environment"]["Variables"]
    assert variables["MERCHANT_AUTH"] == "api-key"
    assert "MERCHANT_API_KEYS_PARAM" in variables
    # The AWS_IAM function never runs in api-key mode, whatever a request's headers say.
    iam_variables = resources["CheckoutFunction"]["Properties"]["Environment"]["Variables"]
    assert "MERCHANT_AUTH" not in iam_variables
    assert sam_template()["Parameters"]["MerchantApiKeyAuth"]["Default"] == "disabled"


def test_iam_is_sigv4_and_the_default_for_any_route_that_says_nothing(deployed: dict[str, Any]) -> None:
    schemes = _api_body(deployed)["components"]["securitySchemes"]
    assert schemes["AWS_IAM"]["x-amazon-apigateway-authtype"] == "awsSigv4"
    api = sam_template()["Resources"]["HttpApi"]["Properties"]
    assert api["Auth"]["DefaultAuthorizer"] == "AWS_IAM"


def test_the_comparison_sees_an_opened_route() -> None:
    # The check must fail if a merchant route were made public: flip one and compare.
    template = translated_template()
    body = _api_body(template)
    body["paths"]["/checkouts"]["post"]["security"] = [{"NONE": []}]
    assert route_authorization(template) != INTENDED


def test_every_public_route_is_throttled() -> None:
    settings = sam_template()["Resources"]["HttpApi"]["Properties"]["DefaultRouteSettings"]
    assert settings["ThrottlingRateLimit"] == {"Ref": "ThrottlingRateLimit"}
    assert settings["ThrottlingBurstLimit"] == {"Ref": "ThrottlingBurstLimit"}


def test_only_the_publisher_may_put_the_bundles_events_on_the_bus(deployed: dict[str, Any]) -> None:
    policies = [r for r in deployed["Resources"].values() if r["Type"] == "AWS::Events::EventBusPolicy"]
    assert len(policies) == 1
    statement = policies[0]["Properties"]["Statement"]
    assert statement["Effect"] == "Deny"
    assert statement["Principal"] == "*"
    assert statement["Action"] == "events:PutEvents"
    assert statement["Condition"]["StringEquals"] == {"events:source": "steppay.payments"}
    assert statement["Condition"]["ArnNotEquals"] == {
        "aws:PrincipalArn": {"Fn::GetAtt": ["PublisherFunctionRole", "Arn"]}
    }
    assert policies[0]["Properties"]["EventBusName"] == {"Ref": "EventBus"}


def test_unpaid_registrations_expire(deployed: dict[str, Any]) -> None:
    table = deployed["Resources"]["PaymentsTable"]["Properties"]
    assert table["TimeToLiveSpecification"] == {"AttributeName": "ttl", "Enabled": True}


def test_a_payment_mismatch_alarms(deployed: dict[str, Any]) -> None:
    alarm = deployed["Resources"]["PaymentMismatchAlarm"]["Properties"]
    assert alarm["MetricName"] == "PaymentMismatchEvents"  # the publisher's count of `Payment Mismatch`
    assert alarm["Threshold"] == 0
    assert alarm["ComparisonOperator"] == "GreaterThanThreshold"
    assert alarm["AlarmActions"] == [{"Ref": "AlarmTopic"}]


def test_the_backend_policy_grants_invoke_on_the_checkout_routes_only(deployed: dict[str, Any]) -> None:
    (statement,) = deployed["Resources"]["MerchantBackendPolicy"]["Properties"]["PolicyDocument"]["Statement"]
    assert statement["Action"] == "execute-api:Invoke"
    routes = sorted(r["Fn::Sub"].split("${Stage}/")[1] for r in statement["Resource"])
    # One grant per AWS_IAM route of INTENDED ({checkoutId} as API Gateway's `*`), nothing else.
    iam_routes = sorted(
        f"{m}{p.replace('{checkoutId}', '*')}" for (m, p), a in INTENDED.items() if a == "AWS_IAM"
    )
    assert routes == iam_routes == ["GET/checkouts", "GET/checkouts/*", "POST/checkouts"]
