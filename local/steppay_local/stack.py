"""``LocalStack``: DynamoDB Local, moto, the StepPay sandbox, the local API and the event sources."""

from __future__ import annotations

import datetime as dt
import importlib
import json
import os
import sys
import threading
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import IO, Any

from steppay_local import LOOPBACK, REPO_ROOT
from steppay_local._util import (
    DEFAULT_REGION,
    LOG,
    FileLogSink,
    LogCapture,
    LogSink,
    MultiSink,
    StreamLogSink,
    client,
    ensure_port_free,
    free_port,
)
from steppay_local.api import LocalApi, routes_from_template
from steppay_local.dynamodb import DynamoDBLocal
from steppay_local.moto_server import MotoServer
from steppay_local.pollers import Poller
from steppay_local.queues import RuleTargetPoller, SqsEventSource
from steppay_local.streams import CheckpointStore, StreamEventSource
from steppay_local.template import (
    DEFAULT_STACK_NAME,
    DynamoDBEvent,
    Infrastructure,
    ScheduleEvent,
    SqsEvent,
    Template,
    create_infrastructure,
    create_tables,
)
from steppay_local.workers import FunctionRegistry, LocalFunction, function_environment

DEFAULT_SECRET_TOKEN = "sandbox-secret-token"  # noqa: S105 - the sandbox's documented local-only token
DEFAULT_WEBHOOK_KEYS = "sandbox-webhook-key"
DEFAULT_ALLOWED_REDIRECT_HOSTS = "localhost,127.0.0.1"
DEFAULT_RESULT_PAGE_URL = "http://127.0.0.1:8080/result.html"
DEFAULT_ALLOWED_ORIGINS = "http://127.0.0.1:8080,http://localhost:8080"
DEFAULT_DATA_DIR = ".local-data"

#: Environment variables read by ``LocalStackConfig.from_env`` (and documented in local/README.md).
ENVIRONMENT_VARIABLES = {
    "LOCAL_API_PORT": "port of the local HTTP API (3000)",
    "DYNAMODB_PORT": "port of DynamoDB Local (8000)",
    "MOTO_PORT": "port of moto's server: EventBridge, SQS, SSM, Secrets Manager (5010)",
    "SANDBOX_PORT": "port of the StepPay sandbox (8181)",
    "LOCAL_DATA_DIR": "DynamoDB Local data, stream checkpoints and sandbox state (.local-data)",
    "LOCAL_IN_MEMORY": "1/true: keep nothing on disk (same as --in-memory)",
    "STEPPAY_SECRET_TOKEN": f"the sandbox's Secret-Token, given to the functions ({DEFAULT_SECRET_TOKEN})",
    "STEPPAY_WEBHOOK_KEYS": f"webhook key(s), comma-separated; the sandbox signs with the first "
    f"({DEFAULT_WEBHOOK_KEYS})",
    "ALLOWED_REDIRECT_HOSTS": f"redirect allow-list ({DEFAULT_ALLOWED_REDIRECT_HOSTS})",
    "RESULT_PAGE_URL": f"where GET /payments/callback sends the shopper ({DEFAULT_RESULT_PAGE_URL})",
    "ALLOWED_ORIGINS": f"CORS origins of the HTTP API ({DEFAULT_ALLOWED_ORIGINS})",
    "LOCAL_STACK_NAME": f"prefix of local physical names ({DEFAULT_STACK_NAME})",
    "LOCAL_MAX_CONCURRENCY": "warm workers per function at most (8)",
    "DEMO_PORT": "port of the demo checkout page (8080); keep it in ALLOWED_ORIGINS",
    "LOCAL_DEMO": "0: do not serve the demo checkout page",
    "LOCAL_RECORD_AWS_CALLS": "a directory: note each function's AWS calls there as IAM actions "
    "(<dir>/<LogicalId>.txt); read by every LocalStack started in the process",
}

#: The process-environment switch for recording AWS calls (``LocalStackConfig.record_aws_calls``).
RECORD_AWS_CALLS_VARIABLE = "LOCAL_RECORD_AWS_CALLS"


