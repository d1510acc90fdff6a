"""Lambda SnapStart runtime hooks for the shopper-facing functions (docs/SNAPSTART.md).

With SnapStart (template parameter `SnapStart=enabled`) Lambda runs a function's init once, when
a version is published, snapshots the memory and resumes every new execution environment from
that one snapshot. What init built is then shared by every restored copy, so:

* before the snapshot, build what the handler's path needs and every copy may share: the deferred
  pydantic models of the `steppay` modules the handler imported, the settings, and the boto3
  clients (creating one makes no network call; it loads botocore's service and endpoint data into
  the session's loader cache, which stays warm in the snapshot). No secret is fetched here.
* after a restore, drop what must not be shared: pooled HTTP connections (the StepPay
  `requests.Session`, the boto3 clients, and the Powertools Parameters providers' clients), the
  cached secrets (a snapshot can be restored days after it was taken: past any cache age), and
  the state of `random` (every copy would otherwise draw the same numbers). What is dropped is
  rebuilt on first use by the same `functools.cache` functions as on any cold start. `uuid4`,
  `secrets` and `os.urandom` read the kernel's entropy and need nothing.

The hooks are registered through `snapshot_restore_py`, which the Lambda Python runtime provides
(it is not shipped in the layer). Where it is absent (tests, local runs) registration is skipped
and the functions import as they always did. Registered without SnapStart, the hooks never run.
Each hook only touches the modules the handler already imported: it imports nothing new.
"""

from __future__ import annotations

import contextlib
import importlib
import inspect
import random
import sys
from collections.abc import Callable
from types import ModuleType
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger

if TYPE_CHECKING:
    from pydantic import BaseModel

logger = Logger(child=True)

HOOKS_MODULE = "snapshot_restore_py"

# Per-container clients, `functools.cache`d: (module, function). Each is closed (its connection
# pool) and forgotten after a restore; the boto3 ones are also created before the snapshot.
CLIENT_CACHES: tuple[tuple[str, str], ...] = (
    ("steppay.client", "get_client"),  # the StepPay requests.Session (needs the Secret-Token)
    ("steppay.persistence", "_dynamodb_client"),
    ("steppay.intake", "_sqs_client"),
    ("steppay.events", "_events_client"),
)
# Caches that only hold the clients above: forgotten after a restore so they take the new ones.
HOLDER_CACHES: tuple[tuple[str, str], ...] = (
    ("steppay.persistence", "get_payment_store"),
    ("steppay.service", "get_payment_flows"),
    ("steppay.events", "get_event_publisher"),
)
# Created before the snapshot: no network call, no secret.
PREWARMED_CLIENTS: tuple[tuple[str, str], ...] = (
    ("steppay.persistence", "_dynamodb_client"),
    ("steppay.intake", "_sqs_client"),
)

_registered = False


def register_snapstart_hooks() -> bool:
    """Register the two hooks once; False where `snapshot_restore_py` cannot be imported."""
    global _registered
    if _registered:
        return True
    try:
        hooks = importlib.import_module(HOOKS_MODULE)
    except ImportError:
        return False
    hooks.register_before_snapshot(before_snapshot)
    hooks.register_after_restore(after_restore)
    _registered = True
    return True


def _loaded(name: str) -> ModuleType | None:
    return sys.modules.get(name)


def _cached(module: str, name: str) -> Any:
    loaded = _loaded(module)
    return getattr(loaded, name, None) if loaded is not None else None


def _steppay_modules() -> list[ModuleType]:
    return [m for n, m in list(sys.modules.items()) if n.startswith("steppay.") and m is not None]


def build_deferred_models() -> int:
    """Build every `defer_build` pydantic model of the loaded steppay modules; how many were built."""
    pydantic = _loaded("pydantic")
    if pydantic is None:
        return 0
    base: type[BaseModel] = pydantic.BaseModel
    built = 0
    for module in _steppay_modules():
        for value in list(vars(module).values()):
            if (
                not (inspect.isclass(value) and issubclass(value, base))
                or value.__module__ != module.__name__
            ):
                continue
            if getattr(value, "__pydantic_complete__", True):
                continue
            try:
                value.model_rebuild(raise_errors=False)
            except Exception:  # noqa: BLE001 - warming is best effort: the model builds on first use
                logger.debug("SnapStart: model not prebuilt", extra={"model": value.__qualname__})
                continue
            if getattr(value, "__pydantic_complete__", False):
                built += 1
    return built


def before_snapshot() -> None:
    """Build what the snapshot may hold for every copy (best effort: never fails the snapshot)."""
    built = build_deferred_models()
    warmed: list[str] = []
    for module, name in (("steppay.settings", "get_settings"), *PREWARMED_CLIENTS):
        factory = _cached(module, name)
        if factory is None:
            continue
        try:
            factory()
        except Exception:  # noqa: BLE001 - the first request builds it (and reports what is wrong)
            logger.warning("SnapStart: could not prebuild before the snapshot", extra={"what": name})
            continue
        warmed.append(name)
    logger.debug("SnapStart: before snapshot", extra={"models_built": built, "prebuilt": warmed})


def _close(client: Any) -> None:
    close: Callable[[], object] | None = getattr(client, "close", None)
    if close is not None:
        with contextlib.suppress(Exception):
            close()


def drop_clients() -> list[str]:
    """Close and forget the per-container clients (their pooled connections); what was dropped."""
    dropped: list[str] = []
    for module, name in CLIENT_CACHES:
        factory = _cached(module, name)
        if factory is None or not hasattr(factory, "cache_clear"):
            continue
        if factory.cache_info().currsize:
            _close(factory())  # the cached object: nothing is built here
            dropped.append(name)
        factory.cache_clear()
    for module, name in HOLDER_CACHES:
        factory = _cached(module, name)
        if factory is not None and hasattr(factory, "cache_clear"):
            factory.cache_clear()
    return dropped


def drop_secrets() -> None:
    """Forget cached secrets and the Parameters providers (with their boto3 clients' pools)."""
    constants = _loaded("aws_lambda_powertools.utilities.parameters.constants")
    providers: list[Any] = list((getattr(constants, "DEFAULT_PROVIDERS", None) or {}).values())
    secrets = _loaded("steppay.secrets")
    if secrets is not None:
        providers += secrets.live_providers()
    for provider in providers:
        _close(getattr(provider, "client", None))
    if secrets is not None:
        secrets.clear_secret_caches()  # Powertools forgets its providers: new ones, new clients


def after_restore() -> None:
    """Make this restored copy its own: new connections, fresh secrets, its own random state."""
    random.seed()  # from os.urandom: two copies of one snapshot no longer draw the same numbers
    dropped = drop_clients()
    drop_secrets()
    logger.debug("SnapStart: after restore", extra={"dropped": dropped})


__all__ = [
    "after_restore",
    "before_snapshot",
    "build_deferred_models",
    "drop_clients",
    "drop_secrets",
    "register_snapstart_hooks",
]
