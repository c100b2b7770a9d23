"""Every mutant in mutants.py must make the tests named with it fail.

Each mutant runs in a copy of the package (laid out as installed: edge_sdk.runtime, edge_sdk.exporters
...) with the mutation applied, and the named tests are run there by a separate pytest. Only those tests
run. The selected mutants' runs start as soon as the first mutant test does, EDGE_SDK_MUTATION_WORKERS
(default 2) at a time: a run is mostly one Python process importing and exporting, so two of them keep two
cores busy, and the check takes half as long. Run it alone with `pytest -m mutation`.

Each run is a fresh Python, so what every run would redo is done once or not at all: the clean copy is
byte-compiled once (hash-checked .pyc files: the mutated file's no longer matches its source and is compiled
again), and the runs load no third-party pytest plugins (hypothesis', anyio's, langsmith's: none of the suite's
tests needs one, and importing them cost each run seconds).
"""
from __future__ import annotations

import compileall
import importlib.util
import os
import py_compile
import shutil
import subprocess
import sys
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import pytest

from .mutants import ALL

pytestmark = pytest.mark.mutation

REPO = Path(__file__).resolve().parents[2]


def _package_map() -> dict[str, str]:
    """{installed package: repository folder} from pyproject.toml's package-dir."""
    tomllib = pytest.importorskip("tomllib")
    data = tomllib.loads((REPO / "pyproject.toml").read_text())
    return data["tool"]["setuptools"]["package-dir"]


def _installed_path(repo_path: str, mapping: dict[str, str]) -> str:
    """Where a repository file lands in the installed package (longest mapped folder wins)."""
    best = max((folder for folder in mapping.values() if repo_path.startswith(folder + "/")), key=len, default=None)
    if best is None:
        return repo_path
    package = next(p for p, f in mapping.items() if f == best)
    return package.replace(".", "/") + repo_path[len(best):]


@pytest.fixture(scope="module")
def tree(tmp_path_factory, tiny_bundle):
    """The package as installed, plus the tests, in a folder of its own (mutated copies are made from it)."""
    root = tmp_path_factory.mktemp("mutation") / "clean"
    mapping = _package_map()
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for package, folder in sorted(mapping.items(), key=lambda kv: kv[0].count(".")):
        shutil.copytree(REPO / folder, root / package.replace(".", "/"), ignore=ignore, dirs_exist_ok=True)
    shutil.copytree(REPO / "mobile_demo", root / "mobile_demo", ignore=ignore)
    shutil.copytree(REPO / "tests", root / "tests", ignore=ignore)
    shutil.copy(REPO / "pyproject.toml", root / "pyproject.toml")
    # once here rather than in every mutant's run; hash-checked, so a mutated source never runs from a stale .pyc
    assert compileall.compile_dir(root, quiet=1, invalidation_mode=py_compile.PycInvalidationMode.CHECKED_HASH)
    return root, mapping


def _env(tiny_bundle) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["EDGE_SDK_TEST_TINY_BUNDLE"] = str(tiny_bundle)  # every run reuses one export of the tiny model
    env["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"  # no third-party plugin imports in each run (see the docstring)
    return env


def test_the_copy_is_what_the_tests_import(tree, tiny_bundle):
    root, _ = tree
    out = subprocess.run([sys.executable, "-c", "import edge_sdk.runtime.sampling as s, mobile_demo; "
                          "print(s.__file__); print(mobile_demo.__file__)"], cwd=root, env=_env(tiny_bundle),
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert all(line.startswith(str(root)) for line in out.stdout.split()), out.stdout
    clean = subprocess.run([sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider",
                            "tests/runtime/test_kv_cache.py"], cwd=root, env=_env(tiny_bundle),
                           capture_output=True, text=True, timeout=600)
    assert clean.returncode == 0, clean.stdout[-2000:]  # unmutated, the tests pass


def _run(mutant, clean: Path, mapping: dict[str, str], root: Path, tiny_bundle) -> subprocess.CompletedProcess:
    """The mutant's tests, run by their own pytest in a mutated copy of the tree."""
    shutil.copytree(clean, root, symlinks=True)
    target = root / _installed_path(mutant.file, mapping)
    source = target.read_text()
    assert source.count(mutant.old) == 1, f"{mutant.file} no longer contains the text this mutant changes: update it"
    target.write_text(source.replace(mutant.old, mutant.new))
    # the clean .pyc is hash-checked, so it would be ignored anyway; dropping it says so plainly
    Path(importlib.util.cache_from_source(str(target))).unlink(missing_ok=True)
    # a basetemp of its own: concurrent runs never share (or clean up) each other's temporary folders
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider",
                           f"--basetemp={root.parent / 'tmp'}", *mutant.tests],
                          cwd=root, env=_env(tiny_bundle), capture_output=True, text=True, timeout=1200)


@pytest.fixture(scope="module")
def runs(request, tree, tiny_bundle, tmp_path_factory):
    """{mutant name: Future of its run} for every mutant this session selected, started all at once on a pool."""
    clean, mapping = tree
    selected = [item.callspec.params["mutant"] for item in request.session.items
                if getattr(item, "originalname", None) == "test_mutant_is_caught"]
    workers = int(os.environ.get("EDGE_SDK_MUTATION_WORKERS", "2"))
    pool = ThreadPoolExecutor(max_workers=max(1, workers))
    futures: dict[str, Future] = {}
    for mutant in selected:
        if mutant.file.startswith("runtime/qnn") and not _has_qnn():
            continue
        work = tmp_path_factory.mktemp("mutant")
        futures[mutant.name] = pool.submit(_run, mutant, clean, mapping, work / "tree", tiny_bundle)
    yield futures
    pool.shutdown(wait=True, cancel_futures=True)


@pytest.mark.parametrize("mutant", ALL, ids=lambda m: m.name)
def test_mutant_is_caught(mutant, runs):
    if mutant.file.startswith("runtime/qnn") and not _has_qnn():
        pytest.skip("onnxruntime-qnn is not installed (the [npu] extra): the QNN mutant cannot be tested here")
    proc = runs[mutant.name].result()
    assert proc.returncode == 1, (f"mutant '{mutant.name}' survived (pytest exit {proc.returncode}):\n"
                                  f"{proc.stdout[-3000:]}\n{proc.stderr[-2000:]}")


def _has_qnn() -> bool:
    return importlib.util.find_spec("onnxruntime_qnn") is not None
