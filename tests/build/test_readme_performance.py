"""README's performance figures are one `make bench` run's, with its date and machine.

`python -m bench.readme` keeps the run's extract in docs/benchmarks/readme-run.json and writes the
table into README.md; here the table is rendered again from that extract and must be in README.md
as it is, so no figure can be edited by hand or come from another run.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench import readme  # noqa: E402


def test_the_readme_table_is_rendered_from_one_runs_extract() -> None:
    data = json.loads(readme.EXTRACT.read_text(encoding="utf-8"))
    table = readme.render(data)
    for path in readme.READMES:
        page = path.read_text(encoding="utf-8")
        assert f"{readme.START}\n{table}\n{readme.END}" in page, path.name
    assert data["started"] in table and data["machine"]["platform"] in table


def test_the_extract_covers_the_functions_someone_waits_on() -> None:
    data = json.loads(readme.EXTRACT.read_text(encoding="utf-8"))
    assert {"checkouts", "verify", "webhook_intake"} <= set(data["cold"])
    for figures in data["cold"].values():
        assert figures["bare_wall_ms"] > 0 and figures["ratio_wall"] > 0