@dataclass
class LocalStackConfig:
    """Everything a ``LocalStack`` needs; ports 0 pick free ports."""

    root: Path = REPO_ROOT
    template_path: Path | None = None  # default: <root>/template.yaml
    stack_name: str = DEFAULT_STACK_NAME
    region: str = DEFAULT_REGION
    api_port: int = 3000
    dynamodb_port: int = 8000
    moto_port: int = 5010
    sandbox_port: int = 8181
    data_dir: Path | None = None  # None: nothing on disk (DynamoDB in memory)
    secret_token: str = DEFAULT_SECRET_TOKEN
    webhook_keys: str = DEFAULT_WEBHOOK_KEYS
    allowed_redirect_hosts: str = DEFAULT_ALLOWED_REDIRECT_HOSTS
    result_page_url: str = DEFAULT_RESULT_PAGE_URL
    allowed_origins: str = DEFAULT_ALLOWED_ORIGINS
    webhook_path: str = "/webhooks/steppay"
    parameter_overrides: dict[str, Any] = field(default_factory=dict)
    env_overrides: dict[str, str] = field(default_factory=dict)
    sandbox: bool = True
    sandbox_options: dict[str, Any] = field(default_factory=dict)
    dynamodb_endpoint: str | None = None  # use a running DynamoDB Local instead of starting one
    moto_endpoint: str | None = None  # use a running moto server instead of starting one
    max_concurrency: int = 8
    log_sink: LogSink | None = None
    log_file: Path | None = None
    echo: IO[str] | None = None  # e.g. sys.stdout: print every log line, prefixed with its source
    stream_retry_backoff: tuple[float, float] = (0.2, 5.0)
    async_retry_delay: float = 2.0
    reload_on_change: bool = True
    demo: bool = False  # the demo checkout page (demo/); `make run` turns it on (from_env)
    demo_port: int = 8080
    # Each function's AWS calls noted as IAM actions in <dir>/<LogicalId>.txt (see _bootstrap);
    # None: as LOCAL_RECORD_AWS_CALLS of the process says (unset: nothing is recorded).
    record_aws_calls: Path | None = None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> LocalStackConfig:
        env = os.environ if environ is None else environ
        root = Path(overrides.pop("root", REPO_ROOT))
        in_memory = env.get("LOCAL_IN_MEMORY", "").lower() in ("1", "true", "yes")
        data_dir: Path | None = Path(env.get("LOCAL_DATA_DIR", DEFAULT_DATA_DIR))
        if data_dir is not None and not data_dir.is_absolute():
            data_dir = root / data_dir
        config = cls(
            root=root,
            api_port=int(env.get("LOCAL_API_PORT", 3000)),
            dynamodb_port=int(env.get("DYNAMODB_PORT", 8000)),
            moto_port=int(env.get("MOTO_PORT", 5010)),
            sandbox_port=int(env.get("SANDBOX_PORT", 8181)),
            data_dir=None if in_memory else data_dir,
            secret_token=env.get("STEPPAY_SECRET_TOKEN") or DEFAULT_SECRET_TOKEN,
            webhook_keys=env.get("STEPPAY_WEBHOOK_KEYS") or DEFAULT_WEBHOOK_KEYS,
            allowed_redirect_hosts=env.get("ALLOWED_REDIRECT_HOSTS") or DEFAULT_ALLOWED_REDIRECT_HOSTS,
            result_page_url=env.get("RESULT_PAGE_URL") or DEFAULT_RESULT_PAGE_URL,
            allowed_origins=env.get("ALLOWED_ORIGINS") or DEFAULT_ALLOWED_ORIGINS,
            stack_name=env.get("LOCAL_STACK_NAME") or DEFAULT_STACK_NAME,
            max_concurrency=int(env.get("LOCAL_MAX_CONCURRENCY", 8)),
            demo=env.get("LOCAL_DEMO", "1").lower() not in ("0", "false", "no"),
            demo_port=int(env.get("DEMO_PORT", 8080)),
        )
        record = env.get(RECORD_AWS_CALLS_VARIABLE, "").strip()
        if record:
            config.record_aws_calls = Path(record) if Path(record).is_absolute() else root / record
        return replace(config, **overrides)


