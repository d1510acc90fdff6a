"""Each function's IAM policy grants exactly the AWS actions its code calls, on its own resources.

Granted: template.yaml expanded by SAM's own translator (policy templates such as
`SQSSendMessagePolicy` included), each function's role read from the output. Called: what the
functions did during this test session, recorded by the local stack's workers
(`LOCAL_RECORD_AWS_CALLS`, set for the session by tests/fixtures/aws.py; see
local/steppay_local/_bootstrap.py) in `test-artifacts/aws-calls/<LogicalId>.txt`. Neither side is
listed by hand.

For DynamoDB, SQS and EventBridge the two sets must be equal: called but not granted fails on AWS
(AccessDenied), granted but never called is wider than the code. The comparison runs last
(`run_last`), after every e2e, hostile and fault test has exercised the functions; a run of part
of the suite (`pytest tests/build`) has no recording and skips it.

Left out of the equality, with the reason:

* SSM Parameter Store / Secrets Manager: never called locally. The local stack hands the
  functions their Secret-Token and webhook keys as plain variables (`STEPPAY_SECRET_TOKEN`,
  `STEPPAY_WEBHOOK_KEYS`, the `*_PARAM` names blank), so these grants are checked on their own
  (`test_secret_grants_are_one_get_on_one_name`).
* CloudWatch Logs and X-Ray: SAM's managed policies (AWSLambdaBasicExecutionRole,
  AWSXrayWriteOnlyAccess), used by the Lambda runtime and the tracer, not by boto3 calls here.
* What SAM adds for an event source (AWSLambdaDynamoDBExecutionRole, AWSLambdaSQSQueueExecutionRole,
  the stream's on-failure `sqs:SendMessage`): used by Lambda's event source mapping on the
  function's behalf. They are found by translating the template a second time without the
  functions' `Policies`: what is still there is SAM's, not the function's.
"""

from __future__ import annotations

import copy
import fnmatch
import json
import os
import re
import subprocess
import sys
import textwrap
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import boto3
import botocore.session
import pytest
from samtranslator.parser.parser import Parser
from samtranslator.translator.translator import Translator
from samtranslator.yaml_helper import yaml_parse

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "template.yaml"
# tests/fixtures/aws.py records there (LOCAL_RECORD_AWS_CALLS, set for the session)
CALLS_DIR = Path(os.environ.get("LOCAL_RECORD_AWS_CALLS") or ROOT / "test-artifacts" / "aws-calls")
REGION = "ap-northeast-2"
ACCOUNT = "123456789012"
FUNCTION_TYPE = "AWS::Serverless::Function"

#: Services whose granted actions must equal the called ones.
COMPARED_SERVICES = frozenset({"dynamodb", "sqs", "events"})
#: Not called locally (secrets are plain variables there): checked by their own test.
SECRET_SERVICES = frozenset({"ssm", "secretsmanager"})
FORBIDDEN_POLICIES = ("DynamoDBCrudPolicy", "DynamoDBWritePolicy", "AmazonDynamoDBFullAccess")
#: Every function must have been invoked by a whole-suite run (the example subscriber is invoked
#: directly by tests/e2e/test_entitlements_subscriber.py, not only when the bus delivers to it).
MAY_BE_UNEXERCISED: frozenset[str] = frozenset()
#: The suites that drive the local stack; all of them collected = "the whole suite".
STACK_SUITES = ("e2e", "hostile", "faults")
NO_RECORDING = "no recorded run: run the e2e suite first (e.g. make test)"


# --- the template, as SAM expands it -----------------------------------------------------------


def load_template(path: Path = TEMPLATE) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml_parse(path.read_text(encoding="utf-8"))
    return loaded


def function_ids(template: Mapping[str, Any]) -> list[str]:
    return sorted(k for k, v in template.get("Resources", {}).items() if v.get("Type") == FUNCTION_TYPE)


