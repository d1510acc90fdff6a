"""A Lambda-like import environment on this machine, for cold-start figures.

The project's virtualenv holds far more than a Lambda container does (awscrt, pyOpenSSL and
cryptography, which botocore imports when it finds them, make `import boto3` several times
slower), so cold starts are measured in a tree laid out like the python3.13 runtime instead:

* `runtime/`: what the Lambda runtime ships with boto3 (boto3, botocore, s3transfer, jmespath,
  python-dateutil, six, urllib3), copied file by file from the virtualenv; precompiled, as the
  runtime's own are.
* `layer-deps/`: the layer's locked dependencies (`layers/steppay/requirements.lock`, exact
  versions) installed as wheels for this machine (the built layer's are aarch64), once.
* `opt-pyc/python`: the layer as `make build` ships it in `/opt/python` (`layer-deps` plus the
  current `steppay` package, with bytecode); `opt-src/python`: the same without bytecode, to
  show what shipping it saves.
* `task/<function>`: each function's code as `/var/task` (sources only, as SAM builds it), and
  `task/bare_floor`: `bench/bare_floor.py`, the bare floor the cold starts are compared with.

`sys.path` order is Lambda's: task, `/opt/python`, runtime. Processes are started with `-S -B`
(no site-packages, nothing written), so sources without bytecode are compiled at every start,
as they are in Lambda, where `/opt` and `/var/task` are read-only.
"""

from __future__ import annotations

import compileall
import importlib.metadata as metadata
import py_compile
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LOCK = ROOT / "layers" / "steppay" / "requirements.lock"
STEPPAY_SRC = ROOT / "layers" / "steppay" / "steppay"
RUNTIME_DISTRIBUTIONS = ("boto3", "botocore", "s3transfer", "jmespath", "python-dateutil", "six", "urllib3")
FUNCTIONS = (
    "checkouts",
    "verify",
    "webhook_intake",
    "webhook_processor",
    "publisher",
    "reconciliation",
    "entitlements",
)
BARE_FLOOR = "bare_floor"  # bench/bare_floor.py, laid out as a function of its own
_PIN = re.compile(r"^([A-Za-z0-9_.-]+)==([^\s\\]+)", re.MULTILINE)


@dataclass(frozen=True)
class LambdaTree:
    root: Path
    bytecode: bool  # the layer ships .pyc files

    @property
    def runtime(self) -> Path:
        return self.root / "runtime"

    @property
    def opt(self) -> Path:
        return self.root / ("opt-pyc" if self.bytecode else "opt-src") / "python"

    def task(self, function: str) -> Path:
        return self.root / "task" / function

    def sys_path(self, function: str | None) -> list[str]:
        paths = [str(self.opt), str(self.runtime)]
        return ([str(self.task(function))] if function else []) + paths


def locked_pins(lock: Path = LOCK) -> list[str]:
    return [f"{name}=={version}" for name, version in _PIN.findall(lock.read_text(encoding="utf-8"))]


def _copy_distribution(name: str, dest: Path) -> None:
    dist = metadata.distribution(name)
    for file in dist.files or []:
        if "__pycache__" in file.parts or file.parts[0] in ("..", "bin"):
            continue
        source = Path(str(dist.locate_file(file)))
        if source.is_file():
            target = dest / file
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)


def _install_layer_deps(dest: Path, log: list[str]) -> None:
    pins = locked_pins()
    stamp = dest / ".pins"
    if stamp.exists() and stamp.read_text(encoding="utf-8") == "\n".join(pins):
        return
    shutil.rmtree(dest, ignore_errors=True)
    command = [
        sys.executable,
        "-m",
        "pip",
        "install",
        "--quiet",
        "--disable-pip-version-check",
        "--no-deps",
        "--no-compile",
        "--only-binary=:all:",
        "--target",
        str(dest),
        *pins,
    ]
    result = subprocess.run(command, capture_output=True, text=True, check=False)  # noqa: S603
    if result.returncode != 0:
        # No index at hand: the virtualenv's copies of the same distributions (versions may differ).
        log.append("layer deps: pip could not fetch the locked versions; copied the virtualenv's instead")
        shutil.rmtree(dest, ignore_errors=True)
        for pin in pins:
            _copy_distribution(pin.split("==")[0], dest)
    shutil.rmtree(dest / "bin", ignore_errors=True)
    stamp.write_text("\n".join(pins), encoding="utf-8")


def _ignore_bytecode(_dir: str, names: list[str]) -> set[str]:
    return {n for n in names if n == "__pycache__" or n.endswith(".pyc") or n.startswith(".pins")}


def build(root: Path, log: list[str] | None = None) -> tuple[LambdaTree, LambdaTree]:
    """(tree with bytecode, tree without) under `root`; the dependency parts are cached there."""
    log = log if log is not None else []
    root.mkdir(parents=True, exist_ok=True)
    runtime = root / "runtime"
    if not (runtime / "boto3").is_dir():
        shutil.rmtree(runtime, ignore_errors=True)
        for name in RUNTIME_DISTRIBUTIONS:
            _copy_distribution(name, runtime)
        compileall.compile_dir(runtime, quiet=1, workers=0)
    deps = root / "layer-deps"
    _install_layer_deps(deps, log)
    trees = (LambdaTree(root, bytecode=True), LambdaTree(root, bytecode=False))
    for tree in trees:
        opt = tree.opt
        shutil.rmtree(opt.parent, ignore_errors=True)
        shutil.copytree(deps, opt, ignore=_ignore_bytecode)
        shutil.copytree(STEPPAY_SRC, opt / "steppay", ignore=_ignore_bytecode)
        if tree.bytecode:
            compileall.compile_dir(
                opt, quiet=1, workers=0, invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH
            )
    for function in FUNCTIONS:
        task = trees[0].task(function)
        shutil.rmtree(task, ignore_errors=True)
        shutil.copytree(ROOT / "functions" / function, task, ignore=_ignore_bytecode)
    bare = trees[0].task(BARE_FLOOR)
    shutil.rmtree(bare, ignore_errors=True)
    bare.mkdir(parents=True)
    shutil.copy2(Path(__file__).with_name(f"{BARE_FLOOR}.py"), bare / f"{BARE_FLOOR}.py")
    return trees


def versions(tree: LambdaTree) -> dict[str, str]:
    found: dict[str, str] = {}
    for base in (tree.opt, tree.runtime):
        for dist in metadata.distributions(path=[str(base)]):
            found.setdefault(dist.metadata["Name"], dist.version)
    return dict(sorted(found.items()))
