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


def main() -> None:
    spec = json.load(sys.stdin)
    sys.path[0:0] = spec["paths"]
    baseline = rss_mb()
    started = time.perf_counter()
    clients, connections = count_clients_and_connections() if spec.get("count_io") else ({}, {})
    module = __import__(spec["module"])
    import_ms = (time.perf_counter() - started) * 1000
    after_import = rss_mb()
    durations = []
    saved = os.dup(1)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)  # the handlers' logs and metrics
    try:
        for event in spec["events"]:
            context = Context(spec["function_name"], spec["memory"])
            started = time.perf_counter()
            module.lambda_handler(event, context)
            durations.append((time.perf_counter() - started) * 1000)
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
    result = {
        "interpreter_mb": round(baseline, 1),
        "after_import_mb": round(after_import, 1),
        "peak_rss_mb": round(rss_mb(), 1),
        "import_ms": round(import_ms, 1),
        "first_invocation_ms": round(durations[0], 1) if durations else None,
        "warm_invocation_p50_ms": round(sorted(durations[1:])[len(durations[1:]) // 2], 1)
        if len(durations) > 1
        else None,
        "invocations": len(durations),
        "boto3_clients_created": clients,
        "new_connections": connections,
    }
    print("RESULT " + json.dumps(result))


if __name__ == "__main__":
    main()