def translate(template: Mapping[str, Any], *, without_function_policies: bool = False) -> dict[str, Any]:
    """The CloudFormation SAM makes of ``template`` (no AWS needed: region given, no managed
    policy names to look up).

    Local code locations become S3 URIs, as `sam package` leaves them. HttpApi/Api events are
    dropped: they add routes and `AWS::Lambda::Permission`s, never anything to a role, and the
    API's auth wiring is `sam validate`'s business (make lint), not this test's.
    """
    sam = copy.deepcopy(dict(template))
    for logical_id, resource in sam.get("Resources", {}).items():
        props = resource.get("Properties") or {}
        for key in ("CodeUri", "ContentUri"):
            if isinstance(props.get(key), str):
                props[key] = f"s3://unused/{logical_id}.zip"
        if isinstance(props.get("Events"), dict):
            props["Events"] = {
                name: event
                for name, event in props["Events"].items()
                if event.get("Type") not in ("HttpApi", "Api")
            }
        if without_function_policies and resource.get("Type") == FUNCTION_TYPE:
            props.pop("Policies", None)
    translator = Translator(None, Parser(), boto_session=boto3.session.Session(region_name=REGION))
    output: dict[str, Any] = translator.translate(sam, parameter_values={}, get_managed_policy_map=dict)
    return output


def conditions(template: Mapping[str, Any], parameters: Mapping[str, Any]) -> dict[str, bool]:
    """The template's conditions for ``parameters`` (defaults for the others)."""
    values = {k: v.get("Default") for k, v in template.get("Parameters", {}).items()}
    values.update(parameters)
    definitions = template.get("Conditions", {})

    def value(expr: Any) -> Any:
        if isinstance(expr, dict) and len(expr) == 1:
            ((key, arg),) = expr.items()
            if key == "Ref":
                return values[arg]
            if key == "Condition":
                return truth(definitions[arg])
            if key in ("Fn::Equals", "Fn::Not", "Fn::And", "Fn::Or"):
                return truth(expr)
        return expr

    def truth(expr: Any) -> bool:
        ((key, arg),) = expr.items()
        if key == "Fn::Equals":
            return str(value(arg[0])) == str(value(arg[1]))
        if key == "Fn::Not":
            return not truth(arg[0])
        if key == "Fn::And":
            return all(truth(a) for a in arg)
        if key == "Fn::Or":
            return any(truth(a) for a in arg)
        if key == "Condition":
            return truth(definitions[arg])
        raise ValueError(f"unsupported condition {expr!r}")

    return {name: truth(definition) for name, definition in definitions.items()}


def resolve_ifs(expr: Any, truth: Mapping[str, bool]) -> Any:
    """``expr`` with every Fn::If decided (AWS::NoValue dropped)."""
    if isinstance(expr, list):
        items = [resolve_ifs(e, truth) for e in expr]
        return [e for e in items if e is not _NO_VALUE]
    if isinstance(expr, dict):
        if set(expr) == {"Fn::If"}:
            name, when_true, when_false = expr["Fn::If"]
            return resolve_ifs(when_true if truth[name] else when_false, truth)
        if expr == {"Ref": "AWS::NoValue"}:
            return _NO_VALUE
        return {k: resolve_ifs(v, truth) for k, v in expr.items()}
    return expr


_NO_VALUE = object()
_SUB_TOKEN = re.compile(r"\$\{([^}]+)\}")


def resource_key(expr: Any, resources: Mapping[str, Any]) -> str:
    """A Resource of a statement as the template's resource it names: ``PaymentsTable``,
    ``PaymentsTable/index/SettledOrdersIndex``, ``WebhookQueue``; anything else as written."""
    if isinstance(expr, dict) and len(expr) == 1:
        ((key, arg),) = expr.items()
        if key == "Ref" and arg in resources:
            return str(arg)
        if key == "Fn::GetAtt":
            target, attribute = arg if isinstance(arg, list) else str(arg).split(".", 1)
            return f"{target}/stream" if attribute == "StreamArn" else str(target)
        if key == "Fn::Sub":
            text, variables = (arg, {}) if isinstance(arg, str) else (arg[0], arg[1])
            named: list[tuple[re.Match[str], str]] = []
            for token in _SUB_TOKEN.finditer(text):
                name = token.group(1)
                if name in variables:
                    target = resource_key(variables[name], resources)
                else:
                    target = name.split(".", 1)[0]
                if target.split("/", 1)[0] in resources:
                    named.append((token, target))
            if len(named) == 1:
                token, target = named[0]
                return target + text[token.end() :]
    return expr if isinstance(expr, str) else json.dumps(expr, sort_keys=True)


