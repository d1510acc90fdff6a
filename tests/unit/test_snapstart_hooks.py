"""SnapStart runtime hooks (steppay.snapstart), called the way the Lambda runtime calls them.

`snapshot_restore_py` (requirements-dev.txt; the Lambda Python runtime provides its own) keeps
what is registered in two lists of (function, args, kwargs); the runtime runs the before-snapshot
ones before it takes the snapshot and the after-restore ones in each restored copy. These tests
fetch the registered functions from those lists and call them. No network: the snapshot side runs
with sockets refused, and the secrets come from moto.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from aws_lambda_powertools.utilities.parameters import base as parameters_base
from moto import mock_aws

from steppay import client, intake, persistence, secrets, service, settings, snapstart

snapshot_restore_py = pytest.importorskip("snapshot_restore_py")

ROOT = Path(__file__).resolve().parents[2]
REGION = "ap-northeast-2"
TOKEN = "sk_test_SNAPSTART-TOKEN-1"
ROTATED = "sk_test_SNAPSTART-TOKEN-2"
TOKEN_PARAM = "/steppay/test/secret-token"

FACTORIES = (
    client.get_client,
    persistence._dynamodb_client,
    persistence.get_payment_store,
    intake._sqs_client,
    service.get_payment_flows,
)


def _forget_everything() -> None:
    for factory in FACTORIES:
        factory.cache_clear()
    settings.get_settings.cache_clear()
    secrets.clear_secret_caches()


@pytest.fixture(autouse=True)
def container(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A fresh container: its own hook registry, no cached clients, settings or secrets."""
    monkeypatch.setattr(snapshot_restore_py, "_before_snapshot_registry", [])
    monkeypatch.setattr(snapshot_restore_py, "_after_restore_registry", [])
    monkeypatch.setattr(snapstart, "_registered", False)
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("TABLE_NAME", "payments")
    monkeypatch.setenv("STEPPAY_SECRET_TOKEN", TOKEN)
    monkeypatch.delenv("STEPPAY_SECRET_TOKEN_PARAM", raising=False)
    for name in (
        "AWS_ENDPOINT_URL",
        "AWS_ENDPOINT_URL_SSM",
        "AWS_ENDPOINT_URL_DYNAMODB",
        "AWS_ENDPOINT_URL_SQS",
    ):
        monkeypatch.delenv(name, raising=False)
    _forget_everything()
    yield
    _forget_everything()


def _run(registry: list[tuple[Any, tuple[Any, ...], dict[str, Any]]]) -> None:
    for function, args, kwargs in registry:
        function(*args, **kwargs)


def restore() -> None:
    """What the runtime does in a copy resumed from the snapshot."""
    _run(snapshot_restore_py.get_after_restore())


def test_registration_puts_each_hook_in_its_list_once() -> None:
    assert snapstart.register_snapstart_hooks() is True
    assert snapstart.register_snapstart_hooks() is True  # a second call registers nothing more
    assert snapshot_restore_py.get_before_snapshot() == [(snapstart.before_snapshot, (), {})]
    assert snapshot_restore_py.get_after_restore() == [(snapstart.after_restore, (), {})]


def test_without_the_package_nothing_is_registered(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "snapshot_restore_py", None)  # import fails: not installed
    assert snapstart.register_snapstart_hooks() is False
    assert snapshot_restore_py.get_before_snapshot() == []


class _CloseSpy:
    def __init__(self, target: Any) -> None:
        self.calls = 0
        self._close = target.close

    def __call__(self) -> None:
        self.calls += 1
        self._close()


