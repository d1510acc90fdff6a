"""``template.yaml`` as the single source of truth for the local stack.

Reads a SAM/CloudFormation template (short-form tags such as ``!Ref`` and ``!GetAtt`` included),
resolves its parameters, conditions and intrinsic functions, and turns its resources into typed
specs: tables, queues, event buses, rules, functions with their merged environment and their event
sources, HTTP APIs. ``create_infrastructure`` then creates those tables in DynamoDB Local and those
queues, buses and rules in moto, plus the ``local-event-tap`` queue that receives every event put on
each bus. Nothing here is a second, hand-written copy of the template.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml  # type: ignore[import-untyped,unused-ignore]

from steppay_local._util import DEFAULT_REGION, LOG, client
from steppay_local.filtering import (
    DEFAULT_MAX_FILTERS,
    EventFilter,
    FilterPatternError,
    Source,
    parse_filter_criteria,
)

DEFAULT_STACK_NAME = "steppay-local"
MOTO_ACCOUNT_ID = "123456789012"
TAP_QUEUE_NAME = "local-event-tap"
TAP_RULE_NAME = "local-event-tap"
#: Matches every event (verified against moto's pattern matcher: every event has a string source).
MATCH_EVERYTHING = {"source": [{"prefix": ""}]}

FUNCTION_TYPE = "AWS::Serverless::Function"
LAYER_TYPES = ("AWS::Serverless::LayerVersion", "AWS::Lambda::LayerVersion")


class TemplateError(ValueError):
    """The template cannot be read or resolved locally."""


# --------------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------------


class CfnLoader(yaml.SafeLoader):  # type: ignore[misc,unused-ignore]
    """A YAML loader that understands CloudFormation's short-form intrinsic function tags."""


def _construct_intrinsic(loader: yaml.SafeLoader, tag_suffix: str, node: yaml.Node) -> dict[str, Any]:
    name = tag_suffix
    key = name if name in ("Ref", "Condition") else f"Fn::{name}"
    value: Any
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
        if name == "GetAtt" and isinstance(value, str):
            value = value.split(".", 1)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    elif isinstance(node, yaml.MappingNode):
        value = loader.construct_mapping(node, deep=True)
    else:  # pragma: no cover - yaml has no other node kinds
        raise TemplateError(f"unsupported node for !{name}")
    return {key: value}


CfnLoader.add_multi_constructor("!", _construct_intrinsic)


def load_template(path: Path) -> dict[str, Any]:
    """Parse a template file (YAML or JSON) into plain Python data with long-form intrinsics."""
    try:
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=CfnLoader)  # noqa: S506 - safe subclass
    except (OSError, yaml.YAMLError) as exc:
        raise TemplateError(f"cannot read template {path}: {exc}") from exc
    if not isinstance(data, dict) or not isinstance(data.get("Resources"), dict):
        raise TemplateError(f"{path} is not a CloudFormation template (no Resources)")
    return data


# --------------------------------------------------------------------------------------------
# Typed specs
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class HttpApiEvent:
    name: str
    method: str  # upper case, "ANY" for any
    path: str  # "/payments/verify", "/orders/{id}", "/{proxy+}", or "$default"
    api_id: str  # logical id of the HttpApi ("ServerlessHttpApi" for SAM's implicit API)
    payload_format_version: str = "2.0"
    timeout_in_millis: int | None = None
    #: The route's authorizer after SAM's rules (the event's ``Auth.Authorizer``, else the API's
    #: ``Auth.DefaultAuthorizer``; ``NONE`` opts out): None (no authorization), ``"AWS_IAM"``, or the
    #: name of another authorizer (JWT, Lambda), which the local API does not emulate and refuses.
    authorizer: str | None = None

    @property
    def route_key(self) -> str:
        return "$default" if self.path == "$default" else f"{self.method} {self.path}"


@dataclass(frozen=True)
class DynamoDBEvent:
    name: str
    table_logical_id: str | None
    stream_arn: str
    starting_position: str = "TRIM_HORIZON"
    batch_size: int = 100
    maximum_batching_window_seconds: float = 0
    maximum_retry_attempts: int = -1
    maximum_record_age_seconds: int = -1
    bisect_batch_on_function_error: bool = False
    report_batch_item_failures: bool = False
    on_failure_destination: str | None = None  # SQS queue ARN
    parallelization_factor: int = 1
    enabled: bool = True
    #: The parsed ``FilterCriteria`` (None: every record is delivered), validated at load.
    filter_criteria: EventFilter | None = None


@dataclass(frozen=True)
class SqsEvent:
    name: str
    queue_logical_id: str | None
    queue_arn: str
    batch_size: int = 10
    maximum_batching_window_seconds: float = 0
    report_batch_item_failures: bool = False
    enabled: bool = True
    maximum_concurrency: int | None = None
    filter_criteria: EventFilter | None = None


@dataclass(frozen=True)
class EventBridgeRuleEvent:
    """A SAM ``EventBridgeRule``/``CloudWatchEvent`` event (becomes a rule with a Lambda target)."""

    name: str
    rule_logical_id: str
    bus_name: str
    pattern: Any
    input: str | None = None
    input_path: str | None = None
    target_id: str = ""
    state: str = "ENABLED"
    retry_policy: Any = None
    dead_letter_arn: str | None = None


@dataclass(frozen=True)
class ScheduleEvent:
    """A SAM ``Schedule`` (EventBridge rule) or ``ScheduleV2`` (EventBridge Scheduler) event."""

    name: str
    kind: str  # "Schedule" or "ScheduleV2"
    expression: str
    input: str | None = None
    enabled: bool = True
    description: str | None = None
    timezone: str | None = None
    retry_policy: Any = None
    dead_letter_arn: str | None = None


@dataclass(frozen=True)
class OtherEvent:
    name: str
    type: str
    properties: Any


FunctionEvent = HttpApiEvent | DynamoDBEvent | SqsEvent | EventBridgeRuleEvent | ScheduleEvent | OtherEvent


@dataclass(frozen=True)
class FunctionSpec:
    logical_id: str
    name: str
    arn: str
    code_dir: Path
    handler: str
    runtime: str
    timeout: int
    memory_size: int
    environment: dict[str, str]
    layer_dirs: tuple[Path, ...]
    events: tuple[FunctionEvent, ...]
    async_maximum_retry_attempts: int = 2
    async_on_failure_destination: str | None = None  # SQS queue ARN

    def events_of(self, kind: type[Any]) -> list[Any]:
        return [event for event in self.events if isinstance(event, kind)]


@dataclass(frozen=True)
class TableSpec:
    logical_id: str
    name: str
    create_kwargs: dict[str, Any]
    ttl_attribute: str | None = None
    ignored: tuple[str, ...] = ()


