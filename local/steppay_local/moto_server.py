"""moto in server mode (EventBridge, SQS, SSM, Secrets Manager, ...) as a child process on 127.0.0.1."""

from __future__ import annotations

import subprocess
import sys
import threading
import time

import requests

from steppay_local import LOOPBACK
from steppay_local._util import LOG, LogSink, ensure_port_free, free_port, pump_lines, terminate

# The child runs moto's own server entry point, and exits as soon as its stdin closes (the local stack
# that started it is gone, even if it was killed without a chance to clean up).
_RUNNER = """
import os, sys, threading
def _watch():
    try:
        while sys.stdin.buffer.read(1):
            pass
    finally:
        os._exit(0)
threading.Thread(target=_watch, daemon=True).start()
from moto.server import main
main(sys.argv[1:])
"""


class MotoServerError(RuntimeError):
    pass


class MotoServer:
    """``python -m moto.server -H 127.0.0.1 -p <port>`` in a subprocess (so it can be killed/restarted).

    ``port=0`` picks a free port. All state is in memory: ``restart()`` starts empty.
    """

    def __init__(
        self, port: int = 5010, *, log_sink: LogSink | None = None, startup_timeout: float = 30.0
    ) -> None:
        self.port = port
        self.log_sink = log_sink
        self.startup_timeout = startup_timeout
        self._process: subprocess.Popen[bytes] | None = None
        self._lock = threading.Lock()
        self._output: list[str] = []

    @property
    def endpoint_url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self) -> MotoServer:
        with self._lock:
            if self.running:
                return self
            if self.port == 0:
                self.port = free_port()
            ensure_port_free(self.port, "moto server", "MOTO_PORT")
            LOG.info("starting moto server on %s", self.endpoint_url)
            self._output = []
            self._process = subprocess.Popen(  # noqa: S603 - our own command line
                [sys.executable, "-c", _RUNNER, "-H", LOOPBACK, "-p", str(self.port)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            assert self._process.stdout is not None
            pump_lines(self._process.stdout, "moto", self._remember)
            self._wait_ready()
            return self

    def _remember(self, source: str, line: str) -> None:
        self._output.append(line)
        del self._output[:-200]
        # moto logs one line per request: only pass on what is not request noise.
        if self.log_sink is not None and '" 200 -' not in line:
            self.log_sink(source, line)

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.startup_timeout
        while True:
            assert self._process is not None
            if self._process.poll() is not None:
                output = "\n".join(self._output[-30:])
                self._process = None
                raise MotoServerError(f"moto server exited while starting:\n{output}")
            try:
                requests.get(f"{self.endpoint_url}/moto-api/", timeout=1)
                return
            except requests.RequestException:
                if time.monotonic() > deadline:
                    self._terminate()
                    raise MotoServerError(
                        f"moto server did not answer on {self.endpoint_url}:\n"
                        + "\n".join(self._output[-30:])
                    ) from None
                time.sleep(0.1)

    def reset(self) -> None:
        """Forget every resource (moto's reset API)."""
        requests.post(f"{self.endpoint_url}/moto-api/reset", timeout=10).raise_for_status()

    def _terminate(self) -> None:
        process, self._process = self._process, None
        terminate(process)

    def stop(self) -> None:
        with self._lock:
            if self._process is not None:
                LOG.info("stopping moto server on %s", self.endpoint_url)
            self._terminate()

    def restart(self) -> MotoServer:
        self.stop()
        return self.start()

    def __enter__(self) -> MotoServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
