"""Small shared helpers: ports, waiting, log sinks and boto3 clients for local endpoints."""

from __future__ import annotations

import collections
import contextlib
import json
import logging
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import IO, Any

import boto3

from steppay_local import LOOPBACK

LOG = logging.getLogger("steppay_local")

DEFAULT_REGION = "ap-northeast-2"
DUMMY_CREDENTIALS = {"aws_access_key_id": "local", "aws_secret_access_key": "local"}

#: ``sink(source, line)``: ``source`` is a function's logical id or a component name.
LogSink = Callable[[str, str], None]


def free_port() -> int:
    """A TCP port on the loopback address that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


def port_in_use(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((LOOPBACK, port)) == 0


def ensure_port_free(port: int, what: str, env_var: str) -> None:
    if port and port_in_use(port):
        raise RuntimeError(
            f"{what}: port {LOOPBACK}:{port} is already in use (another local stack still running?). "
            f"Stop it, or choose another port with {env_var}."
        )


def wait_until(predicate: Callable[[], bool], timeout: float, interval: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)


def client(service: str, endpoint_url: str, region: str = DEFAULT_REGION, **config: Any) -> Any:
    """A boto3 client of ``service`` against a local endpoint, with dummy credentials."""
    from botocore.config import Config

    session = boto3.session.Session()
    return session.client(
        service,  # type: ignore[call-overload]
        endpoint_url=endpoint_url,
        region_name=region,
        config=Config(retries={"max_attempts": 2, "mode": "standard"}, **config),
        **DUMMY_CREDENTIALS,
    )


class LogCapture:
    """Thread-safe memory of every log line of a run, for tests (a ``LogSink``)."""

    def __init__(self, max_lines: int = 200_000) -> None:
        self._lines: collections.deque[tuple[str, str]] = collections.deque(maxlen=max_lines)
        self._cond = threading.Condition()

    def __call__(self, source: str, line: str) -> None:
        with self._cond:
            self._lines.append((source, line))
            self._cond.notify_all()

    def lines(self, source: str | None = None) -> list[str]:
        with self._cond:
            return [line for src, line in self._lines if source is None or src == source]

    def text(self, source: str | None = None) -> str:
        return "\n".join(self.lines(source))

    def records(self, source: str, message: str | None = None, start: int = 0) -> list[dict[str, Any]]:
        """The structured (JSON) log lines of ``source`` from line ``start`` on, optionally only those
        whose ``message`` is ``message``: what a function logged with Powertools' Logger."""
        found: list[dict[str, Any]] = []
        for line in self.lines(source)[start:]:
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if isinstance(record, dict) and (message is None or record.get("message") == message):
                found.append(record)
        return found

    def clear(self) -> None:
        with self._cond:
            self._lines.clear()

    def wait_for(self, needle: str, timeout: float = 10.0, source: str | None = None) -> bool:
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                if any(needle in line for src, line in self._lines if source is None or src == source):
                    return True
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._cond.wait(remaining)


class FileLogSink:
    """Appends ``[source] line`` to a file (a ``LogSink``)."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file: IO[str] = path.open("a", encoding="utf-8")
        self._lock = threading.Lock()

    def __call__(self, source: str, line: str) -> None:
        with self._lock:
            if not self._file.closed:
                self._file.write(f"[{source}] {line}\n")
                self._file.flush()

    def close(self) -> None:
        with self._lock:
            self._file.close()


class StreamLogSink:
    """Writes ``[source] line`` to a text stream such as ``sys.stdout`` (a ``LogSink``)."""

    def __init__(self, stream: IO[str]) -> None:
        self._stream = stream
        self._lock = threading.Lock()

    def __call__(self, source: str, line: str) -> None:
        with self._lock, contextlib.suppress(ValueError, OSError):
            self._stream.write(f"[{source}] {line}\n")
            self._stream.flush()


class MultiSink:
    """Fans one line out to several sinks (a ``LogSink``)."""

    def __init__(self, sinks: Iterable[LogSink]) -> None:
        self.sinks = list(sinks)

    def __call__(self, source: str, line: str) -> None:
        for sink in self.sinks:
            try:
                sink(source, line)
            except Exception:
                LOG.debug("log sink failed", exc_info=True)


def pump_lines(stream: IO[bytes], source: str, sink: LogSink) -> threading.Thread:
    """Forward every line of a child's byte stream to ``sink`` (from a daemon thread)."""

    def run() -> None:
        with contextlib.suppress(ValueError, OSError):
            for raw in iter(stream.readline, b""):
                sink(source, raw.decode("utf-8", errors="replace").rstrip("\r\n"))
        with contextlib.suppress(OSError):
            stream.close()

    thread = threading.Thread(target=run, name=f"log-{source}", daemon=True)
    thread.start()
    return thread


def terminate(process: subprocess.Popen[bytes] | None) -> None:
    """End a child server: close its stdin (it watches it), SIGTERM, then SIGKILL after 10 s."""
    if process is None:
        return
    with contextlib.suppress(OSError):
        if process.stdin is not None:
            process.stdin.close()
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