@dataclass(frozen=True)
class QueueSpec:
    logical_id: str
    name: str
    attributes: dict[str, str]
    dead_letter_logical_id: str | None = None


@dataclass(frozen=True)
class BusSpec:
    logical_id: str
    name: str


@dataclass(frozen=True)
class TargetSpec:
    id: str
    arn: str
    kind: str  # "sqs", "lambda" or "other"
    logical_id: str | None = None  # the queue's or function's logical id when it is in the template
    input: str | None = None
    input_path: str | None = None
    input_transformer: Any = None
    sqs_parameters: Any = None
    retry_policy: Any = None
    dead_letter_arn: str | None = None


@dataclass(frozen=True)
class RuleSpec:
    logical_id: str
    name: str
    bus_name: str
    pattern: Any = None
    schedule_expression: str | None = None
    state: str = "ENABLED"
    targets: tuple[TargetSpec, ...] = ()


@dataclass(frozen=True)
class CorsConfig:
    allow_origins: tuple[str, ...] = ()
    allow_methods: tuple[str, ...] = ()
    allow_headers: tuple[str, ...] = ()
    expose_headers: tuple[str, ...] = ()
    max_age: int | None = None
    allow_credentials: bool = False


@dataclass(frozen=True)
class HttpApiSpec:
    logical_id: str
    stage_name: str
    cors: CorsConfig | None
    #: ``Auth.DefaultAuthorizer`` ("AWS_IAM", an authorizer's name, or None).
    default_authorizer: str | None = None
    #: ``Auth.EnableIamAuthorizer``.
    iam_enabled: bool = False
    #: ``Auth.Authorizers``: name -> kind ("JWT", "LAMBDA", or "UNKNOWN").
    authorizers: Mapping[str, str] = field(default_factory=dict, hash=False)


@dataclass
class LayerSpec:
    logical_id: str
    arn: str
    content_dir: Path | None
    python_dir: Path | None = None


# --------------------------------------------------------------------------------------------
# Resolution
# --------------------------------------------------------------------------------------------


class _NoValue:
    def __repr__(self) -> str:
        return "AWS::NoValue"


NO_VALUE: Any = _NoValue()

_SUB_RE = re.compile(r"\$\{([^}]*)\}")


def _as_str(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, list):
        return ",".join(_as_str(v) for v in value)
    if isinstance(value, dict):
        return json.dumps(value, separators=(",", ":"))
    return str(value)


def _as_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    return str(value).strip().lower() == "true"


def _as_int(value: Any, default: int) -> int:
    if value is None or value is NO_VALUE:
        return default
    return int(float(value))


