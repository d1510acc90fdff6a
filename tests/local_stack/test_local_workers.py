"""Worker processes: the function's environment, logs, errors as Lambda reports them, code reloads."""

from __future__ import annotations

import dataclasses
import shutil
import time
from pathlib import Path
from typing import Any

import pytest
import requests

from steppay_local._util import LogCapture
from steppay_local.stack import LocalStack
from steppay_local.workers import InvocationError, LocalFunction, function_environment

FIXTURE_APP = Path(__file__).resolve().parent / "fixture_app"


def test_environment_of_a_function(fixture_stack: LocalStack) -> None:
    got: dict[str, Any] = requests.get(f"{fixture_stack.api_url}/echo", timeout=30).json()
    env = got["env"]
    assert env["STAGE"] == "local"
    assert env["TABLE_NAME"] == fixture_stack.table_names["ItemsTable"]
    assert env["BUS_NAME"] == fixture_stack.bus_names["Bus"]
    assert env["WORK_QUEUE_URL"] == fixture_stack.queue_urls["WorkQueue"]
    assert env["WORK_QUEUE_NAME"] == "fixture-WorkQueue"
    stream_arn = fixture_stack.client("dynamodb").describe_table(
        TableName=fixture_stack.table_names["ItemsTable"]
    )["Table"]["LatestStreamArn"]
    assert env["STREAM_ARN"] == stream_arn  # the real stream of DynamoDB Local
    assert env["WHERE"] == "ap-northeast-2/123456789012/aws/fixture"
    assert env["LOCAL_FLAG"] == "yes"
    assert env["OVERRIDDEN"] == "own"
    assert env["AWS_REGION"] == env["AWS_DEFAULT_REGION"] == "ap-northeast-2"
    assert env["AWS_LAMBDA_FUNCTION_NAME"] == "fixture-EchoFunction"
    assert env["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"] == "384"
    assert env["AWS_ENDPOINT_URL_DYNAMODB"] == fixture_stack.dynamodb_endpoint
    assert env["AWS_ENDPOINT_URL_EVENTBRIDGE"] == env["AWS_ENDPOINT_URL_SQS"] == fixture_stack.moto_endpoint
    assert env["POWERTOOLS_TRACE_DISABLED"] == "true"
    assert env["STEPPAY_SECRET_TOKEN"] == "sandbox-secret-token"
    assert env["STEPPAY_SECRET_TOKEN_PARAM"] == ""
    assert env["EXTRA_FROM_TEST"] == "extra"
    assert env["_HANDLER"] == "echo.handler"
    assert env["PYTHONPATH"].split(":") == [str(FIXTURE_APP / "echo"), str(FIXTURE_APP / "layer")]
    assert got["cwd"] == env["LAMBDA_TASK_ROOT"] == str(FIXTURE_APP / "echo")
    assert got["sys_path0"][:2] == [str(FIXTURE_APP / "echo"), str(FIXTURE_APP / "layer")]


def test_the_test_process_environment_does_not_leak(
    fixture_stack: LocalStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = fixture_stack.functions["EchoFunction"].spec
    monkeypatch.setenv("SOMETHING_OF_THE_CALLER", "x")
    env = function_environment(spec)
    assert "SOMETHING_OF_THE_CALLER" not in env
    assert "PYTEST_CURRENT_TEST" not in env


def test_logs_are_captured_with_the_function_as_source(fixture_stack: LocalStack) -> None:
    response = requests.get(f"{fixture_stack.api_url}/echo", timeout=30)
    request_id = response.json()["context"]["aws_request_id"]
    logs = fixture_stack.logs
    assert logs.wait_for(f"END RequestId: {request_id}", source="EchoFunction")
    assert logs.wait_for(f"REPORT RequestId: {request_id}", source="EchoFunction")
    lines = logs.lines("EchoFunction")
    assert f"START RequestId: {request_id} Version: $LATEST" in lines
    assert "echo handling GET /echo" in lines  # print()
    assert "a line on stderr" in lines
    warning = [line for line in lines if "a warning through the root logger" in line and request_id in line]
    assert warning and warning[0].startswith("[WARNING]\t")  # Lambda's root-logger format
    assert log_file_has(fixture_stack, f"[EchoFunction] START RequestId: {request_id}")


def log_file_has(stack: LocalStack, text: str) -> bool:
    assert stack.config.log_file is not None
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        if text in stack.config.log_file.read_text(encoding="utf-8"):
            return True
        time.sleep(0.1)
    return False


def test_direct_invoke_and_errors_as_lambda_reports_them(fixture_stack: LocalStack) -> None:
    assert "pid" in fixture_stack.invoke("CrashFunction", {"routeKey": "GET /pid"})
    with pytest.raises(InvocationError) as raised:
        fixture_stack.invoke("CrashFunction", {"routeKey": "POST /crash"})
    error = raised.value
    assert error.error_type == "ValueError"
    assert error.error_message.startswith("boom")
    assert any("crash.py" in frame for frame in error.stack_trace)
    assert set(error.payload) == {"errorMessage", "errorType", "requestId", "stackTrace"}


def test_init_errors(fixture_stack: LocalStack) -> None:
    spec = fixture_stack.functions["CrashFunction"].spec
    cases = {
        "missing_module.handler": "Runtime.ImportModuleError",
        "crash.no_such_handler": "Runtime.HandlerNotFound",
    }
    for handler, error_type in cases.items():
        broken = dataclasses.replace(spec, handler=handler)
        function = LocalFunction(
            broken, function_environment(broken), log_sink=LogCapture(), max_concurrency=1
        )
        try:
            with pytest.raises(InvocationError) as raised:
                function.invoke({})
            assert raised.value.error_type == error_type
        finally:
            function.stop()


def test_changed_code_is_picked_up(tmp_path: Path, fixture_stack: LocalStack) -> None:
    code = tmp_path / "code"
    code.mkdir()
    (code / "changing.py").write_text("def handler(event, context):\n    return 1\n", encoding="utf-8")
    spec = dataclasses.replace(
        fixture_stack.functions["CrashFunction"].spec,
        code_dir=code,
        handler="changing.handler",
        layer_dirs=(),
    )
    function = LocalFunction(
        spec, function_environment(spec), log_sink=LogCapture(), max_concurrency=1, reload_on_change=True
    )
    try:
        assert function.invoke({}) == 1
        time.sleep(1.1)
        (code / "changing.py").write_text("def handler(event, context):\n    return 2\n", encoding="utf-8")
        time.sleep(1.1)
        assert function.invoke({}) == 2
    finally:
        function.stop()
        shutil.rmtree(code, ignore_errors=True)