def test_after_restore_gives_the_copy_new_connections_pools_and_clients(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    snapstart.register_snapstart_hooks()
    old_client, old_flows = client.get_client(), service.get_payment_flows()
    old_session = old_client._session
    adapter = old_session.get_adapter("https://api.steppay.kr")
    adapter.poolmanager.connection_from_url("https://api.steppay.kr")  # a pool, as after a call
    assert len(adapter.poolmanager.pools) == 1
    old_dynamodb, old_sqs, old_store = (
        persistence._dynamodb_client(),
        intake._sqs_client(),
        persistence.get_payment_store(),
    )
    dynamodb_close, sqs_close = _CloseSpy(old_dynamodb), _CloseSpy(old_sqs)
    monkeypatch.setattr(old_dynamodb, "close", dynamodb_close)
    monkeypatch.setattr(old_sqs, "close", sqs_close)

    restore()

    assert len(adapter.poolmanager.pools) == 0, "the snapshot's StepPay connections were not closed"
    assert (dynamodb_close.calls, sqs_close.calls) == (1, 1)
    new_client = client.get_client()
    assert new_client is not old_client and new_client._session is not old_session
    assert persistence._dynamodb_client() is not old_dynamodb
    assert intake._sqs_client() is not old_sqs
    store = persistence.get_payment_store()
    assert store is not old_store and store._table._client is persistence._dynamodb_client()
    assert service.get_payment_flows() is not old_flows


def test_after_restore_forgets_cached_secrets_and_their_clients(monkeypatch: pytest.MonkeyPatch) -> None:
    snapstart.register_snapstart_hooks()
    monkeypatch.delenv("STEPPAY_SECRET_TOKEN")
    monkeypatch.setenv("STEPPAY_SECRET_TOKEN_PARAM", TOKEN_PARAM)
    with mock_aws():
        ssm = boto3.client("ssm", region_name=REGION)
        ssm.put_parameter(Name=TOKEN_PARAM, Value=TOKEN, Type="SecureString")
        assert secrets.get_secret_token().get_secret_value() == TOKEN
        ssm.put_parameter(Name=TOKEN_PARAM, Value=ROTATED, Type="SecureString", Overwrite=True)
        assert secrets.get_secret_token().get_secret_value() == TOKEN  # Powertools' cache answers
        (provider,) = secrets.live_providers()
        provider_close = _CloseSpy(provider.client)  # type: ignore[attr-defined]
        monkeypatch.setattr(provider.client, "close", provider_close)  # type: ignore[attr-defined]

        restore()

        assert provider_close.calls == 1, "the snapshot's SSM connections were not closed"
        assert secrets.live_providers() == []
        assert parameters_base.DEFAULT_PROVIDERS == {}  # type: ignore[attr-defined]
        assert secrets.get_secret_token().get_secret_value() == ROTATED  # read again, not from the snapshot


def test_after_restore_reseeds_random() -> None:
    snapstart.register_snapstart_hooks()
    snapshot_state = random.getstate()  # the state every copy of one snapshot starts from

    def a_copy(*, hooks: bool) -> list[float]:
        random.setstate(snapshot_state)
        if hooks:
            restore()
        return [random.random() for _ in range(8)]

    assert a_copy(hooks=False) == a_copy(hooks=False), "two copies without the hook draw the same numbers"
    assert a_copy(hooks=True) != a_copy(hooks=True)


def test_after_restore_before_anything_was_built_is_harmless() -> None:
    snapstart.register_snapstart_hooks()
    restore()  # nothing cached yet: nothing to close, nothing created
    assert all(factory.cache_info().currsize == 0 for factory in FACTORIES)


# -- before the snapshot, and the handlers: each in a fresh interpreter (models not built yet) ----

SNAPSHOT_SCRIPT = """
import json, socket, sys

def refuse(*args, **kwargs):
    raise OSError("no network before the snapshot")

socket.socket.connect = refuse
socket.create_connection = refuse

import snapshot_restore_py
import {function}

from steppay import snapstart
registered = [f for f, _, _ in snapshot_restore_py.get_before_snapshot()]
models = {models!r}

def model(path):
    module, name = path.rsplit(".", 1)
    return getattr(sys.modules[module], name)

deferred_before = sorted(m for m in models if not model(m).__pydantic_complete__)
for function, args, kwargs in reversed(snapshot_restore_py.get_before_snapshot()):  # the runtime's order
    function(*args, **kwargs)

def cached(module, name):
    mod = sys.modules.get(module)
    return getattr(mod, name).cache_info().currsize if mod else None

from aws_lambda_powertools.utilities.parameters import base
print(json.dumps({{
    "registered": [f"{{f.__module__}}.{{f.__name__}}" for f in registered],
    "deferred_before": deferred_before,
    "deferred_after": sorted(m for m in models if not model(m).__pydantic_complete__),
    "dynamodb_client": cached("steppay.persistence", "_dynamodb_client"),
    "sqs_client": cached("steppay.intake", "_sqs_client"),
    "steppay_client": cached("steppay.client", "get_client"),
    "settings": cached("steppay.settings", "get_settings"),
    "secret_providers": sorted(base.DEFAULT_PROVIDERS) + [
        type(p).__name__ for p in getattr(sys.modules.get("steppay.secrets"), "live_providers", list)()
    ],
}}))
"""

PATH_MODELS = {
    "checkouts": (
        "steppay.api_models.CheckoutRequest",
        "steppay.api_models.CheckoutResponse",
        "steppay.api_models.CheckoutView",
        "steppay.models.OrderDetail",
        "steppay.models.OrderCreateRequest",
        "steppay.persistence.PaymentRecord",
        "steppay.persistence.CheckoutRecord",
    ),
    "verify": (
        "steppay.api_models.VerifyRequest",
        "steppay.api_models.VerifyResponse",
        "steppay.models.OrderDetail",
        "steppay.persistence.PaymentRecord",
    ),
    "webhook_intake": ("steppay.intake.QueuedWebhook",),
}


def _interpreter(function: str, code: str, **variables: str) -> subprocess.CompletedProcess[str]:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("STEPPAY_", "AWS_ENDPOINT_URL"))},
        "PYTHONPATH": os.pathsep.join([str(ROOT / "layers" / "steppay"), str(ROOT / "functions" / function)]),
        "POWERTOOLS_TRACE_DISABLED": "true",
        "AWS_DEFAULT_REGION": REGION,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "TABLE_NAME": "payments",
        "WEBHOOK_QUEUE_URL": "https://sqs.ap-northeast-2.amazonaws.com/123456789012/webhooks",
        # Read from a store, as deployed: fetching it before the snapshot would need the network.
        "STEPPAY_SECRET_TOKEN_PARAM": "/steppay/test/secret-token",
        "STEPPAY_WEBHOOK_KEYS": "whk_test_key",
        **variables,
    }
    return subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120, check=False
    )