class Template:
    """One template, resolved for a local stack.

    ``parameter_overrides`` win over the parameters' defaults. Physical names are local: a table is
    ``<stack>-<LogicalId>`` unless its ``TableName`` says otherwise; queues likewise. Attribute values
    known only once resources exist (a table's stream ARN, a queue's URL) are bound by
    ``create_infrastructure`` through ``bind``; specs built after that carry the real values.
    """

    def __init__(
        self,
        path: Path,
        parameter_overrides: Mapping[str, Any] | None = None,
        *,
        stack_name: str = DEFAULT_STACK_NAME,
        region: str = DEFAULT_REGION,
        account_id: str = MOTO_ACCOUNT_ID,
        moto_endpoint: str | None = None,
        max_filters: int = DEFAULT_MAX_FILTERS,
    ) -> None:
        self.path = path.resolve()
        #: Filters allowed per event source mapping (Lambda: 5, up to 10 on a quota increase).
        self.max_filters = max_filters
        self.base_dir = self.path.parent
        self.raw = load_template(self.path)
        self.stack_name = stack_name
        self.region = region
        self.account_id = account_id
        self.moto_endpoint = moto_endpoint
        self.globals: dict[str, Any] = self.raw.get("Globals") or {}
        self.parameters = self._resolve_parameters(dict(parameter_overrides or {}))
        self._conditions: dict[str, bool] = {}
        self._evaluating: set[str] = set()
        self.pseudo: dict[str, Any] = {
            "AWS::Region": region,
            "AWS::AccountId": account_id,
            "AWS::Partition": "aws",
            "AWS::URLSuffix": "amazonaws.com",
            "AWS::StackName": stack_name,
            "AWS::StackId": f"arn:aws:cloudformation:{region}:{account_id}:stack/{stack_name}/local",
            "AWS::NotificationARNs": [],
            "AWS::NoValue": NO_VALUE,
        }
        self._refs: dict[str, Any] = {}
        self._auth_warned: set[str] = set()
        self._attrs: dict[tuple[str, str], Any] = {}
        all_resources: dict[str, Any] = self.raw["Resources"]
        self.resources: dict[str, dict[str, Any]] = {
            logical_id: resource
            for logical_id, resource in all_resources.items()
            if isinstance(resource, dict)
            and ("Condition" not in resource or self.condition(str(resource["Condition"])))
        }
        self._default_physical()

    # -- parameters and conditions --

    def _resolve_parameters(self, overrides: dict[str, Any]) -> dict[str, Any]:
        declared: dict[str, Any] = self.raw.get("Parameters") or {}
        unknown = sorted(set(overrides) - set(declared))
        if unknown:
            LOG.debug("ignoring overrides of parameters the template does not declare: %s", unknown)
        values: dict[str, Any] = {}
        for name, spec in declared.items():
            spec = spec or {}
            if name in overrides:
                raw = overrides[name]
            elif "Default" in spec:
                raw = spec["Default"]
            else:
                raise TemplateError(f"parameter {name} has no default and no local value")
            ptype = str(spec.get("Type", "String"))
            if ptype == "CommaDelimitedList" or ptype.startswith("List<"):
                items = raw if isinstance(raw, list) else ([] if raw == "" else str(raw).split(","))
                value: Any = [_as_str(item).strip() for item in items]
            else:
                value = _as_str(raw)
            self._check_parameter(name, spec, value)
            values[name] = value
        return values

    @staticmethod
    def _check_parameter(name: str, spec: Mapping[str, Any], value: Any) -> None:
        members = value if isinstance(value, list) else [value]
        allowed = spec.get("AllowedValues")
        pattern = spec.get("AllowedPattern")
        for member in members:
            if allowed is not None and member not in [_as_str(a) for a in allowed]:
                raise TemplateError(f"parameter {name}={member!r} is not one of {allowed}")
            if pattern is not None and not re.fullmatch(str(pattern), member):
                raise TemplateError(f"parameter {name}={member!r} does not match {pattern}")
            if str(spec.get("Type")) == "Number":
                number = float(member)
                if "MinValue" in spec and number < float(spec["MinValue"]):
                    raise TemplateError(f"parameter {name}={member} is below {spec['MinValue']}")
                if "MaxValue" in spec and number > float(spec["MaxValue"]):
                    raise TemplateError(f"parameter {name}={member} is above {spec['MaxValue']}")

    def condition(self, name: str) -> bool:
        if name in self._conditions:
            return self._conditions[name]
        definitions: dict[str, Any] = self.raw.get("Conditions") or {}
        if name not in definitions:
            raise TemplateError(f"unknown condition {name}")
        if name in self._evaluating:
            raise TemplateError(f"condition {name} refers to itself")
        self._evaluating.add(name)
        try:
            result = _as_bool(self.resolve(definitions[name]))
        finally:
            self._evaluating.discard(name)
        self._conditions[name] = result
        return result

    # -- physical names and attributes --

    def default_name(self, logical_id: str) -> str:
        return f"{self.stack_name}-{logical_id}"

    def _default_physical(self) -> None:
        region, account = self.region, self.account_id
        for logical_id, resource in self.resources.items():
            rtype = str(resource.get("Type", ""))
            props = resource.get("Properties") or {}
            if rtype == "AWS::DynamoDB::Table":
                name = self._prop_str(props, "TableName") or self.default_name(logical_id)
                arn = f"arn:aws:dynamodb:{region}:{account}:table/{name}"
                self.bind(logical_id, name, Arn=arn, StreamArn=f"{arn}/stream/not-created-yet")
            elif rtype == "AWS::SQS::Queue":
                name = self.queue_name(logical_id)
                self.bind(
                    logical_id,
                    self._queue_url(name),
                    Arn=f"arn:aws:sqs:{region}:{account}:{name}",
                    QueueName=name,
                    QueueUrl=self._queue_url(name),
                )
            elif rtype == "AWS::Events::EventBus":
                name = self._prop_str(props, "Name") or self.default_name(logical_id)
                self.bind(
                    logical_id, name, Name=name, Arn=f"arn:aws:events:{region}:{account}:event-bus/{name}"
                )
            elif rtype == "AWS::Events::Rule":
                name = self._prop_str(props, "Name") or self.default_name(logical_id)
                self.bind(logical_id, name, Arn=f"arn:aws:events:{region}:{account}:rule/{name}")
            elif rtype in (FUNCTION_TYPE, "AWS::Lambda::Function"):
                name = self._prop_str(props, "FunctionName") or self.default_name(logical_id)
                arn = f"arn:aws:lambda:{region}:{account}:function:{name}"
                self.bind(logical_id, name, Arn=arn)
                self.bind(f"{logical_id}Role", f"{name}-role", Arn=f"arn:aws:iam::{account}:role/{name}-role")
            elif rtype in LAYER_TYPES:
                layer = self._prop_str(props, "LayerName") or self.default_name(logical_id)
                self.bind(logical_id, f"arn:aws:lambda:{region}:{account}:layer:{layer}:1")
            elif rtype in ("AWS::Serverless::HttpApi", "AWS::ApiGatewayV2::Api"):
                self.bind(logical_id, "local", ApiEndpoint="http://127.0.0.1")
            elif rtype == "AWS::SNS::Topic":
                name = self._prop_str(props, "TopicName") or self.default_name(logical_id)
                arn = f"arn:aws:sns:{region}:{account}:{name}"
                self.bind(logical_id, arn, TopicArn=arn, TopicName=name)
            elif rtype == "AWS::SSM::Parameter":
                name = self._prop_str(props, "Name") or self.default_name(logical_id)
                self.bind(logical_id, name)
            elif rtype == "AWS::SecretsManager::Secret":
                name = self._prop_str(props, "Name") or self.default_name(logical_id)
                self.bind(logical_id, f"arn:aws:secretsmanager:{region}:{account}:secret:{name}")
            elif rtype == "AWS::Scheduler::Schedule":
                name = self._prop_str(props, "Name") or self.default_name(logical_id)
                self.bind(
                    logical_id, name, Arn=f"arn:aws:scheduler:{region}:{account}:schedule/default/{name}"
                )
            else:
                self.bind(logical_id, self.default_name(logical_id))
        if any(self._function_uses_implicit_http_api(r) for r in self.resources.values()):
            self.bind("ServerlessHttpApi", "local", ApiEndpoint="http://127.0.0.1")

    def _prop_str(self, props: Mapping[str, Any], key: str) -> str | None:
        if key not in props:
            return None
        value = self.resolve(props[key])
        return None if value is NO_VALUE else _as_str(value)

    def queue_name(self, logical_id: str) -> str:
        props = self.resources[logical_id].get("Properties") or {}
        name = self._prop_str(props, "QueueName")
        if name:
            return name
        name = self.default_name(logical_id)
        if _as_bool(self.resolve(props.get("FifoQueue", False))):
            name += ".fifo"
        return name

    def _queue_url(self, name: str) -> str:
        if self.moto_endpoint:
            return f"{self.moto_endpoint}/{self.account_id}/{name}"
        return f"https://sqs.{self.region}.amazonaws.com/{self.account_id}/{name}"

    def bind(self, logical_id: str, ref: Any = None, **attributes: Any) -> None:
        """Record the physical value of ``!Ref logical_id`` and of ``!GetAtt logical_id.<attr>``."""
        if ref is not None:
            self._refs[logical_id] = ref
        for attribute, value in attributes.items():
            self._attrs[(logical_id, attribute)] = value

    def ref(self, logical_id: str) -> Any:
        return self.resolve({"Ref": logical_id})

    def get_att(self, logical_id: str, attribute: str) -> Any:
        return self.resolve({"Fn::GetAtt": [logical_id, attribute]})

    def logical_id_for(self, value: Any) -> str | None:
        """The logical id whose Ref or attribute is ``value`` (an ARN, a name, a URL)."""
        if not isinstance(value, str):
            return None
        for (logical_id, _), attr_value in self._attrs.items():
            if attr_value == value:
                return logical_id
        for logical_id, ref_value in self._refs.items():
            if ref_value == value:
                return logical_id
        return None

    # -- intrinsic functions --

    def resolve(self, value: Any) -> Any:
        if isinstance(value, list):
            items = [self.resolve(v) for v in value]
            return [v for v in items if v is not NO_VALUE]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            ((key, arg),) = value.items()
            if key == "Ref":
                return self._ref(arg)
            if key == "Condition" and isinstance(arg, str):
                return self.condition(arg)
            if isinstance(key, str) and key.startswith("Fn::"):
                return self._function(key[4:], arg)
        resolved = {k: self.resolve(v) for k, v in value.items()}
        return {k: v for k, v in resolved.items() if v is not NO_VALUE}

    def _ref(self, name: Any) -> Any:
        name = self.resolve(name)
        if name in self.parameters:
            return self.parameters[name]
        if name in self.pseudo:
            return self.pseudo[name]
        if name in self._refs:
            return self._refs[name]
        raise TemplateError(f"!Ref {name}: no such parameter or resource")

    def _get_att(self, arg: Any) -> Any:
        if isinstance(arg, str):
            arg = arg.split(".", 1)
        logical_id, attribute = (self.resolve(part) for part in arg)
        if (logical_id, attribute) in self._attrs:
            return self._attrs[(logical_id, attribute)]
        if logical_id in self.resources or logical_id in self._refs:
            if attribute == "Arn":
                return (
                    f"arn:aws:local:{self.region}:{self.account_id}:{self._refs.get(logical_id, logical_id)}"
                )
            LOG.debug("!GetAtt %s.%s is not emulated; using a placeholder", logical_id, attribute)
            return f"{logical_id}.{attribute}"
        raise TemplateError(f"!GetAtt {logical_id}.{attribute}: no such resource")

    def _sub(self, arg: Any) -> str:
        if isinstance(arg, list):
            text, variables = arg[0], {k: self.resolve(v) for k, v in (arg[1] or {}).items()}
        else:
            text, variables = arg, {}

        def replace(match: re.Match[str]) -> str:
            expr = match.group(1)
            if expr.startswith("!"):
                return "${" + expr[1:] + "}"
            if expr in variables:
                return _as_str(variables[expr])
            if "." in expr and expr.split(".", 1)[0] not in self.parameters:
                return _as_str(self._get_att(expr.split(".", 1)))
            return _as_str(self._ref(expr))

        return _SUB_RE.sub(replace, str(text))

    def _function(self, name: str, arg: Any) -> Any:
        handlers: dict[str, Callable[[Any], Any]] = {
            "GetAtt": self._get_att,
            "Sub": self._sub,
            "If": self._if,
            "Equals": lambda a: _as_str(self.resolve(a[0])) == _as_str(self.resolve(a[1])),
            "Not": lambda a: not _as_bool(self.resolve(a[0] if isinstance(a, list) else a)),
            "And": lambda a: all(_as_bool(self.resolve(c)) for c in a),
            "Or": lambda a: any(_as_bool(self.resolve(c)) for c in a),
            "Join": lambda a: _as_str(self.resolve(a[0])).join(_as_str(v) for v in self.resolve(a[1])),
            "Select": lambda a: self.resolve(a[1])[int(self.resolve(a[0]))],
            "Split": lambda a: _as_str(self.resolve(a[1])).split(_as_str(self.resolve(a[0]))),
            "FindInMap": self._find_in_map,
            "Base64": lambda a: base64.b64encode(_as_str(self.resolve(a)).encode()).decode(),
            "GetAZs": lambda a: [f"{self.region}{z}" for z in "abc"],
            "Length": lambda a: len(self.resolve(a)),
            "ToJsonString": lambda a: json.dumps(self.resolve(a), separators=(",", ":")),
        }
        if name not in handlers:
            raise TemplateError(f"Fn::{name} is not supported by the local stack")
        return handlers[name](arg)

    def _if(self, arg: Any) -> Any:
        condition, when_true, when_false = arg
        return self.resolve(when_true if self.condition(str(condition)) else when_false)

    def _find_in_map(self, arg: Any) -> Any:
        mappings = self.raw.get("Mappings") or {}
        name, first, second = (self.resolve(a) for a in arg[:3])
        try:
            return self.resolve(mappings[name][first][second])
        except KeyError:
            if len(arg) > 3 and isinstance(arg[3], dict) and "DefaultValue" in arg[3]:
                return self.resolve(arg[3]["DefaultValue"])
            raise TemplateError(f"Fn::FindInMap {name}/{first}/{second}: not found") from None

    # -- resources --

    def resources_of(self, *types: str) -> dict[str, dict[str, Any]]:
        return {lid: res for lid, res in self.resources.items() if res.get("Type") in types}

    def props(self, logical_id: str) -> dict[str, Any]:
        """A resource's resolved properties."""
        resolved = self.resolve(self.resources[logical_id].get("Properties") or {})
        return resolved if isinstance(resolved, dict) else {}

    def tables(self) -> list[TableSpec]:
        specs = []
        for logical_id in self.resources_of("AWS::DynamoDB::Table"):
            props = self.props(logical_id)
            kwargs: dict[str, Any] = {
                "TableName": self.ref(logical_id),
                "KeySchema": props["KeySchema"],
                "AttributeDefinitions": props["AttributeDefinitions"],
            }
            billing = props.get("BillingMode", "PROVISIONED")
            kwargs["BillingMode"] = billing
            throughput = {"ReadCapacityUnits": 5, "WriteCapacityUnits": 5}
            if billing == "PROVISIONED":
                kwargs["ProvisionedThroughput"] = (
                    _throughput(props.get("ProvisionedThroughput")) or throughput
                )
            gsis = []
            for index in props.get("GlobalSecondaryIndexes") or []:
                gsi = {k: index[k] for k in ("IndexName", "KeySchema", "Projection") if k in index}
                if billing == "PROVISIONED":
                    gsi["ProvisionedThroughput"] = (
                        _throughput(index.get("ProvisionedThroughput")) or throughput
                    )
                gsis.append(gsi)
            if gsis:
                kwargs["GlobalSecondaryIndexes"] = gsis
            lsis = [
                {k: index[k] for k in ("IndexName", "KeySchema", "Projection") if k in index}
                for index in props.get("LocalSecondaryIndexes") or []
            ]
            if lsis:
                kwargs["LocalSecondaryIndexes"] = lsis
            stream = props.get("StreamSpecification")
            if stream and stream.get("StreamViewType"):
                kwargs["StreamSpecification"] = {
                    "StreamEnabled": True,
                    "StreamViewType": stream["StreamViewType"],
                }
            ttl = props.get("TimeToLiveSpecification") or {}
            ttl_attribute = ttl.get("AttributeName") if _as_bool(ttl.get("Enabled", False)) else None
            handled = {
                "TableName",
                "KeySchema",
                "AttributeDefinitions",
                "BillingMode",
                "ProvisionedThroughput",
                "GlobalSecondaryIndexes",
                "LocalSecondaryIndexes",
                "StreamSpecification",
                "TimeToLiveSpecification",
            }
            ignored = tuple(sorted(set(props) - handled))
            specs.append(TableSpec(logical_id, kwargs["TableName"], kwargs, ttl_attribute, ignored))
        return specs

    def queues(self) -> list[QueueSpec]:
        specs = []
        for logical_id in self.resources_of("AWS::SQS::Queue"):
            props = self.props(logical_id)
            attributes: dict[str, str] = {}
            dead_letter = None
            for key, value in props.items():
                if key in ("QueueName", "Tags"):
                    continue
                if key == "RedrivePolicy":
                    policy = dict(value)
                    dead_letter = self.logical_id_for(policy.get("deadLetterTargetArn"))
                    attributes[key] = json.dumps(policy)
                elif key == "RedriveAllowPolicy":
                    attributes[key] = value if isinstance(value, str) else json.dumps(value)
                elif key == "FifoQueue":
                    if _as_bool(value):
                        attributes[key] = "true"
                else:
                    attributes[key] = _as_str(value)
            specs.append(QueueSpec(logical_id, self.queue_name(logical_id), attributes, dead_letter))
        return specs

    def buses(self) -> list[BusSpec]:
        return [BusSpec(lid, self.ref(lid)) for lid in self.resources_of("AWS::Events::EventBus")]

    def _bus_name(self, value: Any) -> str:
        if value in (None, NO_VALUE, ""):
            return "default"
        text = _as_str(value)
        return text.rsplit("/", 1)[-1] if text.startswith("arn:") else text

    def _target(self, target: Mapping[str, Any]) -> TargetSpec:
        arn = _as_str(target.get("Arn", ""))
        logical_id = self.logical_id_for(arn)
        rtype = self.resources.get(logical_id or "", {}).get("Type")
        if arn.startswith("arn:aws:sqs:") or rtype == "AWS::SQS::Queue":
            kind = "sqs"
        elif arn.startswith("arn:aws:lambda:") or rtype in (FUNCTION_TYPE, "AWS::Lambda::Function"):
            kind = "lambda"
        else:
            kind = "other"
        dlq = (target.get("DeadLetterConfig") or {}).get("Arn")
        return TargetSpec(
            id=_as_str(target.get("Id", "")),
            arn=arn,
            kind=kind,
            logical_id=logical_id,
            input=target.get("Input"),
            input_path=target.get("InputPath"),
            input_transformer=target.get("InputTransformer"),
            sqs_parameters=target.get("SqsParameters"),
            retry_policy=target.get("RetryPolicy"),
            dead_letter_arn=dlq,
        )

    def rules(self) -> list[RuleSpec]:
        """Every ``AWS::Events::Rule`` plus the rules SAM makes of functions' rule/schedule events."""
        specs = []
        for logical_id in self.resources_of("AWS::Events::Rule"):
            props = self.props(logical_id)
            specs.append(
                RuleSpec(
                    logical_id=logical_id,
                    name=self.ref(logical_id),
                    bus_name=self._bus_name(props.get("EventBusName")),
                    pattern=props.get("EventPattern"),
                    schedule_expression=props.get("ScheduleExpression"),
                    state=str(props.get("State", "ENABLED")),
                    targets=tuple(self._target(t) for t in props.get("Targets") or []),
                )
            )
        for function in self.functions():
            for event in function.events:
                if isinstance(event, EventBridgeRuleEvent):
                    target = TargetSpec(
                        id=event.target_id,
                        arn=function.arn,
                        kind="lambda",
                        logical_id=function.logical_id,
                        input=event.input,
                        input_path=event.input_path,
                        retry_policy=event.retry_policy,
                        dead_letter_arn=event.dead_letter_arn,
                    )
                    specs.append(
                        RuleSpec(
                            logical_id=event.rule_logical_id,
                            name=self._refs.get(
                                event.rule_logical_id, self.default_name(event.rule_logical_id)
                            ),
                            bus_name=event.bus_name,
                            pattern=event.pattern,
                            state=event.state,
                            targets=(target,),
                        )
                    )
        return specs

    def http_apis(self) -> dict[str, HttpApiSpec]:
        apis: dict[str, HttpApiSpec] = {}
        global_api = self.resolve(self.globals.get("HttpApi") or {})
        for logical_id in self.resources_of("AWS::Serverless::HttpApi"):
            own = self.props(logical_id)
            props = {**global_api, **own}
            apis[logical_id] = HttpApiSpec(
                logical_id,
                _as_str(props.get("StageName", "$default")),
                _cors(props.get("CorsConfiguration")),
                # SAM merges a map of Globals into the resource's own (the resource's keys win).
                **_http_api_auth(_merge_globals(global_api.get("Auth"), own.get("Auth"))),
            )
        if "ServerlessHttpApi" in self._refs and "ServerlessHttpApi" not in apis:
            apis["ServerlessHttpApi"] = HttpApiSpec(
                "ServerlessHttpApi",
                "$default",
                _cors(global_api.get("CorsConfiguration")),
                **_http_api_auth(global_api.get("Auth")),
            )
        return apis

    def layers(self) -> dict[str, LayerSpec]:
        layers = {}
        for logical_id, resource in self.resources_of(*LAYER_TYPES).items():
            props = resource.get("Properties") or {}
            content = self.resolve(props.get("ContentUri") or props.get("Content"))
            content_dir = (self.base_dir / content).resolve() if isinstance(content, str) else None
            python_dir = None
            if content_dir is not None:
                python_dir = content_dir / "python" if (content_dir / "python").is_dir() else content_dir
            layers[logical_id] = LayerSpec(logical_id, self.ref(logical_id), content_dir, python_dir)
        return layers

    @staticmethod
    def _function_uses_implicit_http_api(resource: Mapping[str, Any]) -> bool:
        if resource.get("Type") != FUNCTION_TYPE:
            return False
        events = (resource.get("Properties") or {}).get("Events") or {}
        return any(
            isinstance(e, dict) and e.get("Type") == "HttpApi" and "ApiId" not in (e.get("Properties") or {})
            for e in events.values()
        )

    def function_names(self) -> list[str]:
        return list(self.resources_of(FUNCTION_TYPE))

    def functions(self) -> list[FunctionSpec]:
        return [self.function(logical_id) for logical_id in self.resources_of(FUNCTION_TYPE)]

    def function(self, logical_id: str) -> FunctionSpec:
        resource = self.resources[logical_id]
        if resource.get("Type") != FUNCTION_TYPE:
            raise TemplateError(f"{logical_id} is not an {FUNCTION_TYPE}")
        global_fn: dict[str, Any] = self.globals.get("Function") or {}
        own: dict[str, Any] = resource.get("Properties") or {}
        props: dict[str, Any] = {**global_fn, **own}
        environment: dict[str, str] = {}
        for source in (global_fn, own):
            variables = self.resolve((source.get("Environment") or {}).get("Variables") or {})
            environment.update({k: _as_str(v) for k, v in variables.items()})
        layer_refs = self.resolve(list(global_fn.get("Layers") or []) + list(own.get("Layers") or []))
        layers = self.layers()
        layer_dirs: list[Path] = []
        for layer_ref in layer_refs:
            layer_id = self.logical_id_for(layer_ref)
            layer = layers.get(layer_id or "")
            if layer is None or layer.python_dir is None:
                LOG.warning(
                    "%s: layer %s is not in the template; it will be missing locally", logical_id, layer_ref
                )
                continue
            layer_dirs.append(layer.python_dir)
        code_uri = self.resolve(props.get("CodeUri", "."))
        if not isinstance(code_uri, str):
            raise TemplateError(f"{logical_id}: CodeUri must be a local path for the local stack")
        invoke_config = self.resolve(props.get("EventInvokeConfig") or {})
        on_failure = (invoke_config.get("DestinationConfig") or {}).get("OnFailure") or {}
        return FunctionSpec(
            logical_id=logical_id,
            name=self.ref(logical_id),
            arn=self.get_att(logical_id, "Arn"),
            code_dir=(self.base_dir / code_uri).resolve(),
            handler=_as_str(self.resolve(props.get("Handler", ""))),
            runtime=_as_str(self.resolve(props.get("Runtime", "python3.13"))),
            timeout=_as_int(self.resolve(props.get("Timeout")), 3),
            memory_size=_as_int(self.resolve(props.get("MemorySize")), 128),
            environment=environment,
            layer_dirs=tuple(layer_dirs),
            events=tuple(self._events(logical_id, own.get("Events") or {})),
            async_maximum_retry_attempts=_as_int(invoke_config.get("MaximumRetryAttempts"), 2),
            async_on_failure_destination=on_failure.get("Destination")
            if on_failure.get("Type", "SQS") == "SQS"
            else None,
        )

    def _route_authorizer(
        self, function_id: str, name: str, api_id: str, auth: Any, apis: Mapping[str, HttpApiSpec]
    ) -> str | None:
        """The authorizer of one HttpApi event, as SAM decides it (event's own, else the API's default)."""
        api = apis.get(api_id)
        own = auth.get("Authorizer") if isinstance(auth, dict) else None
        if own is None or own is NO_VALUE:
            chosen = api.default_authorizer if api else None
        else:
            chosen = _as_str(own)
        if chosen is None or chosen == "NONE":
            return None
        where = f"{function_id}.{name}"
        first = where not in self._auth_warned  # functions() runs more than once: say it once
        self._auth_warned.add(where)
        if chosen == "AWS_IAM":
            if api is not None and not api.iam_enabled and first:
                LOG.warning(
                    "%s: Authorizer AWS_IAM but %s has no Auth.EnableIamAuthorizer: true "
                    "(SAM rejects this); enforcing AWS_IAM locally anyway",
                    where,
                    api_id,
                )
            return "AWS_IAM"
        kind = (api.authorizers.get(chosen) if api else None) or "UNKNOWN"
        if not first:
            return chosen
        LOG.warning(
            "%s: authorizer %s (%s) is not emulated locally; every request to this route is refused (403)",
            where,
            chosen,
            kind,
        )
        return chosen

    def _filter_criteria(
        self, function_id: str, event_name: str, properties: Mapping[str, Any], source: Source
    ) -> EventFilter | None:
        """The event's ``FilterCriteria``, refused here when Lambda would refuse the mapping."""
        try:
            return parse_filter_criteria(
                properties.get("FilterCriteria"),
                source,
                where=f"{function_id}.Events.{event_name}.FilterCriteria",
                max_filters=self.max_filters,
            )
        except FilterPatternError as exc:
            raise TemplateError(str(exc)) from exc

    def _events(self, function_id: str, events: Mapping[str, Any]) -> list[FunctionEvent]:
        parsed: list[FunctionEvent] = []
        apis: dict[str, HttpApiSpec] | None = None
        for name, event in events.items():
            etype = str(event.get("Type", ""))
            p = self.resolve(event.get("Properties") or {})
            if etype == "HttpApi":
                api_ref = (event.get("Properties") or {}).get("ApiId")
                api_id = "ServerlessHttpApi"
                if isinstance(api_ref, dict) and "Ref" in api_ref:
                    api_id = str(api_ref["Ref"])
                elif api_ref is not None:
                    api_id = self.logical_id_for(p.get("ApiId")) or str(p.get("ApiId"))
                method = str(p.get("Method", "ANY")).upper()
                path = str(p.get("Path", "$default"))
                if method == "ANY" and path in ("/$default", "$default"):
                    path = "$default"
                timeout = p.get("TimeoutInMillis")
                if apis is None:
                    apis = self.http_apis()
                parsed.append(
                    HttpApiEvent(
                        name,
                        method,
                        path,
                        api_id,
                        str(p.get("PayloadFormatVersion", "2.0")),
                        int(timeout) if timeout is not None else None,
                        self._route_authorizer(function_id, name, api_id, p.get("Auth"), apis),
                    )
                )
            elif etype == "DynamoDB":
                stream_arn = _as_str(p.get("Stream", ""))
                on_failure = ((p.get("DestinationConfig") or {}).get("OnFailure") or {}).get("Destination")
                parsed.append(
                    DynamoDBEvent(
                        name=name,
                        table_logical_id=self.logical_id_for(stream_arn),
                        stream_arn=stream_arn,
                        starting_position=str(p.get("StartingPosition", "TRIM_HORIZON")),
                        batch_size=_as_int(p.get("BatchSize"), 100),
                        maximum_batching_window_seconds=float(p.get("MaximumBatchingWindowInSeconds", 0)),
                        maximum_retry_attempts=_as_int(p.get("MaximumRetryAttempts"), -1),
                        maximum_record_age_seconds=_as_int(p.get("MaximumRecordAgeInSeconds"), -1),
                        bisect_batch_on_function_error=_as_bool(p.get("BisectBatchOnFunctionError", False)),
                        report_batch_item_failures="ReportBatchItemFailures"
                        in (p.get("FunctionResponseTypes") or []),
                        on_failure_destination=on_failure,
                        parallelization_factor=_as_int(p.get("ParallelizationFactor"), 1),
                        enabled=_as_bool(p.get("Enabled", True)),
                        filter_criteria=self._filter_criteria(function_id, name, p, "dynamodb"),
                    )
                )
            elif etype == "SQS":
                queue_arn = _as_str(p.get("Queue", ""))
                scaling = p.get("ScalingConfig") or {}
                parsed.append(
                    SqsEvent(
                        name=name,
                        queue_logical_id=self.logical_id_for(queue_arn),
                        queue_arn=queue_arn,
                        batch_size=_as_int(p.get("BatchSize"), 10),
                        maximum_batching_window_seconds=float(p.get("MaximumBatchingWindowInSeconds", 0)),
                        report_batch_item_failures="ReportBatchItemFailures"
                        in (p.get("FunctionResponseTypes") or []),
                        enabled=_as_bool(p.get("Enabled", True)),
                        maximum_concurrency=_as_int(scaling.get("MaximumConcurrency"), 0) or None,
                        filter_criteria=self._filter_criteria(function_id, name, p, "sqs"),
                    )
                )
            elif etype in ("EventBridgeRule", "CloudWatchEvent"):
                rule_id = f"{function_id}{name}"
                rule_name = p.get("RuleName")
                if rule_name:
                    self.bind(rule_id, _as_str(rule_name))
                target = p.get("Target") or {}
                parsed.append(
                    EventBridgeRuleEvent(
                        name=name,
                        rule_logical_id=rule_id,
                        bus_name=self._bus_name(p.get("EventBusName")),
                        pattern=p.get("Pattern"),
                        input=p.get("Input"),
                        input_path=p.get("InputPath"),
                        target_id=_as_str(target.get("Id") or f"{rule_id}LambdaTarget"),
                        state=str(
                            p.get("State", "ENABLED" if _as_bool(p.get("Enabled", True)) else "DISABLED")
                        ),
                        retry_policy=p.get("RetryPolicy"),
                        dead_letter_arn=(p.get("DeadLetterConfig") or {}).get("Arn"),
                    )
                )
            elif etype in ("Schedule", "ScheduleV2"):
                enabled = _as_bool(p.get("Enabled", True)) and str(p.get("State", "ENABLED")) == "ENABLED"
                parsed.append(
                    ScheduleEvent(
                        name=name,
                        kind=etype,
                        expression=_as_str(p.get("Schedule") or p.get("ScheduleExpression") or ""),
                        input=p.get("Input"),
                        enabled=enabled,
                        description=p.get("Description"),
                        timezone=p.get("ScheduleExpressionTimezone"),
                        retry_policy=p.get("RetryPolicy"),
                        dead_letter_arn=(p.get("DeadLetterConfig") or {}).get("Arn"),
                    )
                )
            else:
                parsed.append(OtherEvent(name, etype, p))
        return parsed


