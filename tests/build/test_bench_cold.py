"""The cold-start benchmark's pure parts (bench/coldstart.py, bench/first.py, bench/bare_floor.py).

No timed assertion: the figures come from fake samples; the one subprocess checks what the bare
floor imports, not how fast.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench import coldstart, first  # noqa: E402
from bench.lambda_env import FUNCTIONS  # noqa: E402


def fake(function: str, handler: list[float], bare: list[float]) -> coldstart.ColdStart:
    result = coldstart.ColdStart(function)
    for wall_h, wall_b in zip(handler, bare, strict=True):
        result.add(coldstart.HANDLER, wall_h, wall_h * 0.9)
        result.add(coldstart.BARE, wall_b, wall_b * 0.9)
    return result


def test_goals_are_the_issue_s() -> None:
    assert coldstart.goal("checkouts") == coldstart.goal("verify") == 1.35
    assert coldstart.goal("webhook_intake") == 1.2
    for other in ("webhook_processor", "publisher", "reconciliation", "entitlements"):
        assert coldstart.goal(other) == 1.5
    assert set(coldstart.GOALS) <= set(FUNCTIONS)


def test_ratio_is_of_the_medians_and_met_against_the_goal() -> None:
    # Medians 400 (one outlier of 2000 ignored) and 300: 1.33x, within verify's 1.35x.
    verify = fake("verify", [390, 400, 2000, 410, 380], [300, 290, 310, 305, 295]).summary()
    assert verify["handler_wall_ms"] == 400
    assert verify["bare_wall_ms"] == 300
    assert verify["ratio_wall"] == pytest.approx(1.333, abs=0.001)
    assert verify["goal"] == 1.35 and verify["met"] is True
    assert verify["samples"] == 5
    # The same figures miss the webhook intake's 1.2x.
    intake = fake("webhook_intake", [390, 400, 2000, 410, 380], [300, 290, 310, 305, 295]).summary()
    assert intake["met"] is False
    assert "packages_wall_ms" not in intake


def test_the_table_shows_each_function_against_the_bare_floor() -> None:
    data = {
        "checkouts": fake("checkouts", [500, 520, 510], [300, 300, 300]).summary(),
        "publisher": fake("publisher", [330, 320, 310], [300, 300, 300]).summary(),
    }
    data["checkouts"]["importtime"] = {"defer_next_ms": {"pydantic <- steppay.api_models": 40.0}}
    table = coldstart.render(data)
    lines = table.splitlines()
    assert lines[0].startswith("| function | cold ms | bare floor ms | ratio | goal | met? |")
    checkouts = next(line for line in lines if line.startswith("| checkouts "))
    assert "| 510.0 | 300.0 | 1.70x | 1.35x | no |" in checkouts
    assert "pydantic <- steppay.api_models 40.0" in checkouts
    publisher = next(line for line in lines if line.startswith("| publisher "))
    assert "| 1.07x | 1.50x | yes |" in publisher
    assert "goals met: 1 of 2" in table


def test_samples_alternate_function_and_floor() -> None:
    rounds = list(coldstart.rounds(["a", "b"], 4, (coldstart.HANDLER, coldstart.BARE)))
    assert rounds[0] == [("a", "handler"), ("a", "bare"), ("b", "handler"), ("b", "bare")]
    assert rounds[1] == [("a", "bare"), ("a", "handler"), ("b", "bare"), ("b", "handler")]
    assert rounds[2][0][0] == "b"  # the functions' order turns too
    for this_round in rounds:  # every round has each function once next to its floor
        assert sorted(this_round) == sorted(rounds[0])


IMPORTTIME = """\
import time: self [us] | cumulative | imported package
import time:       100 |        100 | _io
import time:       300 |        300 |       boto3.compat
import time:       700 |       1000 |     boto3
import time:      2000 |       2000 |       pydantic_core
import time:      1000 |       3000 |     pydantic
import time:       400 |        400 |     steppay.models
import time:       500 |       4900 |   steppay
import time:        50 |       4950 | handler_x
"""


def test_importtime_tree_and_what_to_defer_next() -> None:
    roots = coldstart.parse_importtime(IMPORTTIME)
    assert [r.name for r in roots] == ["_io", "handler_x"]
    steppay = roots[1].children[0]
    assert steppay.name == "steppay"
    assert [c.name for c in steppay.children] == ["boto3", "pydantic", "steppay.models"]
    bare = frozenset({"boto3", "boto3.compat", "_io"})
    found = coldstart.offenders(roots, "handler_x", bare)
    # boto3 is in the bare floor: not above it. pydantic with what it imports: 3 ms.
    assert found == {
        "handler_x": 50,
        "steppay": 500,
        "pydantic <- steppay": 3000,
        "steppay.models": 400,
    }
    summary = coldstart.summarize_importtime([roots, roots], "handler_x", bare)
    assert next(iter(summary["defer_next_ms"])) == "pydantic <- steppay"
    assert summary["groups_ms"]["pydantic"] == 3.0


def test_the_bare_floor_imports_no_powertools_nor_pydantic() -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "bare_floor.py")],
        env={"PATH": "/usr/bin:/bin", "AWS_REGION": "ap-northeast-2", "AWS_EC2_METADATA_DISABLED": "true"},
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    modules = set(json.loads(result.stdout.splitlines()[-1]))
    tops = {name.split(".", 1)[0] for name in modules}
    assert {"boto3", "botocore", "requests"} <= tops
    for heavy in ("aws_lambda_powertools", "pydantic", "pydantic_core", "pydantic_settings", "steppay"):
        assert heavy not in tops, heavy
    # Beyond the standard library, only boto3, requests and what they bring.
    allowed = {
        "boto3", "botocore", "s3transfer", "jmespath", "dateutil", "six", "urllib3",
        "requests", "idna", "charset_normalizer", "certifi", "bench", "__main__",
        "awscrt", "OpenSSL", "cryptography", "cython_runtime",  # botocore's optional extras
    }  # fmt: skip
    foreign = {t for t in tops - set(sys.stdlib_module_names) - allowed if not t.startswith("_")}
    assert not foreign, sorted(foreign)


def test_the_cold_environment_has_every_template_variable() -> None:
    class Loader(yaml.SafeLoader):
        pass

    Loader.add_multi_constructor("!", lambda loader, suffix, node: None)
    template = yaml.load((ROOT / "template.yaml").read_text(encoding="utf-8"), Loader=Loader)
    variables = template["Globals"]["Function"]["Environment"]["Variables"]
    assert set(variables) <= set(coldstart.BASE_ENV), sorted(set(variables) - set(coldstart.BASE_ENV))
    assert coldstart.BASE_ENV["STEPPAY_POWERTOOLS_TRACER"] == "disabled"


def test_first_invocation_split_at_the_first_request() -> None:
    child: dict[str, Any] = {
        "import_ms": 400.0,
        "first_invocation_ms": 230.0,
        "warm_invocation_p50_ms": 40.0,
        "first_invocation_phases": {
            "calls": [
                ["client ssm", 15.0, 58.0],
                ["ssm.GetParameter", 74.0, 8.0],
                ["client dynamodb", 88.0, 74.0],
                ["dynamodb.PutItem", 165.0, 12.0],
            ],
            "first_sent_ms": {"ssm": 75.0, "dynamodb": 166.0, "steppay": 182.0},
            "clients_ms": 132.0,
            "connect_ms": 0.6,
        },
    }
    found = first.split(child)
    assert found["setup_ms"] == 166.0  # the SSM request is set-up; DynamoDB's is the first
    assert found["rest_ms"] == 64.0
    assert found["ssm_ms"] == 8.0
    assert found["first_request"] == "dynamodb"
    med = first.medians([found, {**found, "setup_ms": 170.0}, {**found, "setup_ms": 100.0}])
    assert med["setup_ms"] == 166.0 and med["processes"] == 3 and med["first_request"] == "dynamodb"
    calls = child["first_invocation_phases"]["calls"]
    table = first.render({"CheckoutFunction": {**med, "first_invocation_calls": calls}})
    assert "| checkouts | 400.0 | 166.0 | 64.0 | 230.0 | 630.0 |" in table
