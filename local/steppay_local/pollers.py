"""A background polling loop with "has it gone quiet since t?" bookkeeping, shared by event sources."""

from __future__ import annotations

import threading
import time
from enum import Enum

from steppay_local._util import LOG, LogSink


class Outcome(Enum):
    WORKED = "worked"  # delivered something: poll again at once
    PENDING = "pending"  # holds records back (batching window): poll again soon
    IDLE = "idle"  # nothing to do


class Poller:
    """Runs ``poll_once`` in a daemon thread until stopped.

    ``wait_quiet(since)`` returns once a whole cycle that started at or after ``since`` found nothing
    to do, so "everything written before ``since`` has been delivered" can be waited for.
    """

    def __init__(
        self,
        name: str,
        *,
        log_sink: LogSink | None = None,
        interval: float = 0.05,
        idle_interval: float = 0.25,
        error_backoff: tuple[float, float] = (0.25, 5.0),
    ) -> None:
        self.name = name
        self.log_sink = log_sink
        self.interval = interval
        self.idle_interval = idle_interval
        self.error_backoff = error_backoff
        self.activity = 0
        self._stop = threading.Event()
        self._kick = threading.Event()
        self._cond = threading.Condition()
        self._last_quiet_start = float("-inf")
        self._thread: threading.Thread | None = None
        self._failures = 0
        self._last_error = ""

    # -- to implement --

    def poll_once(self) -> Outcome:
        raise NotImplementedError

    # -- lifecycle --

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def start(self) -> Poller:
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name=f"poller-{self.name}", daemon=True)
            self._thread.start()
        return self

    def signal_stop(self) -> None:
        self._stop.set()
        self._kick.set()

    def stop(self, timeout: float = 15.0) -> None:
        self.signal_stop()
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                LOG.warning("%s did not stop within %.0fs", self.name, timeout)
            self._thread = None

    def kick(self) -> None:
        self._kick.set()

    def sleep(self, seconds: float) -> bool:
        """Sleep unless stopped; False when stopping."""
        return not self._stop.wait(seconds)

    def log(self, line: str) -> None:
        if self.log_sink is not None:
            self.log_sink(self.name, line)

    def _run(self) -> None:
        while not self._stop.is_set():
            started = time.monotonic()
            self._kick.clear()
            try:
                outcome = self.poll_once()
                if self._failures:
                    self.log(f"recovered after {self._failures} failed polls")
                self._failures = 0
                self._last_error = ""
            except Exception as exc:  # noqa: BLE001 - keep polling: the service may come back
                if self._stop.is_set():
                    break  # the stack is shutting down under our feet
                outcome = Outcome.PENDING
                self._failures += 1
                message = f"{type(exc).__name__}: {exc}"
                if message != self._last_error:
                    self.log(f"poll failed (will retry with backoff): {message}")
                    LOG.debug("%s poll failed", self.name, exc_info=True)
                    self._last_error = message
                base, cap = self.error_backoff
                self._stop.wait(min(cap, base * 2 ** min(self._failures - 1, 10)))
            with self._cond:
                if outcome is Outcome.IDLE:
                    self._last_quiet_start = started
                else:
                    self.activity += 1
                self._cond.notify_all()
            if outcome is Outcome.PENDING:
                self._stop.wait(self.interval)
            elif outcome is Outcome.IDLE:
                self._kick.wait(self.idle_interval)

    def wait_quiet(self, since: float, timeout: float) -> bool:
        """True once a cycle that started at or after ``since`` (monotonic clock) found nothing to do."""
        self.kick()
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._last_quiet_start < since:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self._thread is None:
                    return False
                self._cond.wait(min(remaining, 0.5))
                self.kick()
        return True
