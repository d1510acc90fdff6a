"""The runtime inside one function's worker process (a warm "Lambda container").

Started as ``python -P _bootstrap.py --handler mod.func --requests FD --responses FD`` with the
function's environment and ``PYTHONPATH`` = its code directory + its layers, nothing of the local
stack's own packages. It imports the handler once (the init phase), then answers one invocation at
a time. Requests and responses are JSON lines on two dedicated pipes, so the handler's own stdout and
stderr stay free for its logs, as in Lambda. Only the standard library is used here (and, when
``LOCAL_RECORD_AWS_CALLS`` asks for the AWS calls to be recorded, the function's own botocore).

Recording: with ``LOCAL_RECORD_AWS_CALLS`` naming a directory (the worker also gets
``LOCAL_FUNCTION_LOGICAL_ID``; both are removed from the environment before the handler loads),
every AWS API call a botocore client of this process makes is noted as its IAM action
(``dynamodb:UpdateItem``) in ``<dir>/<LogicalId>.txt``, and with the resource it names (the
table and index, queue URL, bus, parameter or secret) in ``<dir>/<LogicalId>.resources.txt``:
one line per distinct entry, shared by all the workers of the function.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import importlib
import json
import logging
import math
import os
import resource
import sys
import time
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TextIO


class LambdaContext:
    """What the Python runtime passes as ``context``."""

    def __init__(self, request: dict[str, Any]) -> None:
        info: dict[str, Any] = request["context"]
        self.aws_request_id: str = info["aws_request_id"]
        self.function_name: str = info["function_name"]
        self.function_version: str = info.get("function_version", "$LATEST")
        self.invoked_function_arn: str = info["invoked_function_arn"]
        self.memory_limit_in_mb: int = int(info["memory_limit_in_mb"])
        self.log_group_name: str = info.get("log_group_name", "")
        self.log_stream_name: str = info.get("log_stream_name", "")
        self.identity: Any = None
        self.client_context: Any = None
        self._deadline_ms: int = int(info["deadline_ms"])
        self.tenant_id: Any = None

    def get_remaining_time_in_millis(self) -> int:
        return max(self._deadline_ms - int(time.time() * 1000), 0)

    def log(self, message: str) -> None:
        sys.stdout.write(message)
        sys.stdout.flush()


class _RequestIdFilter(logging.Filter):
    request_id = ""

    def filter(self, record: logging.LogRecord) -> bool:
        record.aws_request_id = self.request_id
        return True


def _install_lambda_logging() -> _RequestIdFilter:
    """The root logger as Lambda's Python runtime sets it up (handler and format; level left alone)."""
    request_filter = _RequestIdFilter()
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(
        logging.Formatter(
            "[%(levelname)s]\t%(asctime)s.%(msecs)03dZ\t%(aws_request_id)s\t%(message)s",
            "%Y-%m-%dT%H:%M:%S",
        )
    )
    handler.formatter.converter = time.gmtime  # type: ignore[union-attr]
    handler.addFilter(request_filter)
    logging.getLogger().addHandler(handler)
    return request_filter


def _error(exc: BaseException, error_type: str | None = None, message: str | None = None) -> dict[str, Any]:
    frames = traceback.extract_tb(exc.__traceback__)
    return {
        "errorType": error_type or type(exc).__name__,
        "errorMessage": message if message is not None else str(exc),
        "stackTrace": [line.rstrip("\n") for line in traceback.format_list(frames)],
    }


def _log_error(error: dict[str, Any], exc: BaseException) -> None:
    text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    sys.stdout.write(f"[ERROR] {error['errorType']}: {error['errorMessage']}\n{text}")
    sys.stdout.flush()


def _max_memory_mb() -> int:
    """Peak resident memory of this process (VmHWM; ru_maxrss would include the parent's before exec)."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) // 1024
    except OSError:
        pass
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024)


def _load_handler(spec: str) -> Any:
    module_path, _, attribute = spec.replace("/", ".").rpartition(".")
    if not module_path or not attribute:
        raise _InitError("Runtime.MalformedHandlerName", f"Bad handler '{spec}': not enough values to unpack")
    try:
        module = importlib.import_module(module_path)
    except ImportError as exc:
        raise _InitError(
            "Runtime.ImportModuleError", f"Unable to import module '{module_path}': {exc}"
        ) from exc
    except SyntaxError as exc:
        raise _InitError(
            "Runtime.UserCodeSyntaxError", f"Syntax error in module '{module_path}': {exc}"
        ) from exc
    handler = getattr(module, attribute, None)
    if handler is None:
        raise _InitError(
            "Runtime.HandlerNotFound", f"Handler '{attribute}' missing on module '{module_path}'"
        )
    return handler


RECORD_DIR_VARIABLE = "LOCAL_RECORD_AWS_CALLS"
LOGICAL_ID_VARIABLE = "LOCAL_FUNCTION_LOGICAL_ID"


class _CallRecorder:
    """Notes each distinct IAM action (and the resource it names) this process's AWS calls use."""

    def __init__(self, directory: Path, logical_id: str) -> None:
        self.actions_file = directory / f"{logical_id}.txt"
        self.resources_file = directory / f"{logical_id}.resources.txt"
        self._seen: set[tuple[Path, str]] = set()

    def _note(self, path: Path, line: str) -> None:
        if (path, line) in self._seen:
            return
        self._seen.add((path, line))
        # Several workers of the function share the file: one lock, re-read, append if new.
        with contextlib.suppress(OSError), path.open("a+", encoding="utf-8") as file:
            fcntl.flock(file, fcntl.LOCK_EX)
            file.seek(0)
            if line not in file.read().splitlines():
                file.write(line + "\n")
                file.flush()

    def record(self, action: str, resources: Iterator[str]) -> None:
        self._note(self.actions_file, action)
        for named in resources:
            self._note(self.resources_file, f"{action} {named}")

    def hook(self, params: Any = None, model: Any = None, **_: Any) -> None:
        """botocore's ``before-parameter-build`` handler: every call, with its API parameters."""
        try:
            service = model.service_model
            prefix = service.signing_name or service.endpoint_prefix or service.service_name
            named = _named_resources(params if isinstance(params, dict) else {})
            self.record(f"{prefix}:{model.name}", named)
        except Exception as exc:  # noqa: BLE001 - recording must never break the call it watches
            sys.stderr.write(f"[WARNING] AWS call recorder: {exc!r}\n")


