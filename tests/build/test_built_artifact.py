"""What `sam build` produces: a layer for CPython 3.13 on arm64 and nothing else, and functions
that carry only their own code.

The layer's zipped size is reported in the terminal summary and in
`test-artifacts/build-report.json`; the goal is under 10 MB.
"""

from __future__ import annotations

import hashlib
import importlib.metadata as metadata
import io
import os
import re
import struct
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import yaml
from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

if TYPE_CHECKING:
    from build.conftest import BuiltApp

ROOT = Path(__file__).resolve().parents[2]
LOCK = ROOT / "layers" / "steppay" / "requirements.lock"
LAYER_SOURCE = ROOT / "layers" / "steppay"
RUNTIME_PROVIDED = frozenset(
    {"boto3", "botocore", "s3transfer", "jmespath", "python-dateutil", "six", "urllib3"}
)
LAYER_ZIP_GOAL = 10 * 1024 * 1024
LAMBDA_UNZIPPED_LIMIT = 250 * 1024 * 1024
EM_AARCH64 = 183
PY313_MAGIC = b"\xf3\r\r\n"
PURE_TAG = re.compile(r"^py[23]-none-any$")
COMPILED_TAG = re.compile(r"^cp313-(cp313|abi3)-(manylinux\d*_\d+_\d+|manylinux2014)_aarch64$")
SO_SUFFIX = re.compile(r"\.(cpython-313-aarch64-linux-gnu|abi3)\.so$")
# What the Lambda runtime evaluates markers with.
TARGET_ENV = {
    **default_environment(),
    "implementation_name": "cpython",
    "platform_machine": "aarch64",
    "platform_system": "Linux",
    "sys_platform": "linux",
    "os_name": "posix",
    "python_version": "3.13",
    "python_full_version": "3.13.0",
    "platform_python_implementation": "CPython",
    "implementation_version": "3.13.0",
}


def _locked() -> dict[str, str]:
    pins = re.findall(r"^([A-Za-z0-9_.-]+)==([^\s\\]+)", LOCK.read_text(encoding="utf-8"), re.MULTILINE)
    return {canonicalize_name(name): version for name, version in pins}


def _layer_dists(layer: Path) -> dict[str, metadata.Distribution]:
    return {
        canonicalize_name(dist.metadata["Name"]): dist for dist in metadata.distributions(path=[str(layer)])
    }


def _files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file() or p.is_symlink())


def _digest(root: Path) -> str:
    digest = hashlib.sha256()
    for path in _files(root):
        rel = path.relative_to(root).as_posix()
        digest.update(f"{rel}\0{oct(path.stat().st_mode)}\0".encode())
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def _zip_size(root: Path) -> int:
    """Zipped as SAM packages a layer (deflate, paths under `python/`)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in _files(root):
            archive.write(path, Path("python") / path.relative_to(root))
    return buffer.tell()


class _CfnLoader(yaml.SafeLoader):
    """Reads template.yaml with its short tags (`!Ref`, `!Sub`, ...) as plain values."""


def _any_tag(loader: yaml.SafeLoader, _suffix: str, node: yaml.Node) -> Any:
    if isinstance(node, yaml.ScalarNode):
        return loader.construct_scalar(node)
    if isinstance(node, yaml.SequenceNode):
        return loader.construct_sequence(node)
    return loader.construct_mapping(node)  # type: ignore[arg-type]


_CfnLoader.add_multi_constructor("!", _any_tag)


def _functions() -> dict[str, Path]:
    template = yaml.load((ROOT / "template.yaml").read_text(encoding="utf-8"), Loader=_CfnLoader)
    return {
        name: ROOT / resource["Properties"]["CodeUri"]
        for name, resource in template["Resources"].items()
        if resource["Type"] == "AWS::Serverless::Function"
    }


def _dev_only_distributions(layer_names: set[str]) -> set[str]:
    """requirements-dev.txt's distributions and everything they pull in, less what the layer ships."""
    wanted: list[tuple[str, frozenset[str]]] = []
    for line in (ROOT / "requirements-dev.txt").read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if line and not line.startswith("-"):
            requirement = Requirement(line)
            wanted.append((canonicalize_name(requirement.name), frozenset(requirement.extras)))
    seen: set[str] = set()
    while wanted:
        name, extras = wanted.pop()
        if name in seen:
            continue
        seen.add(name)
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue
        for spec in dist.requires or []:
            requirement = Requirement(spec)
            environments = [{"extra": extra} for extra in extras] or [{"extra": ""}]
            if requirement.marker is None or any(requirement.marker.evaluate(e) for e in environments):
                wanted.append((canonicalize_name(requirement.name), frozenset(requirement.extras)))
    return seen - layer_names


