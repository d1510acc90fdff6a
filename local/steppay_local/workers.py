"""Invoking the real handlers as Lambda would: one warm worker process per concurrent invocation.

Each function gets a pool of long-lived worker processes (like warm Lambda execution environments),
each started with that function's resolved environment and ``PYTHONPATH`` = its code directory and
its layers. A worker serves one invocation at a time; the pool grows on demand up to
``max_concurrency``. A worker that dies or runs past the function's ``Timeout`` is killed and
replaced, and the invocation fails as Lambda reports it. Worker stdout/stderr lines go to a log sink
with the function's logical id as their source. With ``record_calls_dir``, each worker notes the AWS
calls its function makes there (``<dir>/<LogicalId>.txt``, see ``_bootstrap``).
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from steppay_local._util import DEFAULT_REGION, DUMMY_CREDENTIALS, LOG, LogSink, pump_lines
from steppay_local.template import FunctionSpec

BOOTSTRAP = Path(__file__).with_name("_bootstrap.py")
#: The bootstrap's switches for recording AWS calls (kept in step with _bootstrap.py, which imports
#: nothing of this package).
RECORD_DIR_VARIABLE = "LOCAL_RECORD_AWS_CALLS"
LOGICAL_ID_VARIABLE = "LOCAL_FUNCTION_LOGICAL_ID"
SYNC_PAYLOAD_LIMIT = 6 * 1024 * 1024  # bytes, request and response of a synchronous invocation
ASYNC_PAYLOAD_LIMIT = 256 * 1024


class InvocationError(Exception):
    """The invocation failed: the handler raised, timed out, or its runtime died.

    ``error_type``/``error_message`` are what Lambda reports (``Sandbox.Timedout``,
    ``Runtime.ExitError``, ``Runtime.ImportModuleError`` or the exception's class name).
    """

    def __init__(
        self,
        function: str,
        request_id: str,
        error_type: str,
        error_message: str,
        stack_trace: list[str] | None = None,
    ) -> None:
        super().__init__(f"{function} ({request_id}): {error_type}: {error_message}")
        self.function = function
        self.request_id = request_id
        self.error_type = error_type
        self.error_message = error_message
        self.stack_trace = stack_trace or []

    @property
    def payload(self) -> dict[str, Any]:
        """The error as Lambda's Invoke API returns it."""
        return {
            "errorMessage": self.error_message,
            "errorType": self.error_type,
            "requestId": self.request_id,
            "stackTrace": self.stack_trace,
        }


def endpoint_environment(dynamodb_endpoint: str | None, moto_endpoint: str | None) -> dict[str, str]:
    """boto3's per-service endpoint variables pointing at DynamoDB Local and moto.

    boto3 derives the variable from the service id: EventBridge is ``AWS_ENDPOINT_URL_EVENTBRIDGE``
    and Secrets Manager ``AWS_ENDPOINT_URL_SECRETS_MANAGER``. ``AWS_ENDPOINT_URL_EVENTS`` is set too,
    for code that reads it explicitly, but boto3 itself ignores it.
    """
    env: dict[str, str] = {}
    if dynamodb_endpoint:
        env["AWS_ENDPOINT_URL_DYNAMODB"] = dynamodb_endpoint
        env["AWS_ENDPOINT_URL_DYNAMODB_STREAMS"] = dynamodb_endpoint
    if moto_endpoint:
        for service in (
            "EVENTBRIDGE",
            "EVENTS",
            "SQS",
            "SSM",
            "SECRETS_MANAGER",
            "SCHEDULER",
            "SNS",
            "STS",
            "S3",
            "CLOUDWATCH",
        ):
            env[f"AWS_ENDPOINT_URL_{service}"] = moto_endpoint
    return env


def function_environment(
    spec: FunctionSpec,
    *,
    region: str = DEFAULT_REGION,
    dynamodb_endpoint: str | None = None,
    moto_endpoint: str | None = None,
    overrides: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The complete environment of ``spec``'s worker process.

    Precedence, lowest first: runtime defaults, local AWS settings (dummy credentials, endpoints),
    the template's variables (Globals merged with the function's), ``overrides``; Lambda's reserved
    variables (region, function name, memory, handler) always win, as in Lambda.
    """
    python_path = [str(spec.code_dir), *(str(p) for p in spec.layer_dirs)]
    env: dict[str, str] = {
        "PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"),
        "LANG": "C.UTF-8",
        "TZ": "UTC",
        "PYTHONUNBUFFERED": "1",
        "PYTHONNOUSERSITE": "1",
        "AWS_ACCESS_KEY_ID": DUMMY_CREDENTIALS["aws_access_key_id"],
        "AWS_SECRET_ACCESS_KEY": DUMMY_CREDENTIALS["aws_secret_access_key"],
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        "AWS_EC2_METADATA_DISABLED": "true",
        "POWERTOOLS_TRACE_DISABLED": "true",
        **endpoint_environment(dynamodb_endpoint, moto_endpoint),
    }
    env.update(spec.environment)
    env.update(overrides or {})
    env.update(
        {
            "PYTHONPATH": os.pathsep.join(python_path),
            "AWS_REGION": region,
            "AWS_DEFAULT_REGION": region,
            "AWS_EXECUTION_ENV": f"AWS_Lambda_{spec.runtime}",
            "AWS_LAMBDA_FUNCTION_NAME": spec.name,
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(spec.memory_size),
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
            "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{spec.name}",
            "LAMBDA_TASK_ROOT": str(spec.code_dir),
            "_HANDLER": spec.handler,
        }
    )
    return env


class _Worker:
    """One worker process: a warm execution environment of one function."""

    def __init__(self, function: LocalFunction, number: int) -> None:
        self.function = function
        self.number = number
        self.source = function.spec.logical_id
        request_read, request_write = os.pipe()
        response_read, response_write = os.pipe()
        env = dict(function.environment)
        env["AWS_LAMBDA_LOG_STREAM_NAME"] = (
            f"{time.strftime('%Y/%m/%d', time.gmtime())}/[$LATEST]{uuid.uuid4().hex}"
        )
        if function.record_calls_dir is not None:
            # Read and removed by the bootstrap before the handler loads (not the function's own).
            env[RECORD_DIR_VARIABLE] = str(function.record_calls_dir)
            env[LOGICAL_ID_VARIABLE] = function.spec.logical_id
        self.code_stamp = function.code_stamp()
        self.started = time.monotonic()
        try:
            self.process = subprocess.Popen(  # noqa: S603 - our own bootstrap
                [
                    function.python,
                    "-P",
                    str(BOOTSTRAP),
                    "--handler",
                    function.spec.handler,
                    "--requests",
                    str(request_read),
                    "--responses",
                    str(response_write),
                ],
                cwd=str(function.spec.code_dir),
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                pass_fds=(request_read, response_write),
                start_new_session=True,
            )
        finally:
            os.close(request_read)
            os.close(response_write)
        self._requests = os.fdopen(request_write, "w", encoding="utf-8")
        self._responses: queue.Queue[dict[str, Any] | None] = queue.Queue()
        assert self.process.stdout is not None and self.process.stderr is not None
        pump_lines(self.process.stdout, self.source, function.log_sink)
        pump_lines(self.process.stderr, self.source, function.log_sink)
        threading.Thread(
            target=self._read_responses,
            args=(response_read,),
            daemon=True,
            name=f"worker-{self.source}-{number}",
        ).start()
        self.ready = False
        self.invocations = 0

    def _read_responses(self, fd: int) -> None:
        with contextlib.suppress(ValueError, OSError), os.fdopen(fd, "r", encoding="utf-8") as responses:
            for line in responses:
                try:
                    self._responses.put(json.loads(line))
                except json.JSONDecodeError:
                    LOG.warning("%s: unreadable worker message %r", self.source, line[:200])
        self._responses.put(None)

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    def _exit_description(self) -> str:
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=2)
        code = self.process.returncode
        if code is None:
            return "Runtime exited without providing a reason"
        if code < 0:
            with contextlib.suppress(ValueError):
                name = signal.Signals(-code).name.lower().removeprefix("sig")
                return f"Runtime exited with error: signal: {name}"
        return f"Runtime exited with error: exit status {code}"

    def wait_ready(self, request_id: str, timeout: float) -> None:
        if self.ready:
            return
        try:
            message = self._responses.get(timeout=timeout)
        except queue.Empty:
            self.kill()
            raise InvocationError(
                self.source,
                request_id,
                "Runtime.InitTimeout",
                f"Init phase did not finish within {timeout:.0f} seconds",
            ) from None
        if message is None:
            raise InvocationError(
                self.source,
                request_id,
                "Runtime.ExitError",
                f"RequestId: {request_id} Error: {self._exit_description()}",
            )
        if message.get("type") == "init_error":
            error = message["error"]
            self.kill()
            raise InvocationError(
                self.source, request_id, error["errorType"], error["errorMessage"], error.get("stackTrace")
            )
        self.ready = True

    def invoke(self, event_json: str, request_id: str, timeout: float, context: dict[str, Any]) -> str:
        """Run one invocation; return the result payload (JSON text) or raise ``InvocationError``."""
        self.invocations += 1
        request = {"id": request_id, "event": event_json, "context": context}
        try:
            self._requests.write(json.dumps(request, separators=(",", ":")) + "\n")
            self._requests.flush()
        except (BrokenPipeError, OSError, ValueError):
            raise InvocationError(
                self.source,
                request_id,
                "Runtime.ExitError",
                f"RequestId: {request_id} Error: {self._exit_description()}",
            ) from None
        try:
            message = self._responses.get(timeout=timeout)
        except queue.Empty:
            self.kill()
            self.function.log_sink(
                self.source, f"{_utc_now()} {request_id} Task timed out after {timeout:.2f} seconds"
            )
            raise InvocationError(
                self.source,
                request_id,
                "Sandbox.Timedout",
                f"{_utc_now()} {request_id} Task timed out after {timeout:.2f} seconds",
            ) from None
        if message is None:
            description = self._exit_description()
            self.function.log_sink(self.source, f"RequestId: {request_id} Error: {description}")
            raise InvocationError(
                self.source, request_id, "Runtime.ExitError", f"RequestId: {request_id} Error: {description}"
            )
        if message.get("type") == "error":
            error = message["error"]
            raise InvocationError(
                self.source, request_id, error["errorType"], error["errorMessage"], error.get("stackTrace")
            )
        return str(message["payload"])

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signal.SIGKILL)
        with contextlib.suppress(OSError, ValueError):
            self._requests.close()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=5)

    def stop(self) -> None:
        """Let the worker end on its own (its request pipe closes), kill it if it does not."""
        with contextlib.suppress(OSError, ValueError):
            self._requests.close()
        try:
            self.process.wait(timeout=3)
        except subprocess.TimeoutExpired:
            self.kill()


def _utc_now() -> str:
    now = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now * 1000) % 1000:03d}Z"


class LocalFunction:
    """One function of the template with its pool of warm workers."""

    def __init__(
        self,
        spec: FunctionSpec,
        environment: Mapping[str, str],
        *,
        log_sink: LogSink,
        max_concurrency: int = 8,
        python: str = sys.executable,
        init_timeout: float = 60.0,
        reload_on_change: bool = True,
        record_calls_dir: Path | None = None,
    ) -> None:
        self.spec = spec
        self.environment = dict(environment)
        self.log_sink = log_sink
        self.max_concurrency = max(1, max_concurrency)
        self.python = python
        self.init_timeout = init_timeout
        self.reload_on_change = reload_on_change
        self.record_calls_dir = record_calls_dir.resolve() if record_calls_dir is not None else None
        if self.record_calls_dir is not None:
            self.record_calls_dir.mkdir(parents=True, exist_ok=True)
        self._idle: list[_Worker] = []
        self._all: set[_Worker] = set()
        self._reserved = 0
        self._cond = threading.Condition()
        self._closed = False
        self._numbers = 0
        self._stamp_checked = 0.0
        self._stamp = self.code_stamp()
        self.invocations = 0
        self.errors = 0

    # -- code reloading: a change of the code or a layer retires the warm workers --

    def _source_dirs(self) -> Iterable[Path]:
        yield self.spec.code_dir
        yield from self.spec.layer_dirs

    def code_stamp(self) -> float:
        latest = 0.0
        for directory in self._source_dirs():
            for path in directory.rglob("*.py"):
                with contextlib.suppress(OSError):
                    latest = max(latest, path.stat().st_mtime)
        return latest

    def _current_stamp(self) -> float:
        if self.reload_on_change and time.monotonic() - self._stamp_checked > 1.0:
            self._stamp_checked = time.monotonic()
            self._stamp = self.code_stamp()
        return self._stamp

    # -- the pool --

    @property
    def worker_count(self) -> int:
        with self._cond:
            return len(self._all) + self._reserved

    def _acquire(self) -> _Worker:
        stamp = self._current_stamp()
        with self._cond:
            while True:
                if self._closed:
                    raise RuntimeError(f"{self.spec.logical_id} is stopped")
                while self._idle:
                    worker = self._idle.pop()
                    if worker.alive and worker.code_stamp >= stamp:
                        return worker
                    self._all.discard(worker)
                    threading.Thread(target=worker.stop, daemon=True).start()
                if len(self._all) + self._reserved < self.max_concurrency:
                    self._reserved += 1
                    break
                self._cond.wait()
        try:
            self._numbers += 1
            worker = _Worker(self, self._numbers)
        except Exception:
            with self._cond:
                self._reserved -= 1
                self._cond.notify()
            raise
        with self._cond:
            self._reserved -= 1
            self._all.add(worker)
        return worker

    def _release(self, worker: _Worker, healthy: bool) -> None:
        with self._cond:
            if healthy and worker.alive and not self._closed:
                self._idle.append(worker)
            else:
                self._all.discard(worker)
                if worker.alive:
                    threading.Thread(target=worker.kill, daemon=True).start()
            self._cond.notify()

    def invoke(self, event: Any, *, request_id: str | None = None, asynchronous: bool = False) -> Any:
        """Invoke the handler with ``event``; return its (JSON round-tripped) result."""
        return json.loads(
            self.invoke_json(json.dumps(event), request_id=request_id, asynchronous=asynchronous)
        )

    def invoke_json(
        self, event_json: str, *, request_id: str | None = None, asynchronous: bool = False
    ) -> str:
        request_id = request_id or str(uuid.uuid4())
        limit = ASYNC_PAYLOAD_LIMIT if asynchronous else SYNC_PAYLOAD_LIMIT
        if len(event_json.encode()) > limit:
            raise InvocationError(
                self.spec.logical_id,
                request_id,
                "RequestEntityTooLargeException",
                f"Request must be smaller than {limit} bytes for the Invoke operation",
            )
        worker = self._acquire()
        healthy = False
        self.invocations += 1
        try:
            worker.wait_ready(request_id, self.init_timeout)
            now_ms = int(time.time() * 1000)
            context = {
                "aws_request_id": request_id,
                "function_name": self.spec.name,
                "function_version": "$LATEST",
                "invoked_function_arn": self.spec.arn,
                "memory_limit_in_mb": self.spec.memory_size,
                "log_group_name": self.environment.get("AWS_LAMBDA_LOG_GROUP_NAME", ""),
                "log_stream_name": "",
                "deadline_ms": now_ms + self.spec.timeout * 1000,
            }
            payload = worker.invoke(event_json, request_id, float(self.spec.timeout), context)
            healthy = True
        except InvocationError as exc:
            self.errors += 1
            # A handler's own exception leaves the runtime healthy; timeouts and crashes do not.
            healthy = worker.alive and exc.error_type not in ("Sandbox.Timedout", "Runtime.ExitError")
            raise
        finally:
            self._release(worker, healthy)
        if len(payload.encode()) > SYNC_PAYLOAD_LIMIT and not asynchronous:
            raise InvocationError(
                self.spec.logical_id,
                request_id,
                "Function.ResponseSizeTooLarge",
                "Response payload size exceeded maximum allowed payload size (6291556 bytes).",
            )
        return payload

    def recycle(self) -> None:
        """Retire every idle worker (the next invocation starts cold)."""
        with self._cond:
            idle, self._idle = self._idle, []
            for worker in idle:
                self._all.discard(worker)
        for worker in idle:
            worker.stop()

    def stop(self) -> None:
        with self._cond:
            self._closed = True
            workers = list(self._all)
            self._idle.clear()
            self._all.clear()
            self._cond.notify_all()
        for worker in workers:
            if worker in workers:
                worker.stop()


class FunctionRegistry:
    """Every function of the template, by logical id."""

    def __init__(self, functions: Iterable[LocalFunction]) -> None:
        self.functions = {f.spec.logical_id: f for f in functions}

    def __getitem__(self, logical_id: str) -> LocalFunction:
        try:
            return self.functions[logical_id]
        except KeyError:
            raise KeyError(f"no function {logical_id} in the template") from None

    def __contains__(self, logical_id: object) -> bool:
        return logical_id in self.functions

    def invoke(self, logical_id: str, event: Any, **kwargs: Any) -> Any:
        return self[logical_id].invoke(event, **kwargs)

    def stop(self) -> None:
        threads = [threading.Thread(target=f.stop, daemon=True) for f in self.functions.values()]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=15)