class LocalStack:
    """The whole bundle on 127.0.0.1: ``start()``, use, ``stop()`` (also a context manager)."""

    def __init__(self, config: LocalStackConfig | None = None) -> None:
        self.config = config or LocalStackConfig()
        self.logs = LogCapture()
        sinks: list[LogSink] = [self.logs]
        self._file_sink: FileLogSink | None = None
        if self.config.log_file is not None:
            self._file_sink = FileLogSink(self.config.log_file)
            sinks.append(self._file_sink)
        if self.config.log_sink is not None:
            sinks.append(self.config.log_sink)
        if self.config.echo is not None:
            sinks.append(StreamLogSink(self.config.echo))
        self.log_sink: LogSink = MultiSink(sinks)
        self.dynamodb: DynamoDBLocal | None = None
        self.moto: MotoServer | None = None
        self.sandbox: Any = None
        self.template: Template | None = None
        self.infra = Infrastructure()
        self.functions = FunctionRegistry([])
        self.api: LocalApi | None = None
        self.pollers: list[Poller] = []
        self.checkpoints = CheckpointStore(self._data_path("stream-checkpoints.json"))
        self.dynamodb_endpoint = ""
        self.moto_endpoint = ""
        self.api_url = ""
        self.sandbox_url: str | None = None
        self.demo: Any = None
        self.demo_url: str | None = None
        self._started = False

    # -- paths and names --

    def _data_path(self, name: str) -> Path | None:
        return self.config.data_dir / name if self.config.data_dir is not None else None

    @property
    def template_path(self) -> Path:
        return self.config.template_path or self.config.root / "template.yaml"

    @property
    def table_names(self) -> dict[str, str]:
        return dict(self.infra.table_names)

    @property
    def bus_names(self) -> dict[str, str]:
        return dict(self.infra.bus_names)

    @property
    def queue_urls(self) -> dict[str, str]:
        return dict(self.infra.queue_urls)

    @property
    def tap_queue_url(self) -> str:
        return self.infra.tap_queue_url

    def client(self, service: str) -> Any:
        """A boto3 client for ``service`` against the local endpoints (DynamoDB Local or moto)."""
        endpoint = (
            self.dynamodb_endpoint if service in ("dynamodb", "dynamodbstreams") else self.moto_endpoint
        )
        return client(service, endpoint, self.config.region)

    # -- lifecycle --

    def start(self) -> LocalStack:
        if self._started:
            return self
        self._started = True
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def _start_backends(self) -> None:
        config = self.config
        errors: list[BaseException] = []

        def run(target: Any) -> None:
            try:
                target.start()
            except BaseException as exc:  # noqa: BLE001 - re-raised below
                errors.append(exc)

        threads = []
        if config.dynamodb_endpoint:
            self.dynamodb_endpoint = config.dynamodb_endpoint
        else:
            self.dynamodb = DynamoDBLocal(
                config.dynamodb_port, self._data_path("dynamodb"), log_sink=self.log_sink
            )
            threads.append(threading.Thread(target=run, args=(self.dynamodb,)))
        if config.moto_endpoint:
            self.moto_endpoint = config.moto_endpoint
        else:
            self.moto = MotoServer(config.moto_port, log_sink=self.log_sink)
            threads.append(threading.Thread(target=run, args=(self.moto,)))
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        if errors:
            raise errors[0]
        if self.dynamodb is not None:
            self.dynamodb_endpoint = self.dynamodb.endpoint_url
        if self.moto is not None:
            self.moto_endpoint = self.moto.endpoint_url

    def _start_sandbox(self, api_port: int) -> None:
        config = self.config
        if not config.sandbox:
            return
        server_module = importlib.import_module("steppay_sandbox.server")
        state_file = self._data_path("sandbox-state.json")
        options: dict[str, Any] = {
            "host": LOOPBACK,
            "port": config.sandbox_port,
            "secret_token": config.secret_token,
            "webhook_key": config.webhook_keys.split(",")[0].strip(),
            "webhook_url": f"http://{LOOPBACK}:{api_port}{config.webhook_path}",
            **({"state_file": state_file} if state_file is not None else {}),
            **config.sandbox_options,
        }
        self.sandbox = server_module.SandboxServer(**options).start()
        self.sandbox_url = str(self.sandbox.url)

    def parameter_overrides(self) -> dict[str, Any]:
        """Template parameters for local runs (only those the template declares are used)."""
        config = self.config
        overrides: dict[str, Any] = {
            "Stage": "local",
            "SecretsStore": "ssm",
            "AllowedRedirectHosts": config.allowed_redirect_hosts,
            "ResultPageUrl": config.result_page_url,
            "AllowedOrigins": config.allowed_origins,
        }
        if self.sandbox_url:
            overrides["StepPayBaseUrl"] = self.sandbox_url
        overrides.update(config.parameter_overrides)
        return overrides

    def environment_overrides(self) -> dict[str, str]:
        """Variables forced on every function: secrets as plain variables, no parameter names."""
        return {
            "STEPPAY_SECRET_TOKEN_PARAM": "",
            "STEPPAY_WEBHOOK_KEYS_PARAM": "",
            "STEPPAY_SECRET_TOKEN": self.config.secret_token,
            "STEPPAY_WEBHOOK_KEYS": self.config.webhook_keys,
            **self.config.env_overrides,
        }

    def _check_ports(self) -> None:
        """Fail before starting anything when a fixed port is taken."""
        config = self.config
        wanted = [(config.api_port, "local API", "LOCAL_API_PORT")]
        if not config.dynamodb_endpoint:
            wanted.append((config.dynamodb_port, "DynamoDB Local", "DYNAMODB_PORT"))
        if not config.moto_endpoint:
            wanted.append((config.moto_port, "moto server", "MOTO_PORT"))
        if config.sandbox:
            wanted.append((config.sandbox_port, "StepPay sandbox", "SANDBOX_PORT"))
        if config.demo and config.sandbox:
            wanted.append((config.demo_port, "demo checkout", "DEMO_PORT"))
        for port, what, variable in wanted:
            ensure_port_free(port, what, variable)

    def _start(self) -> None:
        config = self.config
        started = time.monotonic()
        self._check_ports()
        self._start_backends()
        api_port = config.api_port or free_port()
        self._start_sandbox(api_port)

        self.template = Template(
            self.template_path,
            self.parameter_overrides(),
            stack_name=config.stack_name,
            region=config.region,
            moto_endpoint=self.moto_endpoint,
        )
        self.infra = create_infrastructure(self.template, self.dynamodb_endpoint, self.moto_endpoint)

        record_dir = self.record_aws_calls_dir
        if record_dir is not None:
            self._write_resource_names(record_dir)
        functions = []
        for spec in self.template.functions():
            environment = function_environment(
                spec,
                region=config.region,
                dynamodb_endpoint=self.dynamodb_endpoint,
                moto_endpoint=self.moto_endpoint,
                overrides=self.environment_overrides(),
            )
            functions.append(
                LocalFunction(
                    spec,
                    environment,
                    log_sink=self.log_sink,
                    max_concurrency=config.max_concurrency,
                    reload_on_change=config.reload_on_change,
                    record_calls_dir=record_dir,
                )
            )
        self.functions = FunctionRegistry(functions)

        routes, apis = routes_from_template(self.template)
        self.api = LocalApi(routes, self.functions, apis, port=api_port, log_sink=self.log_sink).start()
        self.api_url = self.api.url

        self._start_pollers()
        self._start_demo()
        LOG.info("local stack up in %.1fs", time.monotonic() - started)

    @property
    def record_aws_calls_dir(self) -> Path | None:
        """Where the functions' AWS calls are recorded: the config's, else the process's variable."""
        if self.config.record_aws_calls is not None:
            return self.config.record_aws_calls.resolve()
        from_process = os.environ.get(RECORD_AWS_CALLS_VARIABLE, "").strip()
        return Path(from_process).resolve() if from_process else None

    def _write_resource_names(self, record_dir: Path) -> None:
        """``<dir>/_stack-<name>-<n>.json``: this stack's physical names by logical id, so that the
        recorded resources (table names, queue URLs, bus names) can be read as the template's."""
        record_dir.mkdir(parents=True, exist_ok=True)
        names = {
            "template": str(self.template_path.resolve()),
            "stack_name": self.config.stack_name,
            "tables": self.table_names,
            "queues": self.queue_urls,
            "buses": self.bus_names,
        }
        path = record_dir / f"_stack-{self.config.stack_name}-{uuid.uuid4().hex[:8]}.json"
        path.write_text(json.dumps(names, indent=2, sort_keys=True) + "\n", encoding="utf-8")

    def _start_demo(self) -> None:
        """The demo checkout page (demo/steppay_demo), beside the API, with its own live event feed."""
        config = self.config
        if not (config.demo and self.sandbox_url):
            return
        demo_dir = str(config.root / "demo")
        if demo_dir not in sys.path:
            sys.path.append(demo_dir)
        server_module = importlib.import_module("steppay_demo.server")
        self.demo = server_module.DemoServer(
            config.demo_port,
            api_url=self.api_url,
            sandbox_url=self.sandbox_url,
            moto_endpoint=self.moto_endpoint,
            bus_name=next(iter(self.bus_names.values()), None),
            secret_token=config.secret_token,
            region=config.region,
            log_sink=self.log_sink,
        ).start()
        self.demo_url = str(self.demo.url)

    def _start_pollers(self) -> None:
        assert self.template is not None
        config = self.config
        for function in self.functions.functions.values():
            spec = function.spec
            for event in spec.events_of(DynamoDBEvent):
                if not event.enabled:
                    continue
                table = self.infra.table_names.get(event.table_logical_id or "")
                if table is None:
                    LOG.warning(
                        "%s.%s: stream %s is not a table of the template; not polled",
                        spec.logical_id,
                        event.name,
                        event.stream_arn,
                    )
                    continue
                on_failure = None
                if event.on_failure_destination:
                    on_failure = self.infra.queue_url_for_arn(event.on_failure_destination)
                self.pollers.append(
                    StreamEventSource(
                        function,
                        event,
                        table_name=table,
                        dynamodb_endpoint=self.dynamodb_endpoint,
                        moto_endpoint=self.moto_endpoint,
                        on_failure_queue_url=on_failure,
                        checkpoints=self.checkpoints,
                        region=config.region,
                        log_sink=self.log_sink,
                        retry_backoff=config.stream_retry_backoff,
                    )
                )
            for sqs_event in spec.events_of(SqsEvent):
                if not sqs_event.enabled:
                    continue
                url = self.infra.queue_url_for_arn(sqs_event.queue_arn)
                if url is None:
                    LOG.warning(
                        "%s.%s: queue %s is not in the template; not polled",
                        spec.logical_id,
                        sqs_event.name,
                        sqs_event.queue_arn,
                    )
                    continue
                self.pollers.append(
                    SqsEventSource(
                        function,
                        sqs_event,
                        queue_url=url,
                        queue_arn=sqs_event.queue_arn,
                        moto_endpoint=self.moto_endpoint,
                        region=config.region,
                        log_sink=self.log_sink,
                    )
                )
        for target in self.infra.rule_targets:
            function = self.functions[target.function_logical_id]
            destination = function.spec.async_on_failure_destination
            self.pollers.append(
                RuleTargetPoller(
                    function,
                    target,
                    moto_endpoint=self.moto_endpoint,
                    on_failure_queue_url=self.infra.queue_url_for_arn(destination) if destination else None,
                    region=config.region,
                    log_sink=self.log_sink,
                    retry_delay=config.async_retry_delay,
                )
            )
        for poller in self.pollers:
            poller.start()

    def stop(self) -> None:
        """Stop everything this stack started (children included); safe to call twice."""
        if self.demo is not None:
            self.demo.stop()  # first: it removes its queue and rule from moto
            self.demo = None
        for poller in self.pollers:
            poller.signal_stop()
        if self.api is not None:
            self.api.stop()
            self.api = None
        self.functions.stop()
        for poller in self.pollers:
            poller.stop()
        self.pollers = []
        if self.sandbox is not None:
            try:
                self.sandbox.stop()
            except Exception:  # noqa: BLE001 - keep stopping the rest
                LOG.warning("the sandbox did not stop cleanly", exc_info=True)
            self.sandbox = None
        if self.moto is not None:
            self.moto.stop()
            self.moto = None
        if self.dynamodb is not None:
            self.dynamodb.stop()
            self.dynamodb = None
        if self._file_sink is not None:
            self._file_sink.close()
        self._started = False

    def __enter__(self) -> LocalStack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- helpers for people and tests --

    def restart_dynamodb(self) -> None:
        """Restart DynamoDB Local (same port, same data); recreate the tables when it keeps nothing."""
        if self.dynamodb is None:
            raise RuntimeError("DynamoDB Local was not started by this stack")
        self.dynamodb.restart()
        if self.template is not None:
            create_tables(self.template, self.dynamodb_endpoint, self.infra)

    def wait_idle(self, timeout: float = 30.0) -> None:
        """Wait until every event source has delivered everything there was when this was called.

        Loops until a round in which no poller did anything (so chains such as stream -> publisher ->
        bus -> rule -> subscriber settle too). Raises ``TimeoutError`` naming the busy pollers.
        """
        deadline = time.monotonic() + timeout
        while True:
            since = time.monotonic()
            before = sum(p.activity for p in self.pollers)
            busy = [
                p.name for p in self.pollers if not p.wait_quiet(since, max(0.0, deadline - time.monotonic()))
            ]
            if busy:
                raise TimeoutError(f"still busy after {timeout:.0f}s: {', '.join(busy)}")
            if sum(p.activity for p in self.pollers) == before:
                return

    def queue_depth(self, logical_id: str) -> int:
        """Messages a template queue holds: visible, in flight (a failed try waits out its
        visibility timeout) and delayed (the queue's DelaySeconds)."""
        names = [
            "ApproximateNumberOfMessages",
            "ApproximateNumberOfMessagesNotVisible",
            "ApproximateNumberOfMessagesDelayed",
        ]
        attributes = self.client("sqs").get_queue_attributes(
            QueueUrl=self.queue_urls[logical_id], AttributeNames=names
        )["Attributes"]
        return sum(int(attributes.get(name, 0)) for name in names)

    def read_tap(self, max_wait: float = 0.0) -> list[dict[str, Any]]:
        """Every event the tap queue holds, parsed and removed; waits up to ``max_wait`` s for the first."""
        sqs = self.client("sqs")
        deadline = time.monotonic() + max_wait
        events: list[dict[str, Any]] = []
        while True:
            response = sqs.receive_message(
                QueueUrl=self.tap_queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0
            )
            messages = response.get("Messages", [])
            for message in messages:
                events.append(json.loads(message["Body"]))
            if messages:
                sqs.delete_message_batch(
                    QueueUrl=self.tap_queue_url,
                    Entries=[
                        {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)
                    ],
                )
                continue
            if events or time.monotonic() >= deadline:
                return events
            time.sleep(0.1)

    def invoke(self, function_logical_id: str, event: Any) -> Any:
        """Invoke a function synchronously (as ``aws lambda invoke`` would)."""
        return self.functions.invoke(function_logical_id, event)

    def schedule_payload(self, function_logical_id: str, event_name: str | None = None) -> Any:
        """What a ``Schedule``/``ScheduleV2`` event of the function would deliver."""
        assert self.template is not None
        spec = self.functions[function_logical_id].spec
        schedules = [e for e in spec.events_of(ScheduleEvent) if event_name in (None, e.name)]
        if not schedules:
            raise KeyError(f"{function_logical_id} has no schedule event {event_name or ''}".strip())
        schedule = schedules[0]
        if schedule.input is not None:
            return json.loads(schedule.input) if isinstance(schedule.input, str) else schedule.input
        if schedule.kind == "ScheduleV2":
            return {}  # EventBridge Scheduler's templated Lambda target without Input (assumed: {})
        return {
            "version": "0",
            "id": str(uuid.uuid4()),
            "detail-type": "Scheduled Event",
            "source": "aws.events",
            "account": self.template.account_id,
            "time": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "region": self.config.region,
            "resources": [
                f"arn:aws:events:{self.config.region}:{self.template.account_id}:rule/"
                f"{function_logical_id}{schedule.name}"
            ],
            "detail": {},
        }

    def trigger_schedule(self, function_logical_id: str, event_name: str | None = None) -> Any:
        """Run a scheduled function now, with the payload its schedule would deliver."""
        return self.invoke(function_logical_id, self.schedule_payload(function_logical_id, event_name))

    def summary(self) -> str:
        lines = [
            f"  local API      {self.api_url}",
            f"  DynamoDB Local {self.dynamodb_endpoint}",
            f"  moto           {self.moto_endpoint}   (EventBridge, SQS, SSM, Secrets Manager)",
        ]
        if self.sandbox_url:
            lines.append(
                f"  StepPay sandbox {self.sandbox_url}  "
                f"(webhooks -> {self.api_url}{self.config.webhook_path})"
            )
        if self.demo_url:
            lines.append(f"  demo checkout  {self.demo_url}/   (redirect, popup, iframe)")
        if self.api is not None:
            lines.append("  routes:")
            lines += [f"    {r.route_key:<28} -> {r.function}" for r in self.api.routes]
        lines.append(f"  tables: {', '.join(f'{k}={v}' for k, v in self.table_names.items())}")
        lines.append(f"  buses:  {', '.join(f'{k}={v}' for k, v in self.bus_names.items())}")
        lines.append(f"  event tap queue: {self.tap_queue_url}  (python -m steppay_local tap)")
        if self.pollers:
            lines.append(f"  event sources: {', '.join(p.name for p in self.pollers)}")
        for note in self.infra.notes:
            lines.append(f"  note: {note}")
        lines.append("  local-only secrets (never use them anywhere else):")
        lines.append(f"    Secret-Token  {self.config.secret_token}")
        lines.append(f"    webhook key   {self.config.webhook_keys}")
        lines.append(f"  data: {self.config.data_dir or 'in memory (nothing kept)'}")
        return "\n".join(lines)