def _throughput(value: Any) -> dict[str, int] | None:
    if not value:
        return None
    return {
        "ReadCapacityUnits": int(value.get("ReadCapacityUnits", 5)),
        "WriteCapacityUnits": int(value.get("WriteCapacityUnits", 5)),
    }


def _merge_globals(global_value: Any, own: Any) -> Any:
    """SAM's Globals rule: maps merge (recursively, the resource's keys win), lists add up, else own wins."""
    if own is None:
        return global_value
    if isinstance(global_value, dict) and isinstance(own, dict):
        merged = dict(global_value)
        for key, value in own.items():
            merged[key] = _merge_globals(global_value.get(key), value)
        return merged
    if isinstance(global_value, list) and isinstance(own, list):
        return [*global_value, *own]
    return own


def _http_api_auth(auth: Any) -> dict[str, Any]:
    """``HttpApiSpec`` fields from an HttpApi's ``Auth`` (SAM's ``DefaultAuthorizer``, ...)."""
    if not isinstance(auth, dict):
        return {}
    default = auth.get("DefaultAuthorizer")
    kinds: dict[str, str] = {}
    for name, definition in (auth.get("Authorizers") or {}).items():
        definition = definition if isinstance(definition, dict) else {}
        if "JwtConfiguration" in definition:
            kinds[str(name)] = "JWT"
        elif "FunctionArn" in definition:
            kinds[str(name)] = "LAMBDA"
        else:
            kinds[str(name)] = "UNKNOWN"
    return {
        "default_authorizer": None if default is None or default is NO_VALUE else _as_str(default),
        "iam_enabled": _as_bool(auth.get("EnableIamAuthorizer", False)),
        "authorizers": kinds,
    }


