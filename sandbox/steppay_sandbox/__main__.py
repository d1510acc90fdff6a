"""``python -m steppay_sandbox``: see ``steppay_sandbox.cli``."""

from steppay_sandbox.cli import main

raise SystemExit(main())
