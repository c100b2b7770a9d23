"""Every supported family from a GGUF written from a tiny random model (exporters/gguf/write.py, the layout
llama.cpp's converter writes): the export validates against transformers' model loaded from that GGUF,
its Q8_0 matrices are taken exactly, and `edge-sdk run` answers with the bundle."""
import subprocess
import sys

import pytest

pytest.importorskip("gguf")
pytest.importorskip("transformers")

from edge_sdk.exporters.architectures import SUPPORTED  # noqa: E402
from edge_sdk.exporters.gguf.write import write_model_gguf  # noqa: E402
from edge_sdk.exporters.testing import make_tiny_model_dir  # noqa: E402

# transformers reads no head_dim from a qwen3 GGUF and takes Qwen3Config's default, 128 (as every released
# Qwen3 has): the fake's 32 would not load.
GGUF_OVERRIDES = {"qwen3": {"head_dim": 128}}


@pytest.mark.parametrize("model_type", SUPPORTED)
def test_family_exports_from_its_gguf_and_runs(tmp_path, model_type):
    from edge_sdk.exporters.export import export

    src = make_tiny_model_dir(tmp_path / "hf", model_type, **GGUF_OVERRIDES.get(model_type, {}))
    (tmp_path / "gguf").mkdir()
    gguf_file = write_model_gguf(src, tmp_path / "gguf" / f"tiny-{model_type}.gguf", lambda name, w: "Q8_0")
    manifest = export(str(gguf_file), tmp_path / "bundle", max_context=128, progress=False)
    assert manifest["validation"]["passed"]
    assert manifest["architecture"]["model_type"] == model_type
    tensors = manifest["quantization"]["gguf_import"]["tensors"]
    assert tensors and all(e["exact"] and e["type"] == "Q8_0" for e in tensors.values())
    out = subprocess.run([sys.executable, "-m", "edge_sdk", "run", str(tmp_path / "bundle"), "--prompt", "the quick brown",
                          "--max-new-tokens", "8"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip(), "no reply"