def _cors(config: Any) -> CorsConfig | None:
    if not config:
        return None
    if config is True:
        return CorsConfig(allow_origins=("*",), allow_methods=("*",), allow_headers=("*",))
    if not isinstance(config, dict):
        return None

    def strings(key: str) -> tuple[str, ...]:
        value = config.get(key) or []
        if isinstance(value, str):
            value = value.split(",")
        return tuple(_as_str(v).strip() for v in value if _as_str(v).strip())

    max_age = config.get("MaxAge")
    return CorsConfig(
        allow_origins=strings("AllowOrigins"),
        allow_methods=tuple(m.upper() for m in strings("AllowMethods")),
        allow_headers=tuple(h.lower() for h in strings("AllowHeaders")),
        expose_headers=tuple(h.lower() for h in strings("ExposeHeaders")),
        max_age=int(max_age) if max_age is not None else None,
        allow_credentials=_as_bool(config.get("AllowCredentials", False)),
    )


# --------------------------------------------------------------------------------------------
# Creating the infrastructure
# --------------------------------------------------------------------------------------------


def rule_queue_name(rule_logical_id: str, target_id: str) -> str:
    """The local SQS queue that stands for a rule's Lambda target (SQS names: 80 chars, [A-Za-z0-9_-])."""
    name = re.sub(r"[^A-Za-z0-9_-]", "-", f"local-rule-{rule_logical_id}-{target_id}")
    if len(name) > 80:
        digest = hashlib.sha256(name.encode()).hexdigest()[:8]
        name = f"{name[:71]}-{digest}"
    return name


