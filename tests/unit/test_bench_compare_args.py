"""benchmarks/compare.py's command line: several --bundle become several edge-sdk runtimes of one run, and
--python points a runtime at an interpreter outside --venvs. Fast: no runner is started."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def compare():
    spec = importlib.util.spec_from_file_location("bench_compare", ROOT / "benchmarks" / "compare.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_two_bundles_and_a_given_python(compare, tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir(), b.mkdir()
    args = compare.parse_args(["--bundle", str(a), "--bundle", str(b), "--python", "llamacpp=/x/bin/python"])
    assert args.bundle == [str(a), str(b)]
    assert args.python == {"llamacpp": "/x/bin/python"}
    assert compare.base("edgesdk2") == "edgesdk" and compare.base("llamacpp") == "llamacpp"
    # A given interpreter is used as is; the others still come from --venvs (and are checked there).
    assert compare.venv_python(tmp_path, "llamacpp", args.python) == Path("/x/bin/python")
    with pytest.raises(SystemExit, match="venv is missing"):
        compare.venv_python(tmp_path, "edgesdk", args.python)


@pytest.mark.parametrize("argv, says", [
    (["--python", "llamacpp"], "RUNTIME=PATH"),
    (["--python", "vllm=/x"], "unknown runtime"),
    (["--bundle", "/nonexistent/bundle"], "is not a folder"),
])
def test_bad_arguments_are_refused(compare, argv, says, capsys):
    with pytest.raises(SystemExit):
        compare.parse_args(argv)
    assert says in capsys.readouterr().err