@cache
def _operations(service: str) -> tuple[str, ...]:
    try:
        return tuple(botocore.session.get_session().get_service_model(service).operation_names)
    except Exception:
        return ()


def expand_action(action: str) -> set[str]:
    """``sqs:SendMessage*`` as the operations it allows (botocore's names for the service)."""
    prefix, _, operation = action.partition(":")
    if not any(c in operation for c in "*?"):
        return {action}
    matched = {f"{prefix}:{o}" for o in _operations(prefix) if fnmatch.fnmatchcase(o, operation)}
    return matched or {action}


@dataclass(frozen=True)
class Statement:
    policy: str
    actions: tuple[str, ...]  # as written (after Fn::If)
    resources: tuple[str, ...]  # resource keys
    raw_resources: tuple[Any, ...]

    @property
    def allowed(self) -> set[str]:
        return {a for action in self.actions for a in expand_action(action)}

    def services(self) -> set[str]:
        return {a.split(":", 1)[0] for a in self.actions}


@dataclass
class FunctionGrants:
    """What one function's role allows its code, and what SAM added beside it."""

    statements: list[Statement] = field(default_factory=list)
    platform_policies: list[str] = field(default_factory=list)  # SAM's, for the event sources
    managed: list[str] = field(default_factory=list)  # ManagedPolicyArns from the function's Policies
    sam_managed: list[str] = field(default_factory=list)  # SAM's (logs, X-Ray, event sources)

    @property
    def actions(self) -> set[str]:
        return {a for s in self.statements for a in s.allowed}

    def resources(self, service: str) -> set[str]:
        return {r for s in self.statements if service in s.services() for r in s.resources}


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def granted(
    template: Mapping[str, Any], parameters: Mapping[str, Any] | None = None
) -> dict[str, FunctionGrants]:
    """Every function's grants, from SAM's translation of ``template`` (Fn::If decided for
    ``parameters``)."""
    truth = conditions(template, parameters or {})
    output = translate(template)
    baseline = translate(template, without_function_policies=True)
    resources = output["Resources"]
    result: dict[str, FunctionGrants] = {}
    for function in function_ids(template):
        role_ref = resources[function]["Properties"].get("Role")
        if not (isinstance(role_ref, dict) and "Fn::GetAtt" in role_ref):
            raise AssertionError(f"{function}: its role is not one SAM creates ({role_ref!r})")
        role_id = role_ref["Fn::GetAtt"][0]
        role = resources[role_id]["Properties"]
        base_role = baseline["Resources"].get(role_id, {}).get("Properties", {})
        sam_policies = [json.dumps(p, sort_keys=True) for p in base_role.get("Policies", [])]
        grants = FunctionGrants()
        for policy in role.get("Policies", []):
            if json.dumps(policy, sort_keys=True) in sam_policies:
                grants.platform_policies.append(policy["PolicyName"])
                continue
            document = resolve_ifs(policy["PolicyDocument"], truth)
            for statement in _as_list(document.get("Statement", [])):
                if statement.get("Effect") != "Allow":
                    continue
                raw = tuple(_as_list(statement.get("Resource", [])))
                grants.statements.append(
                    Statement(
                        policy=policy["PolicyName"],
                        actions=tuple(_as_list(statement.get("Action", []))),
                        resources=tuple(resource_key(r, resources) for r in raw),
                        raw_resources=raw,
                    )
                )
        base_managed = [json.dumps(m, sort_keys=True) for m in base_role.get("ManagedPolicyArns", [])]
        for managed in role.get("ManagedPolicyArns", []):
            text = managed if isinstance(managed, str) else json.dumps(managed, sort_keys=True)
            (
                grants.sam_managed if json.dumps(managed, sort_keys=True) in base_managed else grants.managed
            ).append(text)
        result[function] = grants
    return result