@dataclass
class RuleTarget:
    """A rule's Lambda target, emulated by a queue the local stack polls to invoke the function."""

    rule: RuleSpec
    target: TargetSpec
    function_logical_id: str
    queue_url: str
    queue_arn: str


@dataclass
class Infrastructure:
    table_names: dict[str, str] = field(default_factory=dict)
    stream_arns: dict[str, str] = field(default_factory=dict)
    bus_names: dict[str, str] = field(default_factory=dict)
    queue_urls: dict[str, str] = field(default_factory=dict)
    queue_arns: dict[str, str] = field(default_factory=dict)
    rule_names: dict[str, str] = field(default_factory=dict)
    rule_targets: list[RuleTarget] = field(default_factory=list)
    tap_queue_url: str = ""
    tap_queue_arn: str = ""
    notes: list[str] = field(default_factory=list)

    def queue_url_for_arn(self, arn: str) -> str | None:
        for logical_id, queue_arn in self.queue_arns.items():
            if queue_arn == arn:
                return self.queue_urls[logical_id]
        return None


def _error_code(exc: Exception) -> str:
    response = getattr(exc, "response", None) or {}
    return str((response.get("Error") or {}).get("Code", ""))


def _create_queue(sqs: Any, name: str, attributes: dict[str, str]) -> tuple[str, str]:
    try:
        url = sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
    except Exception as exc:
        if "QueueAlreadyExists" not in _error_code(exc) and "AlreadyExists" not in str(exc):
            raise
        url = sqs.get_queue_url(QueueName=name)["QueueUrl"]
        settable = {k: v for k, v in attributes.items() if k not in ("FifoQueue",)}
        if settable:
            sqs.set_queue_attributes(QueueUrl=url, Attributes=settable)
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    return str(url), str(arn)