@pytest.mark.parametrize("function", sorted(PATH_MODELS))
def test_before_snapshot_builds_the_path_and_its_clients_without_network_or_secrets(function: str) -> None:
    result = _interpreter(function, SNAPSHOT_SCRIPT.format(function=function, models=PATH_MODELS[function]))
    assert result.returncode == 0, result.stderr[-3000:]
    seen = json.loads(result.stdout.strip().splitlines()[-1])
    assert seen["registered"] == ["steppay.snapstart.before_snapshot"], "the handler registers at import"
    assert seen["deferred_before"] == sorted(PATH_MODELS[function]), "the models were already built"
    assert seen["deferred_after"] == [], "before_snapshot left models to build on the first request"
    assert seen["settings"] == 1
    # The intake's only AWS service is the queue; the shopper's paths use the table alone.
    intake = function == "webhook_intake"
    assert (seen["dynamodb_client"], seen["sqs_client"]) == ((None, 1) if intake else (1, None))
    # No secret in the snapshot: the StepPay client (it reads the Secret-Token) is not built here.
    assert seen["steppay_client"] in (0, None) and seen["secret_providers"] == []
    assert "could not prebuild" not in result.stdout + result.stderr


@pytest.mark.parametrize("function", sorted(PATH_MODELS))
def test_a_handler_imports_without_the_package(function: str) -> None:
    code = (
        "import sys; sys.modules['snapshot_restore_py'] = None\n"
        f"import {function}\n"
        "from steppay import snapstart\n"
        "assert snapstart._registered is False and snapstart.register_snapstart_hooks() is False\n"
        "print('imported')\n"
    )
    result = _interpreter(function, code)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().splitlines()[-1] == "imported"