# --- the recording --------------------------------------------------------------------------


@dataclass
class Recording:
    actions: set[str]
    resources: dict[str, set[str]]  # service -> resource keys (the template's names)


def _physical_names(directory: Path, template_path: Path) -> dict[str, str]:
    """Physical name (table name, queue URL, bus name) -> logical id, from every stack of
    ``template_path`` that recorded into ``directory`` (LocalStack writes `_stack-*.json`)."""
    names: dict[str, str] = {}
    for path in sorted(directory.glob("_stack-*.json")):
        stack = json.loads(path.read_text(encoding="utf-8"))
        if Path(stack.get("template", "")).resolve() != template_path.resolve():
            continue
        for kind in ("tables", "queues", "buses"):
            names.update({physical: logical for logical, physical in stack.get(kind, {}).items()})
    return names


def read_recording(directory: Path, function: str, template_path: Path = TEMPLATE) -> Recording | None:
    actions_file = directory / f"{function}.txt"
    if not actions_file.is_file():
        return None
    actions = {line.strip() for line in actions_file.read_text(encoding="utf-8").splitlines() if line.strip()}
    names = _physical_names(directory, template_path)
    resources: dict[str, set[str]] = {}
    resources_file = directory / f"{function}.resources.txt"
    lines = resources_file.read_text(encoding="utf-8").splitlines() if resources_file.is_file() else []
    for line in lines:
        action, _, physical = line.strip().partition(" ")
        if not physical:
            continue
        table, sep, index = physical.partition("/index/")
        key = names[table] + sep + index if table in names else names.get(physical, physical)
        resources.setdefault(action.split(":", 1)[0], set()).add(key)
    return Recording(actions, resources)


# --- the comparison ---------------------------------------------------------------------------


def compare(function: str, recording: Recording, grants: FunctionGrants) -> list[str]:
    """What differs between the calls recorded for ``function`` and its grants (empty: equal)."""
    problems: list[str] = []
    allowed = grants.actions
    for action in sorted(recording.actions - allowed):
        problems.append(f"{function} calls {action}, which its policy does not grant (AccessDenied on AWS)")
    for action in sorted(allowed - recording.actions):
        if action.split(":", 1)[0] in COMPARED_SERVICES:
            problems.append(f"{function} is granted {action}, which its code never called")
    for service in sorted(COMPARED_SERVICES):
        wanted = recording.resources.get(service, set())
        given = grants.resources(service)
        for resource in sorted(wanted - given):
            problems.append(f"{function} calls {service} on {resource}, which no {service} statement names")
        for resource in sorted(given - wanted):
            problems.append(f"{function} is granted {service} on {resource}, which its code never used")
    return problems


# --- static checks (no recording needed) ------------------------------------------------------


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return load_template()


@pytest.fixture(scope="module")
def grants(template: dict[str, Any]) -> dict[str, FunctionGrants]:
    return granted(template, {"SecretsStore": "ssm"})


def test_no_broad_dynamodb_policies(template: dict[str, Any], grants: dict[str, FunctionGrants]) -> None:
    problems = []
    for function in function_ids(template):
        for policy in _as_list(template["Resources"][function]["Properties"].get("Policies", [])):
            text = json.dumps(policy)
            problems += [f"{function}: {name}" for name in FORBIDDEN_POLICIES if name in text]
            if isinstance(policy, str):
                problems.append(f"{function}: managed policy {policy} (grant statements instead)")
        function_grants = grants[function]
        problems += [f"{function}: managed policy {m} from its Policies" for m in function_grants.managed]
        problems += [
            f"{function}: {m}"
            for m in function_grants.sam_managed
            for name in FORBIDDEN_POLICIES
            if name in m
        ]
        for statement in function_grants.statements:
            problems += [
                f"{function}: wildcard {action} ({statement.policy})"
                for action in statement.actions
                if (action.startswith("dynamodb:") and any(c in action for c in "*?")) or action == "*"
            ]
    assert not problems, "\n".join(problems)


