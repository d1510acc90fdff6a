"""What an on-call engineer expects of the deployed bundle: log retention, alarms that notify,
a dashboard that reads real metric names, and a memory size chosen per function."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]


class _CfnLoader(yaml.SafeLoader):
    """template.yaml with its short tags kept as {"!Tag": value}."""


def _tagged(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> Any:
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)  # type: ignore[arg-type]
    return {f"!{suffix}": value}


_CfnLoader.add_multi_constructor("!", _tagged)


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    text = (ROOT / "template.yaml").read_text(encoding="utf-8")
    loaded: dict[str, Any] = yaml.load(text, Loader=_CfnLoader)
    return loaded


def _resources(template: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {k: v for k, v in template["Resources"].items() if v["Type"] == kind}


def test_every_function_logs_to_its_own_group_with_retention(template: dict[str, Any]) -> None:
    functions = _resources(template, "AWS::Serverless::Function")
    groups = _resources(template, "AWS::Logs::LogGroup")
    used = set()
    for name, function in functions.items():
        ref = function["Properties"]["LoggingConfig"]["LogGroup"]["!Ref"]
        assert ref in groups, name
        used.add(ref)
        assert groups[ref]["Properties"]["RetentionInDays"] == {"!Ref": "LogRetentionDays"}
    assert used == set(groups)
    assert template["Parameters"]["LogRetentionDays"]["Default"] == 30


def test_every_function_has_a_chosen_memory_size(template: dict[str, Any]) -> None:
    for name, function in _resources(template, "AWS::Serverless::Function").items():
        size = function["Properties"].get("MemorySize")
        assert isinstance(size, int) and 128 <= size <= 10240, name


@pytest.mark.parametrize(
    "alarm",
    [
        "StepPayErrorsAlarm",
        "StepPayLatencyAlarm",
        "PublisherFailuresAlarm",
        "PublisherErrorsAlarm",
        "PublisherIteratorAgeAlarm",
        "PublisherDeadLetterAlarm",
        "WebhookDeadLetterAlarm",
    ],
)
def test_alarms_notify_the_alarm_topic(template: dict[str, Any], alarm: str) -> None:
    properties = template["Resources"][alarm]["Properties"]
    assert properties["AlarmActions"] == [{"!Ref": "AlarmTopic"}]
    assert properties["TreatMissingData"] == "notBreaching"


def test_custom_metric_alarms_read_what_the_code_emits(template: dict[str, Any]) -> None:
    service = template["Globals"]["Function"]["Environment"]["Variables"]["POWERTOOLS_SERVICE_NAME"]
    namespace = template["Globals"]["Function"]["Environment"]["Variables"]["POWERTOOLS_METRICS_NAMESPACE"]
    emitted = _emitted_metric_names()
    for alarm in _resources(template, "AWS::CloudWatch::Alarm").values():
        properties = alarm["Properties"]
        if properties["Namespace"] != namespace:
            continue
        assert properties["MetricName"] in emitted
        assert properties["Dimensions"] == [{"Name": "service", "Value": service}]


def _emitted_metric_names() -> set[str]:
    """Metric names the code adds (literal names, plus the f-string families expanded)."""
    names: set[str] = set()
    for path in [*ROOT.glob("functions/*/*.py"), *ROOT.glob("layers/steppay/steppay/*.py")]:
        names.update(re.findall(r'add_metric\(\s*name="([A-Za-z]+)"', path.read_text(encoding="utf-8")))
    from steppay.verdicts import Verdict

    # As functions/verify names them (PARTIALLY_REFUNDED -> VerdictPartiallyRefunded).
    names.update(f"Verdict{v.value.title().replace('_', '')}" for v in Verdict)
    names.update(f"WebhooksProcessed{s}" for s in ("Processed", "Ignored", "Rejected"))
    from steppay.events import DETAIL_TYPES

    names.update(f"{t.replace(' ', '')}Events" for t in DETAIL_TYPES)  # as the publisher names them
    return names


def test_dashboard_is_valid_json_and_reads_emitted_metrics(template: dict[str, Any]) -> None:
    body = template["Resources"]["Dashboard"]["Properties"]["DashboardBody"]["!Sub"]
    resolved = re.sub(r"\$\{[^}]+\}", "x", body)
    dashboard = json.loads(resolved)
    emitted = _emitted_metric_names()
    seen = set()
    for widget in dashboard["widgets"]:
        previous: list[Any] = []
        for row in widget.get("properties", {}).get("metrics", []):
            if not row or row[0] == "..." or isinstance(row[0], dict):
                continue  # "...": the previous row again with other dimension values
            row = [previous[i] if item == "." and i < len(previous) else item for i, item in enumerate(row)]
            previous = row
            if row[0] == "StepPay":
                seen.add(row[1])
                assert row[1] in emitted, row
    assert {"PaymentVerifiedEvents", "StepPayLatency", "StepPayErrors", "VerdictPaid"} <= seen
    alarms = {w["properties"]["title"]: w for w in dashboard["widgets"] if w["type"] == "alarm"}
    assert len(alarms["Alarms"]["properties"]["alarms"]) == len(
        _resources(template, "AWS::CloudWatch::Alarm")
    )