def _top_level_names(name: str) -> set[str]:
    try:
        dist = metadata.distribution(name)
    except metadata.PackageNotFoundError:
        return set()
    names = set((dist.read_text("top_level.txt") or "").split())
    for file in dist.files or []:
        first = file.parts[0]
        if not first.endswith((".dist-info", ".data")) and first not in ("..", "bin", "__pycache__"):
            names.add(first.removesuffix(".py"))
    return names


# -- the layer ---------------------------------------------------------------------------------


def test_layer_holds_exactly_the_locked_distributions(built_app: BuiltApp) -> None:
    layer = _layer_dists(built_app.layer)
    installed = {name: dist.version for name, dist in layer.items()}
    assert installed == _locked()
    assert not RUNTIME_PROVIDED - {"jmespath", "urllib3"} & set(installed), (
        "boto3's stack must not be shadowed"
    )
    for name in ("boto3", "botocore", "s3transfer"):
        assert not (built_app.layer / name).exists(), f"{name} comes with the Lambda runtime"


def test_every_compiled_wheel_is_cp313_aarch64(built_app: BuiltApp) -> None:
    compiled = []
    for name, dist in _layer_dists(built_app.layer).items():
        wheel = dist.read_text("WHEEL") or ""
        tags = [line.split(":", 1)[1].strip() for line in wheel.splitlines() if line.startswith("Tag:")]
        assert tags, f"{name}: no wheel tags"
        pure = all(PURE_TAG.match(tag) for tag in tags)
        if not pure:
            compiled.append(name)
            bad = [tag for tag in tags if not COMPILED_TAG.match(tag)]
            assert not bad, f"{name}: wheel tags {bad} are not CPython 3.13 on manylinux aarch64"
    assert {"pydantic-core"} <= set(compiled)

    shared = [p for p in _files(built_app.layer) if p.name.endswith(".so") or ".so." in p.name]
    assert shared, "pydantic_core's extension module is missing"
    for path in shared:
        header = path.read_bytes()[:20]
        assert header[:4] == b"\x7fELF", path
        assert header[4] == 2, f"{path.name} is not a 64-bit ELF"
        machine = struct.unpack("<H", header[18:20])[0]
        assert machine == EM_AARCH64, f"{path.name} is built for ELF machine {machine}, not aarch64"
        assert SO_SUFFIX.search(path.name), f"{path.name} is not named for CPython 3.13 on aarch64"


def test_nothing_from_the_dev_or_test_dependencies(built_app: BuiltApp) -> None:
    layer = set(_layer_dists(built_app.layer))
    dev_only = _dev_only_distributions(layer)
    assert {"moto", "pytest", "boto3", "aws-sam-cli", "mypy"} <= dev_only  # the check sees them
    assert not layer & dev_only
    top_level = {p.name.removesuffix(".py") for p in built_app.layer.iterdir()}
    leaked = {name: sorted(_top_level_names(name) & top_level) for name in sorted(dev_only)}
    assert not {name: mods for name, mods in leaked.items() if mods}
    for ours in ("steppay_sandbox", "steppay_local", "tests", "bench", "functions", "fixtures"):
        assert not (built_app.layer / ours).exists()


def test_layer_requirements_are_met_with_the_runtime_boto3(built_app: BuiltApp) -> None:
    layer = _layer_dists(built_app.layer)
    extras = {"aws-lambda-powertools": ["tracer"]}
    problems = []
    for name, dist in layer.items():
        for spec in dist.requires or []:
            requirement = Requirement(spec)
            environments = [{**TARGET_ENV, "extra": e} for e in [*extras.get(name, []), ""]]
            if requirement.marker is not None and not any(
                requirement.marker.evaluate(e) for e in environments
            ):
                continue
            needed = canonicalize_name(requirement.name)
            if needed in layer:
                if not requirement.specifier.contains(layer[needed].version, prereleases=True):
                    problems.append(f"{name} needs {requirement}, layer has {layer[needed].version}")
            elif needed not in RUNTIME_PROVIDED:
                problems.append(f"{name} needs {requirement}, which neither the layer nor the runtime has")
    # The layer's urllib3 and jmespath shadow the runtime's: botocore must accept them.
    botocore = metadata.distribution("botocore")
    for spec in botocore.requires or []:
        requirement = Requirement(spec)
        if requirement.marker is not None and not requirement.marker.evaluate(TARGET_ENV):
            continue
        needed = canonicalize_name(requirement.name)
        if needed in layer and not requirement.specifier.contains(layer[needed].version, prereleases=True):
            problems.append(
                f"botocore {botocore.version} needs {requirement}, layer has {layer[needed].version}"
            )
    assert not problems