def test_dynamodb_statements_name_tables_and_indexes_of_the_template(
    template: dict[str, Any], grants: dict[str, FunctionGrants]
) -> None:
    resources = template["Resources"]
    problems = []
    for function, function_grants in grants.items():
        for statement in function_grants.statements:
            if "dynamodb" not in statement.services():
                continue
            for key in statement.resources:
                table, _, index = key.partition("/index/")
                table_resource = resources.get(table, {})
                if table_resource.get("Type") != "AWS::DynamoDB::Table":
                    problems.append(
                        f"{function}: {statement.policy} names {key}, not a table of the template"
                    )
                    continue
                indexes = {
                    i["IndexName"]
                    for i in table_resource["Properties"].get("GlobalSecondaryIndexes", [])
                    + table_resource["Properties"].get("LocalSecondaryIndexes", [])
                }
                if index and index not in indexes:
                    problems.append(f"{function}: {statement.policy} names {key}, not an index of {table}")
    assert not problems, "\n".join(problems)


def _render(expr: Any, values: Mapping[str, Any]) -> str:
    if isinstance(expr, str):
        return expr
    if isinstance(expr, dict) and set(expr) == {"Fn::Sub"}:
        arg = expr["Fn::Sub"]
        text, variables = (arg, {}) if isinstance(arg, str) else (arg[0], arg[1])
        local = {**values, **{k: _render(v, values) for k, v in variables.items()}}
        return _SUB_TOKEN.sub(lambda m: str(local.get(m.group(1), m.group(0))), text)
    if isinstance(expr, dict) and set(expr) == {"Ref"} and expr["Ref"] in values:
        return str(values[expr["Ref"]])
    return json.dumps(expr, sort_keys=True)


# How each store's secret is named in IAM, and read (steppay.secrets: Powertools get_parameter /
# get_secret, one value per name).
SECRET_STORES = {
    "ssm": ("ssm:GetParameter", "arn:aws:ssm:{region}:{account}:parameter{name}"),
    "secretsmanager": (
        "secretsmanager:GetSecretValue",
        "arn:aws:secretsmanager:{region}:{account}:secret:{name}-*",
    ),
}
#: Read by the functions that call StepPay (the token) and by the webhook intake (the keys).
SECRET_NAME_PARAMETERS = ("SecretTokenName", "WebhookKeysName")


@pytest.mark.parametrize("store", sorted(SECRET_STORES))
def test_secret_grants_are_one_get_on_one_name(template: dict[str, Any], store: str) -> None:
    """Secrets are not read locally (see the module docstring), so this checks the grants' shape:
    each is exactly the store's one read action on exactly one name, the value of one of the
    template's parameters (SecretTokenName, WebhookKeysName, ...), and never granted twice."""
    action, arn_format = SECRET_STORES[store]
    values = {k: v.get("Default") for k, v in template["Parameters"].items()}
    values.update({"AWS::Partition": "aws", "AWS::Region": REGION, "AWS::AccountId": ACCOUNT})
    expected = {
        arn_format.format(region=REGION, account=ACCOUNT, name=value): name
        for name, value in values.items()
        if name in template["Parameters"] and isinstance(value, str) and value.startswith("/")
    }
    readers: dict[str, set[str]] = {}
    problems = []
    for function, function_grants in granted(template, {"SecretsStore": store}).items():
        for statement in function_grants.statements:
            if not statement.services() & SECRET_SERVICES:
                continue
            if statement.services() - SECRET_SERVICES or list(statement.actions) != [action]:
                problems.append(
                    f"{function}: {statement.policy} grants {list(statement.actions)}, not [{action}]"
                )
            arns = [_render(r, values) for r in statement.raw_resources]
            if len(arns) != 1 or arns[0] not in expected:
                problems.append(
                    f"{function}: {statement.policy} names {arns}, not exactly one of {sorted(expected)}"
                )
                continue
            name = expected[arns[0]]
            if function in readers.setdefault(name, set()):
                problems.append(f"{function}: {name} is granted twice")
            readers[name].add(function)
    assert not problems, "\n".join(problems)
    # Someone reads each secret (the webhook intake the keys; the StepPay callers the token).
    assert set(SECRET_NAME_PARAMETERS) <= set(readers), readers