def _named_resources(params: dict[str, Any]) -> Iterator[str]:
    table = params.get("TableName")
    if isinstance(table, str):
        index = params.get("IndexName")
        yield f"{table}/index/{index}" if isinstance(index, str) else table
    for key in ("QueueUrl", "Name", "SecretId"):  # SQS; SSM parameters; Secrets Manager
        if isinstance(params.get(key), str):
            yield params[key]
    entries = params.get("Entries")
    if isinstance(entries, list):  # events:PutEvents (SQS batch entries carry no bus)
        for entry in entries:
            if isinstance(entry, dict) and "Detail" in entry:
                yield str(entry.get("EventBusName") or "default")


def _install_call_recorder() -> None:
    """Hook every botocore client this process creates (boto3.client, resources, own Sessions)."""
    directory = os.environ.pop(RECORD_DIR_VARIABLE, "")
    logical_id = os.environ.pop(LOGICAL_ID_VARIABLE, "")
    if not directory or not logical_id:
        return
    try:
        import botocore.session  # only when recording: the function's own botocore
    except ImportError:
        sys.stderr.write("[WARNING] AWS call recorder: botocore is not importable; nothing recorded\n")
        return
    Path(directory).mkdir(parents=True, exist_ok=True)
    recorder = _CallRecorder(Path(directory), logical_id)
    original: Callable[..., Any] = botocore.session.Session.create_client

    def create_client(self: Any, *args: Any, **kwargs: Any) -> Any:
        created = original(self, *args, **kwargs)
        created.meta.events.register("before-parameter-build", recorder.hook)
        return created

    botocore.session.Session.create_client = create_client  # type: ignore[method-assign]


class _InitError(Exception):
    def __init__(self, error_type: str, message: str) -> None:
        super().__init__(message)
        self.error_type = error_type
        self.message = message


def _send(channel: TextIO, message: dict[str, Any]) -> None:
    channel.write(json.dumps(message, separators=(",", ":")) + "\n")
    channel.flush()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--handler", required=True)
    parser.add_argument("--requests", type=int, required=True)
    parser.add_argument("--responses", type=int, required=True)
    args = parser.parse_args()
    requests = os.fdopen(args.requests, "r", encoding="utf-8")
    responses = os.fdopen(args.responses, "w", encoding="utf-8")
    sys.argv = [os.environ.get("_HANDLER", args.handler)]
    _install_call_recorder()
    request_filter = _install_lambda_logging()
    init_started = time.monotonic()

    try:
        handler = _load_handler(args.handler)
    except _InitError as exc:
        error = {"errorType": exc.error_type, "errorMessage": exc.message, "stackTrace": []}
        _log_error(error, exc)
        _send(responses, {"type": "init_error", "error": error})
        return
    except Exception as exc:  # noqa: BLE001 - any failure of the init phase is reported as Lambda does
        error = _error(exc)
        _log_error(error, exc)
        _send(responses, {"type": "init_error", "error": error})
        return
    _send(responses, {"type": "ready"})
    init_ms: float | None = (time.monotonic() - init_started) * 1000

    for line in requests:
        request = json.loads(line)
        context = LambdaContext(request)
        request_filter.request_id = context.aws_request_id
        started = time.monotonic()
        sys.stdout.write(f"START RequestId: {context.aws_request_id} Version: {context.function_version}\n")
        try:
            event = json.loads(request["event"])
            result = handler(event, context)
            try:
                payload = json.dumps(result)
            except (TypeError, ValueError) as exc:
                error = _error(exc, "Runtime.MarshalError", f"Unable to marshal response: {exc}")
                _log_error(error, exc)
                _send(responses, {"type": "error", "id": request["id"], "error": error})
                continue
            _send(responses, {"type": "result", "id": request["id"], "payload": payload})
        except Exception as exc:  # noqa: BLE001 - an unhandled exception is the invocation's error
            error = _error(exc)
            _log_error(error, exc)
            _send(responses, {"type": "error", "id": request["id"], "error": error})
        finally:
            sys.stderr.flush()
            duration = (time.monotonic() - started) * 1000
            used_mb = _max_memory_mb()
            report = (
                f"REPORT RequestId: {context.aws_request_id}\tDuration: {duration:.2f} ms\t"
                f"Billed Duration: {math.ceil(duration)} ms\tMemory Size: {context.memory_limit_in_mb} MB\t"
                f"Max Memory Used: {used_mb} MB"
            )
            if init_ms is not None:
                report += f"\tInit Duration: {init_ms:.2f} ms"
                init_ms = None
            sys.stdout.write(f"END RequestId: {context.aws_request_id}\n{report}\n")
            sys.stdout.flush()
            request_filter.request_id = ""


if __name__ == "__main__":
    main()
