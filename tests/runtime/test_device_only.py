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
    from edge_sdk import install_hint

    assert install_hint("export") in proc.stderr and "[export]" in proc.stderr


def test_embed_index_and_ask_without_heavy_packages(tiny_bundle, tiny_embedder_bundle, tmp_path):
    """The RAG path on the device: embedder bundle, SQLite index, grounded answer - pure tokenizer, no torch."""
    doc = tmp_path / "notes.md"
    doc.write_text("# Notes\n\nThe spare key is under the blue flowerpot.\n\nThe wifi password is on the fridge.\n")
    out = _run(f"""
        import edge_sdk
        from edge_sdk.rag import Index, ask
        emb = edge_sdk.load({str(tiny_embedder_bundle)!r}, threads=1)
        vectors = emb.embed(["hello", "world"])
        with Index.open({str(tmp_path / "x.index")!r}, emb, create=True) as index:
            report = index.add([{str(doc)!r}])
            model = edge_sdk.load({str(tiny_bundle)!r}, threads=1)
            answer = ask(model, index, "where is the key?", k=1, max_new_tokens=4)
        heavy = sorted(n for n in sys.modules if n.split(".")[0] in BLOCKED)
        print(json.dumps({{"shape": list(vectors.shape), "backend": emb.tokenizer.backend, "added": len(report.added),
                           "sources": len(answer.sources), "heavy": heavy}}))
    """)
    assert out["heavy"] == [] and out["backend"] == "pure"
    assert out["shape"] == [2, 64] and out["added"] == 1 and out["sources"] == 1
