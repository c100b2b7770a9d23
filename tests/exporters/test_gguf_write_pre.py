"""Our GGUF writer names the pre-tokenizer as llama.cpp does, so llama.cpp loads the files it writes.

llama.cpp refuses a byte-level BPE vocabulary whose `tokenizer.ggml.pre` it does not know ("unknown
pre-tokenizer type: 'gpt2'": found running the issue-26 scale benchmark); its converter names the GPT-2 regex
"gpt-2". Our reader (exporters/gguf/tokenizer.py) must map that name too, or exporting such a file keeps
transformers' pre-tokenizer and says so. When llama-cpp-python is importable, llama.cpp itself loads the file."""
import importlib.util

import pytest

pytest.importorskip("gguf")
pytest.importorskip("transformers")

from edge_sdk.exporters.gguf.tokenizer import normalise_gguf_tokenizer  # noqa: E402
from edge_sdk.exporters.gguf.write import write_model_gguf  # noqa: E402
from edge_sdk.exporters.testing import make_tiny_model_dir  # noqa: E402


def written_pre(tmp_path) -> str:
    import gguf

    src = make_tiny_model_dir(tmp_path / "hf", "llama")
    path = write_model_gguf(src, tmp_path / "tiny.gguf", lambda name, w: "Q8_0")
    return gguf.GGUFReader(str(path)).fields["tokenizer.ggml.pre"].contents(), path, src


def test_writer_uses_llamacpps_pre_tokenizer_name_and_reader_maps_it(tmp_path):
    pre, _, src = written_pre(tmp_path)
    assert pre == "gpt-2"
    tokenizer_json = (src / "tokenizer.json").read_text()
    _, changes = normalise_gguf_tokenizer(tokenizer_json, {"tokenizer.ggml.model": "gpt2", "tokenizer.ggml.pre": pre})
    assert not any("unknown" in c for c in changes), changes


@pytest.mark.skipif(importlib.util.find_spec("llama_cpp") is None, reason="llama-cpp-python not installed here")
def test_llamacpp_loads_what_the_writer_writes(tmp_path):
    import llama_cpp as L

    _, path, _ = written_pre(tmp_path)
    L.llama_backend_init()
    model = L.llama_model_load_from_file(str(path).encode(), L.llama_model_default_params())
    assert model, "llama.cpp could not load the GGUF our writer wrote"
    L.llama_model_free(model)
