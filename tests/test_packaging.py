"""What ``pip install`` puts into site-packages: one top-level package, ``agentstream``,
holding every package of the repository (streams/, worker/ and api/ mapped into it)."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
MAPPED = {"agentstream": "agentstream", "streams": "agentstream.streams", "worker": "agentstream.worker",
          "api": "agentstream.api"}  # fmt: skip


def _packages_on_disk() -> set[str]:
    found = set()
    for folder, name in MAPPED.items():
        for init in (ROOT / folder).rglob("__init__.py"):
            relative = init.parent.relative_to(ROOT / folder).parts
            found.add(".".join((name, *relative)))
    return found


def test_every_package_of_the_tree_is_listed_in_pyproject() -> None:
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    assert _packages_on_disk() == listed


@pytest.mark.timeout(300)
def test_the_wheel_installs_one_top_level_package(tmp_path: Path) -> None:
    # Built from a copy: setuptools builds in the project's build/, where files of an
    # earlier build (a module since deleted) would end up in the wheel.
    source = tmp_path / "src"
    for name in ("pyproject.toml", "README.md", *MAPPED):
        path = ROOT / name
        if path.is_dir():
            shutil.copytree(path, source / name, ignore=shutil.ignore_patterns("__pycache__", "node_modules"))
        else:
            source.mkdir(exist_ok=True)
            shutil.copy2(path, source / name)
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(source)],
        check=True,
        timeout=240,
    )
    (wheel,) = tmp_path.glob("agentstream-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    top = {name.split("/")[0] for name in names if not name.split("/")[0].endswith(".dist-info")}
    assert top == {"agentstream"}
    for package in _packages_on_disk():
        assert f"{package.replace('.', '/')}/__init__.py" in names, package
    assert "agentstream/api/ui/index.html" in names
    assert "agentstream/streams/py.typed" in names
