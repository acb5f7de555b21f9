"""pyproject.toml installs every package of the tree, under the pmdswap_fuzz namespace only.

setuptools is given an explicit package list (models/ and fuzz/ are renamed on install), so a new
subpackage that is not listed would be missing from a wheel while the editable checkout still
imports it; these tests catch that before a user does.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
TOP = {"models": "pmdswap_fuzz.models", "fuzz": "pmdswap_fuzz.fuzz"}


def _setuptools() -> dict:
    return tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]


def _tree_packages() -> dict[str, str]:
    """Every directory with an __init__.py under models/ and fuzz/, as {package name: directory}."""
    found = {}
    for top, name in TOP.items():
        for init in sorted((REPO / top).rglob("__init__.py")):
            rel = init.parent.relative_to(REPO)
            found[".".join([name, *rel.parts[1:]])] = rel.as_posix()
    return found


def test_every_package_in_the_tree_is_listed_and_mapped():
    cfg = _setuptools()
    tree = _tree_packages()
    assert sorted(cfg["packages"]) == sorted(tree), "pyproject [tool.setuptools] packages"
    for pkg, directory in tree.items():
        assert cfg["package-dir"].get(pkg) == directory, f"package-dir for {pkg}"


def test_no_generic_top_level_names_are_installed():
    for pkg in _setuptools()["packages"]:
        assert pkg.startswith("pmdswap_fuzz."), pkg


def test_no_source_directory_lacks_an_init():
    """A directory of modules without __init__.py would be skipped by the package list."""
    for top in TOP:
        for py in (REPO / top).rglob("*.py"):
            d = py.parent
            assert (d / "__init__.py").exists(), f"{d.relative_to(REPO)} has modules but no __init__.py"


def test_test_tools_are_not_runtime_dependencies():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    runtime = " ".join(project["dependencies"])
    for tool in ("pytest", "ruff", "mypy"):
        assert tool not in runtime, tool
        assert any(d.startswith(tool) for d in project["optional-dependencies"]["dev"]), tool


def test_every_data_file_a_package_reads_is_package_data():
    """A non-Python file inside a package (the C runtime) must be listed, or a wheel lacks it."""
    cfg = _setuptools()
    data = cfg.get("package-data", {})
    for pkg, directory in _tree_packages().items():
        for f in sorted((REPO / directory).iterdir()):
            if f.is_file() and f.suffix not in (".py", ".pyc"):
                patterns = data.get(pkg, [])
                assert any(f.match(pat) for pat in patterns), f"{f.relative_to(REPO)} not in package-data"
