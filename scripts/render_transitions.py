"""Rewrite docs/ARCHITECTURE.md's order-state table from `steppay.transitions` (the one source).

    PYTHONPATH=layers/steppay .venv/bin/python scripts/render_transitions.py

tests/unit/test_transitions.py fails when the page and the table disagree; run this after
changing the table.
"""

from __future__ import annotations

import re
from pathlib import Path

from steppay.transitions import render_markdown

PAGE = Path(__file__).resolve().parents[1] / "docs" / "ARCHITECTURE.md"
START, END = "<!-- transitions:start -->", "<!-- transitions:end -->"


def main() -> None:
    page = PAGE.read_text(encoding="utf-8")
    block = f"{START}\n{render_markdown()}\n{END}"
    updated, count = re.subn(re.escape(START) + r".*?" + re.escape(END), lambda _: block, page, flags=re.S)
    if count != 1:
        raise SystemExit(f"{PAGE}: expected one {START} ... {END} block, found {count}")
    PAGE.write_text(updated, encoding="utf-8")


if __name__ == "__main__":
    main()