# --- the recorded run -------------------------------------------------------------------------


def _recordings() -> dict[str, Recording | None]:
    """This session's recording, function by function; skips when there is none to trust."""
    token = os.environ.get("LOCAL_RECORD_AWS_CALLS_SESSION")  # tests/fixtures/aws.py
    session_file = CALLS_DIR / "_session"
    found = session_file.read_text(encoding="utf-8").strip() if session_file.is_file() else None
    if token is None or found is None:
        pytest.skip(NO_RECORDING)
    if found != token:
        pytest.skip(
            f"{CALLS_DIR} was emptied by another pytest session (same working tree) during this one: "
            "its recording is incomplete"
        )
    template = load_template()
    recordings = {f: read_recording(CALLS_DIR, f) for f in function_ids(template)}
    if not any(recordings.values()):
        pytest.skip(NO_RECORDING)
    # A function the local stack does not deploy (its Condition is false for the defaults, such as
    # the api-key variant of the checkout routes) runs the same code as a deployed twin: it is
    # held to the twin's recording.
    for function, twin in undeployed_twins(template).items():
        if recordings.get(function) is None:
            recordings[function] = recordings.get(twin)
    return recordings


def undeployed_twins(template: Mapping[str, Any]) -> dict[str, str]:
    """{undeployed function: deployed function with the same CodeUri and Handler}."""
    truth = conditions(template, {})
    resources = template.get("Resources", {})

    def code(function: str) -> tuple[Any, Any]:
        props = resources[function].get("Properties") or {}
        return props.get("CodeUri"), props.get("Handler")

    deployed = [f for f in function_ids(template) if truth.get(resources[f].get("Condition", ""), True)]
    twins: dict[str, str] = {}
    for function in function_ids(template):
        if function in deployed:
            continue
        matches = [f for f in deployed if code(f) == code(function)]
        if matches:
            twins[function] = matches[0]
    return twins


def _whole_suite(session: pytest.Session) -> bool:
    collected = set()
    for item in session.items:
        try:
            collected.add(Path(str(item.path)).resolve().relative_to(ROOT / "tests").parts[0])
        except ValueError:
            continue
    return all(suite in collected for suite in STACK_SUITES)


@pytest.mark.run_last
@pytest.mark.parametrize("function", function_ids(load_template()))
def test_iam_actions_are_exactly_those_the_code_calls(
    function: str, grants: dict[str, FunctionGrants]
) -> None:
    recording = _recordings()[function]
    if recording is None:
        pytest.skip(f"{function} was not invoked in this run (no {CALLS_DIR.name}/{function}.txt)")
    problems = compare(function, recording, grants[function])
    recorded = ", ".join(sorted(recording.actions))
    assert not problems, "\n".join([*problems, f"(recorded for {function}: {recorded})"])


@pytest.mark.run_last
def test_the_whole_suite_invokes_every_function(request: pytest.FixtureRequest) -> None:
    recordings = _recordings()
    missing = sorted(f for f, r in recordings.items() if r is None)
    if not _whole_suite(request.session):
        pytest.skip(
            f"part of the suite only ({', '.join(STACK_SUITES)} not all collected); not invoked: {missing}"
        )
    unexpected = sorted(set(missing) - MAY_BE_UNEXERCISED)
    assert not unexpected, f"never invoked by the whole suite, so their policies are unchecked: {unexpected}"


