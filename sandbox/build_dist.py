"""Build the ``steppay-sandbox`` wheel and sdist (``make dist``; ``--outdir`` defaults to ``dist/``).

The sources (``pyproject.toml``, ``README.md``, ``steppay_sandbox/``) are copied to a temporary
directory first, so that setuptools' ``build/`` and ``*.egg-info`` never land in the working
tree, and built there through setuptools' PEP 517 hooks with the setuptools of the interpreter
running this script: no build isolation, no network. Older ``steppay_sandbox-*`` artefacts in
the output directory are removed, so it holds exactly this version's. Prints the built paths.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
SOURCES = ("pyproject.toml", "README.md", "steppay_sandbox")
ARTEFACT_GLOBS = ("steppay_sandbox-*.whl", "steppay_sandbox-*.tar.gz")
HOOKS = """
import sys
from setuptools import build_meta
out, sdist = sys.argv[1], sys.argv[2] == "1"  # read first: the hooks rewrite sys.argv
print("BUILT:" + build_meta.build_wheel(out))
if sdist:
    print("BUILT:" + build_meta.build_sdist(out))
"""


def build(outdir: Path, *, sdist: bool = True) -> list[Path]:
    outdir = outdir.resolve()
    outdir.mkdir(parents=True, exist_ok=True)
    for pattern in ARTEFACT_GLOBS:
        for old in outdir.glob(pattern):
            old.unlink()
    with tempfile.TemporaryDirectory(prefix="steppay-sandbox-build-") as tmp:
        source = Path(tmp) / "src"
        source.mkdir()
        for name in SOURCES:
            path = HERE / name
            if path.is_dir():
                shutil.copytree(path, source / name, ignore=shutil.ignore_patterns("__pycache__", "*.py[co]"))
            else:
                shutil.copy2(path, source / name)
        result = subprocess.run(  # noqa: S603 - this interpreter, fixed arguments
            [sys.executable, "-c", HOOKS, str(outdir), "1" if sdist else "0"],
            cwd=source,
            capture_output=True,
            text=True,
            check=False,
        )
    if result.returncode != 0:
        sys.stderr.write(result.stdout + result.stderr)
        raise SystemExit(f"building steppay-sandbox failed (exit {result.returncode})")
    names = [line.removeprefix("BUILT:") for line in result.stdout.splitlines() if line.startswith("BUILT:")]
    built = [outdir / name for name in names if (outdir / name).is_file()]
    if len(built) != (2 if sdist else 1):
        sys.stderr.write(result.stdout + result.stderr)
        raise SystemExit("building steppay-sandbox did not produce the expected files")
    return built


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--outdir", type=Path, default=HERE.parent / "dist")
    parser.add_argument("--no-sdist", action="store_true", help="the wheel only")
    args = parser.parse_args(argv)
    for path in build(args.outdir, sdist=not args.no_sdist):
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
