"""Validating sandbox answers against StepPay's OpenAPI spec (``steppay-v1.openapi.json``).

The spec lives outside the repository: ``../shared/steppay/steppay-v1.openapi.json`` from the
repository root, or wherever ``STEPPAY_OPENAPI_SPEC`` points. Without it every contract test is
skipped with a reason saying so (never silently passed).

OpenAPI 3.0 schemas are not quite JSON Schema; the quirks are handled like this:

* ``nullable``: StepPay's spec (springdoc-generated) never says ``nullable``, yet its Jackson
  serialiser writes ``null`` for absent optional fields. So a property *not* listed in its
  object's ``required`` may be ``null``; a required one must be present and non-null.
  (An explicit ``nullable: true`` is honoured too.)
* ``minLength`` on an array (the spec uses it on ``OrderCreateV1DTO.items``) means ``minItems``.
* ``$ref`` siblings are ignored (OpenAPI 3.0 semantics; Draft 7 validation does the same).
* formats are checked: ``int32``/``int64`` ranges, ``uuid``, and ``date-time`` as StepPay really
  writes it in responses: a zone-less local date-time (``2023-06-19T06:19:55.403711``). For
  request bodies a date-time may also carry an offset.
"""

from __future__ import annotations

import copy
import json
import os
import re
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jsonschema
import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_SPEC = REPO_ROOT.parent / "shared" / "steppay" / "steppay-v1.openapi.json"

_LOCAL_DT = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?", re.ASCII)
_REQUEST_DT = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?(Z|[+-]\d{2}:\d{2})?", re.ASCII)


def spec_path() -> Path:
    return Path(os.environ.get("STEPPAY_OPENAPI_SPEC") or DEFAULT_SPEC)


def load_spec(path: Path | None = None) -> dict[str, Any] | None:
    source = path or spec_path()
    if not source.is_file():
        return None
    return dict(json.loads(source.read_text(encoding="utf-8")))


def _nullable(schema: Any) -> Any:
    return {"anyOf": [schema, {"type": "null"}]}


def to_json_schema(node: Any) -> Any:
    """OpenAPI 3.0 schema → JSON Schema (Draft 7), applying the quirks described above."""
    if isinstance(node, list):
        return [to_json_schema(v) for v in node]
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in ("example", "examples", "nullable"):
            continue
        if key == "properties" and isinstance(value, dict):  # a map of names, not a schema
            required = set(node.get("required", []))
            out[key] = {
                name: (
                    to_json_schema(prop)
                    if name in required and not (isinstance(prop, dict) and prop.get("nullable"))
                    else _nullable(to_json_schema(prop))
                )
                for name, prop in value.items()
            }
        else:
            out[key] = to_json_schema(value)
    if out.get("type") == "array" and "minLength" in out:
        out["minItems"] = out.pop("minLength")
    if node.get("nullable"):
        return _nullable(out)
    return out


def _in_range(low: int, high: int) -> Callable[[object], bool]:
    def check(value: object) -> bool:
        if not isinstance(value, int) or isinstance(value, bool):
            return True  # not an integer: the "type" keyword judges it
        return low <= value <= high

    return check


def _uuid(value: object) -> bool:
    if not isinstance(value, str):
        return True
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return len(value) == 36


def format_checker(*, request: bool = False) -> jsonschema.FormatChecker:
    checker = jsonschema.FormatChecker(formats=())
    pattern = _REQUEST_DT if request else _LOCAL_DT

    def date_time(value: object) -> bool:
        return not isinstance(value, str) or bool(pattern.fullmatch(value))

    checker.checks("date-time")(date_time)
    checker.checks("int32")(_in_range(-(2**31), 2**31 - 1))
    checker.checks("int64")(_in_range(-(2**63), 2**63 - 1))
    checker.checks("uuid")(_uuid)
    return checker


def _real_error(error: jsonschema.ValidationError) -> jsonschema.ValidationError:
    """Descend through our nullable ``anyOf`` wrappers to the error in the real schema."""
    while error.validator == "anyOf" and error.context:
        real = [e for e in error.context if e.relative_schema_path and e.relative_schema_path[0] == 0]
        if not real:
            break
        error = max(real, key=lambda e: len(e.absolute_path))
    return error


class Contract:
    """Validators for the spec's component schemas."""

    def __init__(self, spec: dict[str, Any]) -> None:
        self.spec = spec
        schemas = copy.deepcopy(spec["components"]["schemas"])
        self.components = {"schemas": {name: to_json_schema(schema) for name, schema in schemas.items()}}

    def schema_names(self) -> set[str]:
        return set(self.spec["components"]["schemas"])

    def validator(self, name: str, *, request: bool = False) -> jsonschema.Draft7Validator:
        if name not in self.spec["components"]["schemas"]:
            raise KeyError(f"{name} is not a schema of StepPay's spec")
        schema = {"$ref": f"#/components/schemas/{name}", "components": self.components}
        return jsonschema.Draft7Validator(schema, format_checker=format_checker(request=request))

    def errors(self, name: str, instance: Any, *, request: bool = False) -> list[str]:
        problems = []
        for error in self.validator(name, request=request).iter_errors(instance):
            best = _real_error(error)
            where = "/".join(str(p) for p in best.absolute_path) or "<root>"
            problems.append(f"{where}: {best.message[:200]}")
        return problems

    def check(self, name: str, instance: Any, *, request: bool = False) -> None:
        problems = self.errors(name, instance, request=request)
        assert not problems, f"{name}: " + "; ".join(problems[:20])

    def response_schema(self, path: str, method: str, status: str) -> str:
        """The component schema name the spec gives for an operation's answer."""
        content = self.spec["paths"][path][method]["responses"][status]["content"]
        ref = next(iter(content.values()))["schema"]["$ref"]
        return str(ref.rsplit("/", 1)[1])


@pytest.fixture(scope="session")
def contract() -> Contract:
    spec = load_spec()
    if spec is None:
        pytest.skip(
            f"StepPay's OpenAPI spec not found at {spec_path()} "
            "(set STEPPAY_OPENAPI_SPEC to its path to run the contract tests)"
        )
    return Contract(spec)
