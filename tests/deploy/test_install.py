"""`make run` installs the runtime packages only, and they are enough for the server to import."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

from tests.conftest import ROOT

# Every module of the proxy imported with the test-only packages made absent (the path finder
# does not find them), as on a machine where only `make run` installed: an optional import
# (redis takes xxhash when it is there) falls back as it would there, a needed one fails. Then
# each third-party module loaded is mapped to its distribution.
IMPORTS = """
import importlib, json, pkgutil, sys
from importlib import metadata
from importlib.machinery import PathFinder
absent = set(json.loads(sys.argv[1]))

class WithoutTestPackages:
    @classmethod
    def find_spec(cls, name, path=None, target=None):
        if name.partition(".")[0] in absent:
            return None
        return PathFinder.find_spec(name, path, target)

    @classmethod
    def find_distributions(cls, *args, **kwargs):  # metadata is still read, as installed
        return PathFinder.find_distributions(*args, **kwargs)

    @classmethod
    def invalidate_caches(cls):
        PathFinder.invalidate_caches()

sys.meta_path[:] = [WithoutTestPackages if f is PathFinder else f for f in sys.meta_path]
before = set(sys.modules)  # what the interpreter loads at start (site's .pth hooks)
import proxy
for info in pkgutil.walk_packages(proxy.__path__, "proxy."):
    if info.name != "proxy.__main__":  # it runs the command line
        importlib.import_module(info.name)
owners = metadata.packages_distributions()
used = set()
for name in set(sys.modules) - before:
    top = name.partition(".")[0]
    if top in sys.stdlib_module_names or top in ("proxy", "__main__") or top not in owners:
        continue
    used.update(d.lower().replace("_", "-") for d in owners[top])
print(json.dumps(sorted(used)))
"""


def absent_modules(closure: set[str]) -> list[str]:
    """Top-level modules that only distributions outside ``closure`` provide."""
    from importlib import metadata

    return sorted(
        top
        for top, dists in metadata.packages_distributions().items()
        if not any(d.lower().replace("_", "-") in closure for d in dists)
        and top not in sys.stdlib_module_names
    )


NODE_FILES = ("tests/node/package.json", "tests/node/package-lock.json")


def runtime_closure() -> set[str]:
    """The distributions ``pip install .`` brings: pyproject's dependencies with no extra of
    ours, and theirs (with the extras asked for), as installed here."""
    from importlib import metadata

    from packaging.requirements import Requirement

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    todo = [Requirement(text) for text in project["dependencies"]]
    seen: set[tuple[str, str]] = set()
    while todo:
        req = todo.pop()
        name = req.name.lower().replace("_", "-")
        for extra in {"", *req.extras}:
            if (name, extra) in seen:
                continue
            seen.add((name, extra))
            for text in metadata.requires(name) or []:
                dep = Requirement(text)
                if dep.marker is None or dep.marker.evaluate({"extra": extra}):
                    todo.append(dep)
    return {name for name, _ in seen} | {"l104-proxy"}


def test_make_run_installs_the_runtime_packages_only(tmp_path: Path) -> None:
    for name in ("Makefile", "pyproject.toml", "constraints.txt", *NODE_FILES):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / name, tmp_path / name)
    dry = subprocess.run(
        ["make", "-n", "run", "PYTHON=python3"], cwd=tmp_path, capture_output=True, text=True
    )
    assert dry.returncode == 0, dry.stderr
    installs = [line for line in dry.stdout.splitlines() if "pip install" in line]
    assert any(line.endswith("-c constraints.txt -e .") for line in installs), installs
    assert not any("[test" in line or "docs" in line for line in installs), installs
    full = subprocess.run(["make", "-n", "test"], cwd=tmp_path, capture_output=True, text=True)
    assert "-e '.[test,docs]'" in full.stdout
    assert "mkdocs build --strict" in full.stdout


def test_the_server_imports_nothing_outside_the_runtime_packages() -> None:
    closure = runtime_closure()
    absent = absent_modules(closure)
    assert {"pytest", "openai", "xxhash"} <= set(absent)  # test-only, and an optional one
    out = subprocess.run(
        [sys.executable, "-c", IMPORTS, json.dumps(absent)],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stderr[-2000:]  # an import the runtime set cannot satisfy
    used = set(json.loads(out.stdout))
    assert used, "the walk found no third-party module"
    assert {"aiohttp", "pyyaml", "aiosqlite"} <= used
    assert used - closure == set()