def test_the_api_key_checkout_variant_is_held_to_the_deployed_checkout_code() -> None:
    assert undeployed_twins(load_template()) == {"CheckoutApiKeyFunction": "CheckoutFunction"}


# --- the check can fail: a small template and a made-up recording -------------------------------

SMALL_TEMPLATE: dict[str, Any] = {
    "AWSTemplateFormatVersion": "2010-09-09",
    "Transform": "AWS::Serverless-2016-10-31",
    "Resources": {
        "Table": {
            "Type": "AWS::DynamoDB::Table",
            "Properties": {
                "BillingMode": "PAY_PER_REQUEST",
                "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"}],
                "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}],
            },
        },
        "Queue": {"Type": "AWS::SQS::Queue"},
        "Fn": {
            "Type": FUNCTION_TYPE,
            "Properties": {
                "CodeUri": "fn/",
                "Handler": "fn.handler",
                "Runtime": "python3.13",
                "Policies": [
                    {
                        "Statement": [
                            {
                                "Effect": "Allow",
                                "Action": ["dynamodb:GetItem", "dynamodb:PutItem"],
                                "Resource": {"Fn::GetAtt": ["Table", "Arn"]},
                            }
                        ]
                    },
                    {"SQSSendMessagePolicy": {"QueueName": {"Fn::GetAtt": ["Queue", "QueueName"]}}},
                ],
            },
        },
    },
}


def test_compare_fails_on_a_missing_and_on_an_extra_action() -> None:
    grants = granted(SMALL_TEMPLATE)["Fn"]
    assert grants.actions == {
        "dynamodb:GetItem",
        "dynamodb:PutItem",
        "sqs:SendMessage",
        "sqs:SendMessageBatch",
    }
    recording = Recording(
        actions={"dynamodb:GetItem", "dynamodb:UpdateItem", "sqs:SendMessage"},
        resources={"dynamodb": {"Table"}, "sqs": {"Queue"}},
    )
    problems = compare("Fn", recording, grants)
    assert problems == [
        "Fn calls dynamodb:UpdateItem, which its policy does not grant (AccessDenied on AWS)",
        "Fn is granted dynamodb:PutItem, which its code never called",
        # SAM's SQSSendMessagePolicy grants sqs:SendMessage*: the batch call too.
        "Fn is granted sqs:SendMessageBatch, which its code never called",
    ]
    exact = Recording(
        actions={"dynamodb:GetItem", "dynamodb:PutItem", "sqs:SendMessage", "sqs:SendMessageBatch"},
        resources={"dynamodb": {"Table"}, "sqs": {"Queue"}},
    )
    assert compare("Fn", exact, grants) == []
    elsewhere = Recording(exact.actions, {"dynamodb": {"Table/index/ByOwner"}, "sqs": {"Queue"}})
    assert compare("Fn", elsewhere, grants) == [
        "Fn calls dynamodb on Table/index/ByOwner, which no dynamodb statement names",
        "Fn is granted dynamodb on Table, which its code never used",
    ]


def test_sam_event_source_grants_are_told_apart_from_the_functions_own() -> None:
    small = copy.deepcopy(SMALL_TEMPLATE)
    small["Resources"]["Fn"]["Properties"]["Events"] = {
        "Work": {"Type": "SQS", "Properties": {"Queue": {"Fn::GetAtt": ["Queue", "Arn"]}}}
    }
    grants = granted(small)["Fn"]
    assert "arn:aws:iam::aws:policy/service-role/AWSLambdaSQSQueueExecutionRole" in grants.sam_managed
    assert not grants.managed
    assert not any("sqs:ReceiveMessage" in s.allowed for s in grants.statements)