def test_layer_ships_deterministic_bytecode_for_python_3_13(built_app: BuiltApp) -> None:
    sources = [p for p in _files(built_app.layer) if p.suffix == ".py"]
    pycs = [p for p in _files(built_app.layer) if p.suffix == ".pyc"]
    if sys.implementation.cache_tag != "cpython-313":
        assert not pycs, "a non-3.13 build interpreter must not ship bytecode"
        pytest.skip("the build interpreter is not CPython 3.13: the layer ships without bytecode")
    assert all(p.name.endswith(".cpython-313.pyc") and p.parent.name == "__pycache__" for p in pycs)
    missing = [p for p in sources if not (p.parent / "__pycache__" / f"{p.stem}.cpython-313.pyc").exists()]
    assert not missing[:10]
    for pyc in pycs:
        header = pyc.read_bytes()[:8]
        assert header[:4] == PY313_MAGIC, pyc
        # PEP 552 flags: 0b01 = hash-based, source not checked (no timestamps, no stat calls).
        assert struct.unpack("<I", header[4:8])[0] == 1, pyc
    built_app.report["layer_pyc_files"] = len(pycs)


def test_steppay_package_is_the_source(built_app: BuiltApp) -> None:
    source = LAYER_SOURCE / "steppay"
    expected = {p.relative_to(source) for p in source.rglob("*.py")}
    shipped = {
        p.relative_to(built_app.layer / "steppay") for p in (built_app.layer / "steppay").rglob("*.py")
    }
    assert shipped == expected
    for rel in expected:
        assert (built_app.layer / "steppay" / rel).read_bytes() == (source / rel).read_bytes()


def test_layer_has_no_console_scripts_or_build_paths(built_app: BuiltApp) -> None:
    assert not (built_app.layer / "bin").exists()
    marker = str(built_app.build_dir).encode()
    leaking = [p for p in _files(built_app.layer) if marker in p.read_bytes()]
    assert not leaking[:5], "the build directory's path must not end up in the artifact"


def test_layer_rebuilds_identically(built_app: BuiltApp, tmp_path: Path) -> None:
    """The layer's Makefile, run again into another directory, produces the same bytes."""
    again = tmp_path / "again"
    result = subprocess.run(
        [
            "make",
            "--no-print-directory",
            "-C",
            str(LAYER_SOURCE),
            "build-StepPayLayer",
            f"ARTIFACTS_DIR={again}",
        ],
        env=built_app.env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    first, second = _digest(built_app.layer), _digest(again / "python")
    built_app.report["layer_sha256"] = first
    assert first == second
    mtimes = {p.lstat().st_mtime for p in _files(again / "python")}
    assert mtimes == {1577836800.0}


def test_layer_zipped_size(built_app: BuiltApp) -> None:
    zipped = _zip_size(built_app.layer)
    unzipped = sum(p.stat().st_size for p in _files(built_app.layer))
    functions = {
        name: sum(p.stat().st_size for p in _files(built_app.function(name))) for name in _functions()
    }
    built_app.report.update(
        {
            "layer_zipped_bytes": zipped,
            "layer_unzipped_bytes": unzipped,
            "layer_files": len(_files(built_app.layer)),
            "function_bytes": functions,
            "sam_build_seconds": round(built_app.seconds, 1),
            "offline": built_app.offline,
        }
    )
    built_app.summary.append(
        f"StepPayLayer: {zipped / 2**20:.2f} MiB zipped (goal < {LAYER_ZIP_GOAL / 2**20:.0f} MiB), "
        f"{unzipped / 2**20:.1f} MiB unzipped; functions {min(functions.values()) / 1e3:.1f}-"
        f"{max(functions.values()) / 1e3:.1f} kB each; sam build {built_app.seconds:.0f} s"
        f" ({'offline, from .wheelhouse' if built_app.offline else 'wheels fetched from PyPI'})"
    )
    assert zipped < LAYER_ZIP_GOAL, f"the layer is {zipped / 2**20:.2f} MiB zipped"
    assert unzipped < LAMBDA_UNZIPPED_LIMIT


# -- the functions -----------------------------------------------------------------------------


@pytest.mark.parametrize("logical_id", sorted(_functions()))
def test_function_carries_only_its_own_code(built_app: BuiltApp, logical_id: str) -> None:
    source = _functions()[logical_id]
    expected = {
        p.relative_to(source) for p in _files(source) if "__pycache__" not in p.parts and p.suffix != ".pyc"
    }
    built = {p.relative_to(built_app.function(logical_id)) for p in _files(built_app.function(logical_id))}
    assert built == expected
    assert all(p.suffix == ".py" for p in built)


def test_built_template_points_at_the_built_code(built_app: BuiltApp) -> None:
    template = yaml.load(
        (built_app.build_dir / "template.yaml").read_text(encoding="utf-8"), Loader=_CfnLoader
    )
    resources = template["Resources"]
    assert resources["StepPayLayer"]["Properties"]["ContentUri"] == "StepPayLayer"
    for logical_id in _functions():
        assert resources[logical_id]["Properties"]["CodeUri"] == logical_id
    assert os.path.isdir(built_app.layer)