def create_tables(
    template: Template, dynamodb_endpoint: str, infra: Infrastructure | None = None
) -> Infrastructure:
    """Create (or keep) every table; bind their names, ARNs and stream ARNs into ``template``."""
    infra = infra or Infrastructure()
    ddb = client("dynamodb", dynamodb_endpoint, template.region)
    for spec in template.tables():
        try:
            ddb.create_table(**spec.create_kwargs)
            LOG.info("created table %s (%s)", spec.name, spec.logical_id)
        except Exception as exc:
            if _error_code(exc) != "ResourceInUseException":
                raise
            LOG.info("table %s already exists", spec.name)
        if spec.ignored:
            infra.notes.append(
                f"{spec.logical_id}: not emulated by DynamoDB Local: {', '.join(spec.ignored)}"
            )
        description = _wait_table_active(ddb, spec.name)
        existing_keys = description.get("KeySchema")
        if existing_keys != spec.create_kwargs["KeySchema"]:
            LOG.warning(
                "table %s exists with key schema %s, the template says %s (delete the local data?)",
                spec.name,
                existing_keys,
                spec.create_kwargs["KeySchema"],
            )
        if spec.ttl_attribute:
            try:
                ddb.update_time_to_live(
                    TableName=spec.name,
                    TimeToLiveSpecification={"Enabled": True, "AttributeName": spec.ttl_attribute},
                )
            except Exception as exc:  # noqa: BLE001 - already enabled, or unsupported locally
                LOG.debug("TTL on %s: %s", spec.name, exc)
        infra.table_names[spec.logical_id] = spec.name
        attrs: dict[str, Any] = {"Arn": description["TableArn"]}
        if description.get("LatestStreamArn"):
            attrs["StreamArn"] = description["LatestStreamArn"]
            infra.stream_arns[spec.logical_id] = description["LatestStreamArn"]
        template.bind(spec.logical_id, spec.name, **attrs)
    return infra