def test_a_recording_reads_back_as_the_templates_names(tmp_path: Path) -> None:
    (tmp_path / "Fn.txt").write_text("dynamodb:Query\nsqs:SendMessage\n", encoding="utf-8")
    (tmp_path / "Fn.resources.txt").write_text(
        "dynamodb:Query s-Table/index/ByOwner\nsqs:SendMessage http://127.0.0.1:1/123456789012/s-Queue\n",
        encoding="utf-8",
    )
    stack = {
        "template": str(TEMPLATE),
        "tables": {"Table": "s-Table"},
        "queues": {"Queue": "http://127.0.0.1:1/123456789012/s-Queue"},
    }
    (tmp_path / "_stack-s-1.json").write_text(json.dumps(stack), encoding="utf-8")
    recording = read_recording(tmp_path, "Fn")
    assert recording == Recording(
        {"dynamodb:Query", "sqs:SendMessage"}, {"dynamodb": {"Table/index/ByOwner"}, "sqs": {"Queue"}}
    )
    assert read_recording(tmp_path, "Other") is None


RECORDER_SCRIPT = textwrap.dedent(
    """
    import boto3, botocore.config, sys
    sys.path.insert(0, sys.argv[1])
    import _bootstrap
    _bootstrap._install_call_recorder()
    config = botocore.config.Config(connect_timeout=0.2, read_timeout=0.2, retries={"total_max_attempts": 1})
    endpoint = "http://127.0.0.1:9"  # discard: nothing answers
    calls = [
        lambda: boto3.client("dynamodb", endpoint_url=endpoint, config=config).get_item(
            TableName="s-Table", Key={"pk": {"S": "x"}}),
        lambda: boto3.session.Session().client("dynamodb", endpoint_url=endpoint, config=config).query(
            TableName="s-Table", IndexName="ByOwner", KeyConditionExpression="pk = :v",
            ExpressionAttributeValues={":v": {"S": "x"}}),
        lambda: boto3.resource("dynamodb", endpoint_url=endpoint, config=config).Table("s-Table").update_item(
            Key={"pk": "x"}, UpdateExpression="SET a = :a", ExpressionAttributeValues={":a": 1}),
        lambda: boto3.client("events", endpoint_url=endpoint, config=config).put_events(
            Entries=[{"Source": "s", "DetailType": "d", "Detail": "{}", "EventBusName": "bus"}]),
        lambda: boto3.client("dynamodb", endpoint_url=endpoint, config=config).get_item(
            TableName="s-Table", Key={"pk": {"S": "y"}}),
    ]
    for call in calls:
        try:
            call()
        except Exception:
            pass
    """
)


def test_the_worker_bootstrap_records_every_clients_calls(tmp_path: Path) -> None:
    """boto3.client, a Session of its own (as Powertools makes) and a resource are all recorded."""
    env = {
        **os.environ,
        "LOCAL_RECORD_AWS_CALLS": str(tmp_path),
        "LOCAL_FUNCTION_LOGICAL_ID": "Fn",
        "AWS_ACCESS_KEY_ID": "local",
        "AWS_SECRET_ACCESS_KEY": "local",
        "AWS_DEFAULT_REGION": REGION,
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        "AWS_EC2_METADATA_DISABLED": "true",
    }
    bootstrap_dir = ROOT / "local" / "steppay_local"
    subprocess.run(
        [sys.executable, "-c", RECORDER_SCRIPT, str(bootstrap_dir)], env=env, check=True, timeout=60
    )
    assert (tmp_path / "Fn.txt").read_text(encoding="utf-8").splitlines() == [
        "dynamodb:GetItem",
        "dynamodb:Query",
        "dynamodb:UpdateItem",
        "events:PutEvents",
    ]
    assert (tmp_path / "Fn.resources.txt").read_text(encoding="utf-8").splitlines() == [
        "dynamodb:GetItem s-Table",
        "dynamodb:Query s-Table/index/ByOwner",
        "dynamodb:UpdateItem s-Table",
        "events:PutEvents bus",
    ]
