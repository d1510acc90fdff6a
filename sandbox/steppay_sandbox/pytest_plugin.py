"""The pytest plugin of the ``steppay-sandbox`` wheel (entry point ``pytest11``), loaded by pytest
wherever the wheel is installed. The only module of the package that imports pytest.

Fixtures:

* ``steppay_sandbox_server`` (session): one ``SandboxServer`` for the whole run, on 127.0.0.1 and
  a free port (``--steppay-sandbox-port`` / ini ``steppay_sandbox_port`` to pin one), fast
  webhook retries (0.05 s, 0.1 s).
* ``steppay_sandbox`` (function): that server, reset before the test: no orders, subscriptions,
  faults or delivery log, webhook settings back to the session's (ids keep increasing). Has
  ``.url``, ``.secret_token``, ``.webhook_key``, ``.configure_webhooks()``, ``.webhook_log()``...
* ``steppay_control`` (function): a ``SandboxControl`` for it (``complete``, ``refund``, ``renew``,
  ``set_subscription_status``, ``add_fault``, ``webhooks``, ``reset``, ... and ``api()``).
* ``steppay_webhook_receiver`` (function): a ``WebhookReceiver`` the sandbox's webhooks are sent to
  for the test, checking each ``Steppay-Signature`` with the sandbox's key: ``.received``
  (verified), ``.rejected``, ``.unsigned`` (v1), ``.wait_for(count, timeout, event=...)``.
* ``steppay_sandbox_config`` (session): keyword arguments for ``SandboxServer``; override it in a
  ``conftest.py`` to change the token, key, catalogue, webhook versions, ...
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from steppay_sandbox import __version__
from steppay_sandbox.server import DEFAULT_SECRET_TOKEN, DEFAULT_WEBHOOK_KEY, SandboxServer
from steppay_sandbox.testing import SandboxControl, WebhookReceiver
from steppay_sandbox.webhooks import WebhookSettings

FAST_RETRY_DELAYS = (0.05, 0.1)  # three attempts, quickly
SETTLE_SECONDS = 5.0  # how long a test's last webhooks may take before the next test starts


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("steppay-sandbox", "the StepPay sandbox (steppay-sandbox)")
    group.addoption(
        "--steppay-sandbox-port",
        type=int,
        default=None,
        help="port of the sandbox the fixtures start (default: any free port)",
    )
    group.addoption(
        "--steppay-sandbox-catalogue",
        default=None,
        help="catalogue JSON (customers, products, prices) instead of the packaged seed catalogue",
    )
    parser.addini("steppay_sandbox_port", "port of the sandbox the fixtures start (0: any free port)")
    parser.addini(
        "steppay_sandbox_catalogue", "catalogue JSON for the sandbox (relative to the ini file)", type="paths"
    )


def pytest_report_header(config: pytest.Config) -> str:
    return f"steppay-sandbox: {__version__}"


def _option_port(config: pytest.Config) -> int:
    port = config.getoption("steppay_sandbox_port")
    if port is None:
        port = config.getini("steppay_sandbox_port") or 0
    return int(port)


def _option_catalogue(config: pytest.Config) -> Path | None:
    given = config.getoption("steppay_sandbox_catalogue")
    if given:
        return Path(given)
    paths = config.getini("steppay_sandbox_catalogue")
    return Path(paths[0]) if paths else None


@pytest.fixture(scope="session")
def steppay_sandbox_config(pytestconfig: pytest.Config) -> dict[str, Any]:
    """Keyword arguments for ``SandboxServer`` (override this fixture to change them)."""
    config: dict[str, Any] = {
        "host": "127.0.0.1",
        "port": _option_port(pytestconfig),
        "secret_token": DEFAULT_SECRET_TOKEN,
        "webhook_key": DEFAULT_WEBHOOK_KEY,
        "webhook_retry_delays": FAST_RETRY_DELAYS,
        "webhook_timeout": 2.0,
    }
    catalogue = _option_catalogue(pytestconfig)
    if catalogue is not None:
        config["catalogue"] = catalogue
    return config


@pytest.fixture(scope="session")
def steppay_sandbox_server(steppay_sandbox_config: dict[str, Any]) -> Iterator[SandboxServer]:
    """One running sandbox for the whole session (state is kept between tests)."""
    server = SandboxServer(**steppay_sandbox_config).start()
    try:
        yield server
    finally:
        server.stop()


def _settings(server: SandboxServer) -> WebhookSettings:
    return dataclasses.replace(server.dispatcher.settings)


def _restore(server: SandboxServer, settings: WebhookSettings) -> None:
    server.configure_webhooks(
        url=settings.url,
        key=settings.key,
        versions=list(settings.versions),
        retry_delays=list(settings.retry_delays),
        timeout=settings.timeout,
    )


@pytest.fixture(scope="session")
def _steppay_sandbox_defaults(steppay_sandbox_server: SandboxServer) -> WebhookSettings:
    return _settings(steppay_sandbox_server)


@pytest.fixture
def steppay_sandbox(
    steppay_sandbox_server: SandboxServer, _steppay_sandbox_defaults: WebhookSettings
) -> Iterator[SandboxServer]:
    """The session's sandbox, reset: no orders, subscriptions, faults or log; default settings."""
    server = steppay_sandbox_server
    server.wait_for_webhooks(SETTLE_SECONDS)
    server.reset()
    _restore(server, _steppay_sandbox_defaults)
    try:
        yield server
    finally:
        server.wait_for_webhooks(SETTLE_SECONDS)
        server.faults.clear()
        _restore(server, _steppay_sandbox_defaults)


@pytest.fixture
def steppay_control(steppay_sandbox: SandboxServer) -> SandboxControl:
    """A stdlib client for the sandbox's control API (and StepPay's API, with the token)."""
    return SandboxControl(steppay_sandbox.url, steppay_sandbox.secret_token)


@pytest.fixture
def steppay_webhook_receiver(steppay_sandbox: SandboxServer) -> Iterator[WebhookReceiver]:
    """A local webhook endpoint the sandbox delivers to during the test, checking signatures."""
    receiver = WebhookReceiver(key=steppay_sandbox.webhook_key).start()
    steppay_sandbox.configure_webhooks(url=receiver.url)
    try:
        yield receiver
    finally:
        steppay_sandbox.wait_for_webhooks(SETTLE_SECONDS)
        steppay_sandbox.configure_webhooks(url=None)
        receiver.stop()
