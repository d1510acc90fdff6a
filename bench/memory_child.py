"""One function in a fresh process (see bench/memory.py): started with `python -S -B`, reads its
spec as JSON on stdin, prints `RESULT <json>` on stdout. Standard library only until the import.
"""

import json
import os
import resource
import sys
import time
import uuid


class Context:
    def __init__(self, function_name: str, memory: int) -> None:
        self.function_name = function_name
        self.function_version = "$LATEST"
        self.memory_limit_in_mb = memory
        self.invoked_function_arn = f"arn:aws:lambda:ap-northeast-2:123456789012:function:{function_name}"
        self.aws_request_id = str(uuid.uuid4())
        self.log_group_name = f"/aws/lambda/{function_name}"
        self.log_stream_name = "bench"
        self._deadline = time.monotonic() + 300

    def get_remaining_time_in_millis(self) -> int:
        return int((self._deadline - time.monotonic()) * 1000)


def rss_mb() -> float:
    """Peak resident set of this process image (VmHWM; ru_maxrss would include the parent's,
    which Linux carries over a fork and exec)."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def count_clients_and_connections() -> tuple[dict[str, int], dict[str, int]]:
    """Count boto3 clients created and new TCP connections opened, by service and by host:port."""
    import botocore.session
    import urllib3.connection

    clients: dict[str, int] = {}
    connections: dict[str, int] = {}
    create_client = botocore.session.Session.create_client
    connect = urllib3.connection.HTTPConnection.connect

    def counted_create_client(self, service_name, *args, **kwargs):  # type: ignore[no-untyped-def]
        clients[service_name] = clients.get(service_name, 0) + 1
        return create_client(self, service_name, *args, **kwargs)

    def counted_connect(self):  # type: ignore[no-untyped-def]
        key = f"{self.host}:{self.port}"
        connections[key] = connections.get(key, 0) + 1
        return connect(self)

    botocore.session.Session.create_client = counted_create_client  # type: ignore[method-assign]
    urllib3.connection.HTTPConnection.connect = counted_connect  # type: ignore[method-assign]
    return clients, connections


class Phases:
    """What the first invocation spends before and after its first request (bench/first.py).

    Times are ms from the invocation's start. `first_sent_ms`: when the first bytes of the first
    request to each service left (botocore's service name, or `steppay` for the StepPay
    endpoint), so the time before the first StepPay/DynamoDB/SQS request is the invocation's
    set-up: settings, the secret (an SSM call, itself listed), clients, the first connection.
    """

    def __init__(self, steppay_port: int | None) -> None:
        self.steppay_port = steppay_port
        self.recording = False
        self.t0 = 0.0
        self.service: str | None = None
        self.calls: list[tuple[str, float, float]] = []  # (what, start ms, duration ms)
        self.first_sent_ms: dict[str, float] = {}
        self.clients_ms = 0.0
        self.connect_ms = 0.0

    def now(self) -> float:
        return (time.perf_counter() - self.t0) * 1000

    def install(self) -> None:
        import http.client

        import botocore.client
        import botocore.session
        import urllib3.connection
        import urllib3.connectionpool

        phases = self
        make_api_call = botocore.client.BaseClient._make_api_call  # type: ignore[attr-defined]
        create_client = botocore.session.Session.create_client
        connect = urllib3.connection.HTTPConnection.connect
        urlopen = urllib3.connectionpool.HTTPConnectionPool.urlopen
        send = http.client.HTTPConnection.send

        def timed_api_call(self, operation_name, api_params):  # type: ignore[no-untyped-def]
            service = self.meta.service_model.service_name
            outer, phases.service = phases.service, service
            started = phases.now()
            try:
                return make_api_call(self, operation_name, api_params)
            finally:
                phases.service = outer
                if phases.recording:
                    phases.calls.append((f"{service}.{operation_name}", started, phases.now() - started))

        def timed_create_client(self, service_name, *args, **kwargs):  # type: ignore[no-untyped-def]
            started = phases.now()
            try:
                return create_client(self, service_name, *args, **kwargs)
            finally:
                if phases.recording:
                    phases.clients_ms += phases.now() - started
                    phases.calls.append((f"client {service_name}", started, phases.now() - started))

        def timed_connect(self):  # type: ignore[no-untyped-def]
            started = phases.now()
            try:
                return connect(self)
            finally:
                if phases.recording:
                    phases.connect_ms += phases.now() - started

        def timed_urlopen(self, method, url, *args, **kwargs):  # type: ignore[no-untyped-def]
            if phases.service is not None or self.port != phases.steppay_port:
                return urlopen(self, method, url, *args, **kwargs)
            phases.service = "steppay"
            started = phases.now()
            try:
                return urlopen(self, method, url, *args, **kwargs)
            finally:
                phases.service = None
                if phases.recording:
                    path = url.split("?", 1)[0]
                    phases.calls.append((f"steppay {method} {path}", started, phases.now() - started))

        def timed_send(self, data):  # type: ignore[no-untyped-def]
            if phases.recording and phases.service:
                phases.first_sent_ms.setdefault(phases.service, phases.now())
            return send(self, data)

        botocore.client.BaseClient._make_api_call = timed_api_call  # type: ignore[attr-defined]
        botocore.session.Session.create_client = timed_create_client  # type: ignore[method-assign]
        urllib3.connection.HTTPConnection.connect = timed_connect  # type: ignore[method-assign]
        urllib3.connectionpool.HTTPConnectionPool.urlopen = timed_urlopen  # type: ignore[method-assign]
        http.client.HTTPConnection.send = timed_send  # type: ignore[method-assign]

    def start(self) -> None:
        self.t0 = time.perf_counter()
        self.recording = True

    def stop(self) -> dict[str, object]:
        self.recording = False
        return {
            "calls": [[what, round(start, 2), round(took, 2)] for what, start, took in self.calls],
            "first_sent_ms": {k: round(v, 2) for k, v in self.first_sent_ms.items()},
            "clients_ms": round(self.clients_ms, 2),
            "connect_ms": round(self.connect_ms, 2),
        }


def main() -> None:
    spec = json.load(sys.stdin)
    sys.path[0:0] = spec["paths"]
    baseline = rss_mb()
    started = time.perf_counter()
    clients, connections = count_clients_and_connections() if spec.get("count_io") else ({}, {})
    phases = Phases(spec.get("steppay_port")) if spec.get("phases") else None
    if phases:
        phases.install()
    module = __import__(spec["module"])
    import_ms = (time.perf_counter() - started) * 1000
    after_import = rss_mb()
    durations: list[float] = []
    statuses: list[object] = []
    first_phases: dict[str, object] | None = None
    saved = os.dup(1)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)  # the handlers' logs and metrics
    try:
        for event in spec["events"]:
            context = Context(spec["function_name"], spec["memory"])
            if phases and not durations:
                phases.start()
            started = time.perf_counter()
            answer = module.lambda_handler(event, context)
            durations.append((time.perf_counter() - started) * 1000)
            if phases and first_phases is None:
                first_phases = phases.stop()
            statuses.append(answer.get("statusCode") if isinstance(answer, dict) else None)
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
    result: dict[str, object] = {
        "interpreter_mb": round(baseline, 1),
        "after_import_mb": round(after_import, 1),
        "peak_rss_mb": round(rss_mb(), 1),
        "import_ms": round(import_ms, 1),
        "first_invocation_ms": round(durations[0], 1) if durations else None,
        "warm_invocation_p50_ms": round(sorted(durations[1:])[len(durations[1:]) // 2], 1)
        if len(durations) > 1
        else None,
        "invocations": len(durations),
        "status_codes": statuses,
        "boto3_clients_created": clients,
        "new_connections": connections,
    }
    if first_phases is not None:
        result["first_invocation_phases"] = first_phases
    print("RESULT " + json.dumps(result))


if __name__ == "__main__":
    main()
