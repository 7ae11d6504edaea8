"""The wheel installs one top-level package, `stockguard`, beside anything PyPI calls `config`.

Built from a copy of the source tree into a fresh venv, with a stand-in for PyPI's
`config` distribution installed first (the clash issue 11 names: a generic top-level
`config`, `state`, `flows` or `connectors` would shadow or be shadowed by it).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# Build from this venv's setuptools, without asking an index anything.
OFFLINE = ("--no-deps", "--no-build-isolation", "--no-index", "--disable-pip-version-check", "-q")


def docker_context() -> Callable[[str, list[str]], set[str]]:
    """Ignore what .dockerignore leaves out: the wheel is built from the image's build context."""
    patterns = []
    for line in (ROOT / ".dockerignore").read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            patterns.append(line.removeprefix("**/"))
    return shutil.ignore_patterns(*patterns)


def run(*cmd: str | Path, cwd: Path | None = None) -> str:
    # The wheel is what users install: compiled, whichever build this suite runs in.
    env = {k: v for k, v in os.environ.items() if k != "STOCKGUARD_PURE"}
    proc = subprocess.run(
        [str(c) for c in cmd], capture_output=True, text=True, cwd=cwd, timeout=600, check=False, env=env
    )
    assert proc.returncode == 0, f"{cmd}:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc.stdout


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"
    # symlinks=True: the tree as git holds it, stockguard/state -> ../state and so on.
    shutil.copytree(ROOT, src, symlinks=True, ignore=docker_context())
    run(sys.executable, "-m", "pip", "wheel", *OFFLINE, "-w", tmp / "dist", src)
    (whl,) = (tmp / "dist").glob("stockguard-*.whl")
    return whl


def source_modules() -> set[str]:
    """Name every module of the source tree, through the linked subpackages."""
    names = set()
    for folder, _dirs, files in os.walk(ROOT / "stockguard", followlinks=True):
        for file in files:
            if file.endswith(".py"):
                parts = (Path(folder) / file).relative_to(ROOT).with_suffix("").parts
                names.add(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    names.discard("stockguard")
    return names


def stand_in_config(tmp: Path) -> Path:
    """Build a wheel of a distribution `config` with a top-level package `config`, like PyPI's."""
    src = tmp / "config-dist"
    (src / "config").mkdir(parents=True)
    (src / "config" / "__init__.py").write_text('WHO = "the other config"\n')
    (src / "pyproject.toml").write_text(
        '[build-system]\nrequires = ["setuptools"]\nbuild-backend = "setuptools.build_meta"\n'
        '[project]\nname = "config"\nversion = "0.5.1"\n[tool.setuptools]\npackages = ["config"]\n'
    )
    run(sys.executable, "-m", "pip", "wheel", *OFFLINE, "-w", tmp / "dist", src)
    (whl,) = (tmp / "dist").glob("config-*.whl")
    return whl


def test_the_wheel_holds_only_the_stockguard_package(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    tops = {n.split("/", 1)[0] for n in names if not n.split("/", 1)[0].endswith(".dist-info")}
    assert tops == {"stockguard"}
    for sub in ("config", "state", "flows", "connectors", "sim"):
        assert f"stockguard/{sub}/__init__.py" in names
    # The gateway serves its OpenAPI document from the package.
    assert "stockguard/connectors/gateway/openapi.json" in names


def test_every_module_imports_from_the_wheel_in_a_venv_that_holds_pypis_config(wheel: Path, tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    run(sys.executable, "-m", "venv", venv)
    py = venv / "bin" / "python"
    run(py, "-m", "pip", "install", "-q", "--no-deps", "--no-index", stand_in_config(tmp_path))
    run(py, "-m", "pip", "install", "-q", "--no-deps", "--no-index", wheel)
    # The dependencies (bytewax, confluent-kafka, ...) come from this venv as a plain path:
    # a path line in a .pth is not a site dir, so this venv's editable stockguard stays out.
    site = Path(run(py, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])").strip())
    (site / "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    check = """
import importlib, pkgutil, stockguard, config
assert config.WHO == "the other config", config.__file__
assert "site-packages" in stockguard.__file__, stockguard.__file__
names = [m.name for m in pkgutil.walk_packages(stockguard.__path__, "stockguard.")]
for name in names:
    importlib.import_module(name)
print(" ".join(sorted(names)))
"""
    # -I: neither PYTHONPATH nor the working directory may lend a module to the check.
    imported = set(run(py, "-I", "-c", check, cwd=tmp_path).split())
    # The wheel carries the compiled hot path: its modules as extensions, and their library.
    assert imported == source_modules() | {"stockguard._hot__mypyc"}
    compiled = run(py, "-I", "-c", "import stockguard._hot as h; print(h.mode())", cwd=tmp_path).strip()
    assert compiled == "compiled"