def _wait_table_active(ddb: Any, name: str, timeout: float = 30.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        table: dict[str, Any] = ddb.describe_table(TableName=name)["Table"]
        if table.get("TableStatus") == "ACTIVE" or time.monotonic() > deadline:
            return table
        time.sleep(0.1)


def create_messaging(
    template: Template, moto_endpoint: str, infra: Infrastructure | None = None
) -> Infrastructure:
    """Create queues, buses, rules (with Lambda targets as polled queues) and the event tap in moto."""
    infra = infra or Infrastructure()
    sqs = client("sqs", moto_endpoint, template.region)
    events = client("events", moto_endpoint, template.region)

    # Queues: dead-letter targets first, so that every redrive policy points at an existing queue.
    pending = template.queues()
    created: set[str] = set()
    while pending:
        ready = [
            q
            for q in pending
            if q.dead_letter_logical_id in (None, *created)
            or q.dead_letter_logical_id not in {p.logical_id for p in pending}
        ]
        if not ready:
            raise TemplateError("queues' redrive policies form a cycle")
        for spec in ready:
            url, arn = _create_queue(sqs, spec.name, spec.attributes)
            infra.queue_urls[spec.logical_id] = url
            infra.queue_arns[spec.logical_id] = arn
            template.bind(spec.logical_id, url, Arn=arn, QueueName=spec.name, QueueUrl=url)
            created.add(spec.logical_id)
            LOG.info("queue %s (%s)", spec.name, spec.logical_id)
        pending = [q for q in pending if q.logical_id not in created]

    for bus in template.buses():
        try:
            arn = events.create_event_bus(Name=bus.name)["EventBusArn"]
        except Exception as exc:
            if _error_code(exc) != "ResourceAlreadyExistsException":
                raise
            arn = events.describe_event_bus(Name=bus.name)["Arn"]
        infra.bus_names[bus.logical_id] = bus.name
        template.bind(bus.logical_id, bus.name, Name=bus.name, Arn=arn)
        LOG.info("event bus %s (%s)", bus.name, bus.logical_id)

    function_ids = set(template.function_names())
    for rule in template.rules():
        if rule.schedule_expression and not rule.pattern:
            infra.notes.append(
                f"{rule.logical_id}: schedule rule ({rule.schedule_expression}) is not fired locally"
            )
        put: dict[str, Any] = {"Name": rule.name, "EventBusName": rule.bus_name, "State": rule.state}
        if rule.pattern is not None:
            put["EventPattern"] = rule.pattern if isinstance(rule.pattern, str) else json.dumps(rule.pattern)
        if rule.schedule_expression:
            put["ScheduleExpression"] = rule.schedule_expression
        events.put_rule(**put)
        infra.rule_names[rule.logical_id] = rule.name
        targets = []
        for target in rule.targets:
            entry: dict[str, Any] = {"Id": target.id}
            for key, value in (
                ("Input", target.input),
                ("InputPath", target.input_path),
                ("InputTransformer", target.input_transformer),
                ("SqsParameters", target.sqs_parameters),
            ):
                if value is not None:
                    entry[key] = value if key != "Input" or isinstance(value, str) else json.dumps(value)
            if target.kind == "sqs":
                entry["Arn"] = target.arn
            elif target.kind == "lambda" and target.logical_id in function_ids:
                function = template.function(target.logical_id)
                url, arn = _create_queue(
                    sqs,
                    rule_queue_name(rule.logical_id, target.id),
                    {"VisibilityTimeout": str(function.timeout + 5), "MessageRetentionPeriod": "86400"},
                )
                entry["Arn"] = arn
                infra.rule_targets.append(RuleTarget(rule, target, function.logical_id, url, arn))
            else:
                infra.notes.append(f"{rule.logical_id}: target {target.id} ({target.arn}) is not emulated")
                continue
            targets.append(entry)
        if targets:
            events.put_targets(Rule=rule.name, EventBusName=rule.bus_name, Targets=targets)
        LOG.info("rule %s on %s -> %s", rule.name, rule.bus_name, ", ".join(t["Id"] for t in targets) or "-")

    # The tap: a queue that receives a copy of every event on every bus of the template.
    url, arn = _create_queue(sqs, TAP_QUEUE_NAME, {"MessageRetentionPeriod": "86400"})
    infra.tap_queue_url, infra.tap_queue_arn = url, arn
    for bus_name in sorted(set(infra.bus_names.values())) or ["default"]:
        events.put_rule(Name=TAP_RULE_NAME, EventBusName=bus_name, EventPattern=json.dumps(MATCH_EVERYTHING))
        events.put_targets(
            Rule=TAP_RULE_NAME, EventBusName=bus_name, Targets=[{"Id": "local-event-tap", "Arn": arn}]
        )
    return infra


def create_infrastructure(template: Template, dynamodb_endpoint: str, moto_endpoint: str) -> Infrastructure:
    """Create every table, queue, bus and rule of ``template`` locally (idempotent)."""
    infra = create_tables(template, dynamodb_endpoint)
    create_messaging(template, moto_endpoint, infra)
    for note in infra.notes:
        LOG.debug("note: %s", note)
    return infra
