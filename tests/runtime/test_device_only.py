"""The device side runs with numpy + onnxruntime only: torch, transformers and tokenizers unimportable."""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap

BLOCKER = textwrap.dedent("""
    import sys, json, importlib.abc
    BLOCKED = ("torch", "transformers", "tokenizers", "onnx", "optimum", "gguf")
    class Block(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in BLOCKED:
                raise ImportError(f"{name} is blocked: device-side code must not import it")
    sys.meta_path.insert(0, Block())
""")


def _run(code: str) -> dict:
    proc = subprocess.run([sys.executable, "-c", BLOCKER + textwrap.dedent(code)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_load_and_generate_without_heavy_packages(tiny_bundle):
    out = _run(f"""
        import edge_sdk
        m = edge_sdk.load({str(tiny_bundle)!r}, threads=1)
        text = m.generate("hello world", max_new_tokens=8)
        chat = m.chat()
        chat.send("hi", max_new_tokens=4)
        heavy = sorted(n for n in sys.modules if n.split(".")[0] in BLOCKED)
        print(json.dumps({{"text": text, "backend": m.tokenizer.backend, "heavy": heavy}}))
    """)
    assert out["backend"] == "pure"
    assert out["heavy"] == []
    assert isinstance(out["text"], str)


def test_cli_help_and_devices_need_no_heavy_packages():
    out = _run("""
        import io, contextlib
        from edge_sdk.cli import main
        buf = io.StringIO()
        with contextlib.redirect_stdout(buf):
            code = main(["devices", "--json"])
        try:
            with contextlib.redirect_stdout(io.StringIO()):
                main(["--help"])
        except SystemExit:
            pass
        heavy = sorted(n for n in sys.modules if n.split(".")[0] in BLOCKED)
        print(json.dumps({"code": code, "heavy": heavy, "profiles": len(json.loads(buf.getvalue()))}))
    """)
    assert out["code"] == 0 and out["heavy"] == [] and out["profiles"] >= 5


def test_export_without_the_extra_says_how_to_install(tmp_path):
    proc = subprocess.run([sys.executable, "-c", BLOCKER + "from edge_sdk.cli import main; sys.exit(main(['export', 'x', '-o', 'y']))"],
                          capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert proc.returncode == 2
    assert "pip install 'edge-sdk-llm[export]'" in proc.stderr
