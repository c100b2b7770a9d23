"""Bundles are untrusted input: every probe that once read outside a bundle, loaded unverified data,
changed behaviour silently or asked for absurd resources is refused with a BundleError naming the field.

Each test edits a copy of the tiny bundle the way a hostile or broken bundle would be made.
"""
from __future__ import annotations

import json
import os
import shutil

import pytest

import edge_sdk
from edge_sdk.errors import BundleError
from edge_sdk.runtime.bundle import read_manifest


@pytest.fixture
def bundle(tiny_bundle, tmp_path):
    b = tmp_path / "bundle"
    shutil.copytree(tiny_bundle, b)
    return b


def _edit(bundle, change):
    path = bundle / "edge_manifest.json"
    m = json.loads(path.read_text())
    change(m)
    path.write_text(json.dumps(m))


def _refused(bundle, *words):
    with pytest.raises(BundleError) as e:
        edge_sdk.load(bundle)
    for w in words:
        assert w in str(e.value), str(e.value)
    return str(e.value)


def test_the_untouched_copy_loads(bundle):
    assert edge_sdk.load(bundle).generate("hi", max_new_tokens=2) is not None


# -- files outside the bundle, unlisted or unverified -------------------------------------------------

def test_absolute_chat_template_path(bundle):
    _edit(bundle, lambda m: m["chat_template"].update(file="/etc/hostname"))
    _refused(bundle, "chat_template.file", "/etc/hostname", "not a plain file name")


def test_chat_template_symlink_to_the_environment(bundle):
    (bundle / "chat_template.jinja").unlink()
    os.symlink("/proc/self/environ", bundle / "chat_template.jinja")
    _refused(bundle, "chat_template.jinja", "symbolic link")


def test_unlisted_symlink_to_dev_zero(bundle):
    os.symlink("/dev/zero", bundle / "extra.jinja")
    _edit(bundle, lambda m: m["chat_template"].update(file="extra.jinja"))
    _refused(bundle, "extra.jinja", "not listed")


@pytest.mark.parametrize("how", ["..", "absolute"])
def test_graph_outside_the_bundle(bundle, tmp_path, how):
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    shutil.copy(bundle / "model.onnx", outside / "model.onnx")
    path = "../elsewhere/model.onnx" if how == ".." else str(outside / "model.onnx")
    _edit(bundle, lambda m: m["graph"]["files"].update(decoder=path))
    _refused(bundle, "graph.files.decoder", "not a plain file name")


@pytest.mark.parametrize("field", ["compact_file", "file"])
def test_a_tokenizer_file_that_is_a_symlink_to_dev_zero(bundle, field):
    """Issue 11's /dev/zero probe through the tokenizer's files (the compact copy came later)."""
    os.symlink("/dev/zero", bundle / "zero.bin")
    _edit(bundle, lambda m: m["tokenizer"].update({field: "zero.bin"}))
    _refused(bundle, "zero.bin")


def test_empty_file_table_verifies_nothing(bundle):
    _edit(bundle, lambda m: m.update(files={}))
    _refused(bundle, "'files'", "nothing could be verified")


def test_a_listed_file_behind_a_symlinked_folder(bundle, tmp_path):
    real = tmp_path / "real"
    real.mkdir()
    shutil.move(str(bundle / "tokenizer.json"), real / "tokenizer.json")
    os.symlink(real, bundle / "sub")
    _edit(bundle, lambda m: (m["tokenizer"].update(file="sub/tokenizer.json"),
                             m["files"].update({"sub/tokenizer.json": m["files"].pop("tokenizer.json")})))
    _refused(bundle, "sub/tokenizer.json", "symbolic link")


def test_graph_external_data_must_be_a_listed_file(bundle, tmp_path):
    onnx = pytest.importorskip("onnx")
    from edge_sdk.runtime.bundle import sha256_file

    model = onnx.load(str(bundle / "model.onnx"), load_external_data=False)
    tensor = next(t for t in model.graph.initializer if t.data_location == onnx.TensorProto.EXTERNAL)
    for entry in tensor.external_data:
        if entry.key == "location":
            entry.value = "stolen.bin"
    shutil.copy(bundle / "model.onnx.data", bundle / "stolen.bin")  # inside the folder, but never verified
    onnx.save(model, str(bundle / "model.onnx"))
    size, digest = (bundle / "model.onnx").stat().st_size, sha256_file(bundle / "model.onnx")
    _edit(bundle, lambda m: m["files"]["model.onnx"].update(bytes=size, sha256=digest))
    _refused(bundle, "model.onnx", "'stolen.bin'", "not a listed file")


# -- the manifest itself ------------------------------------------------------------------------------

@pytest.mark.parametrize("text, words", [
    ("{not json", ["not valid JSON"]),
    ('{"format": "edge-bundle", "schema_version": 1, "x": NaN}', ["NaN"]),
    ("[1, 2]", ["JSON object"]),
    ('{"format": "something", "schema_version": 1}', ["'format'", "'something'"]),
    ('{"format": "edge-bundle", "schema_version": 2}', ["schema_version 2"]),
    ('{"format": "edge-bundle", "schema_version": true}', ["schema_version"]),
    ('{"format": "edge-bundle", "schema_version": 1}', ["missing sections", "architecture"]),
])
def test_malformed_manifests(bundle, text, words):
    (bundle / "edge_manifest.json").write_text(text)
    _refused(bundle, *words)


def test_manifest_that_is_a_symlink(bundle, tmp_path):
    shutil.move(str(bundle / "edge_manifest.json"), tmp_path / "m.json")
    os.symlink(tmp_path / "m.json", bundle / "edge_manifest.json")
    _refused(bundle, "not a regular file")


def test_truncated_and_modified_files(bundle):
    data = (bundle / "tokenizer.json").read_bytes()
    (bundle / "tokenizer.json").write_bytes(data[:-10])
    _refused(bundle, "tokenizer.json", f"has {len(data) - 10} bytes")
    (bundle / "tokenizer.json").write_bytes(data[:-10] + b" " * 10)
    _refused(bundle, "tokenizer.json", "does not match its sha256")


@pytest.mark.parametrize("field, change, words", [
    ("eos as a string", lambda m: m["tokenizer"].update(eos_token_ids="2"), ["tokenizer.eos_token_ids"]),
    ("eos out of the vocabulary", lambda m: m["tokenizer"].update(eos_token_ids=[10**9]), ["tokenizer.eos_token_ids"]),
    ("no eos", lambda m: m["tokenizer"].update(eos_token_ids=[]), ["tokenizer.eos_token_ids"]),
    ("300 threads", lambda m: m["device"].update(threads=300), ["device.threads", "1 to 64"]),
    ("threads as true", lambda m: m["device"].update(threads=True), ["device.threads"]),
    ("a huge context", lambda m: m["graph"].update(max_context=10**9), ["graph.max_context"]),
    ("a huge KV cache", lambda m: m["kv_cache"].update(num_layers=500, num_kv_heads=1000, head_dim=1000),
     ["graph.max_context", "GiB"]),
    ("vocab as float", lambda m: m["architecture"].update(vocab_size=1.5), ["architecture.vocab_size"]),
    ("format-string attack on KV names", lambda m: m["kv_cache"].update(past="{layer.__class__}{kind}"),
     ["kv_cache.past"]),
    ("padding attack on KV names", lambda m: m["kv_cache"].update(past="{layer:>999999999}{kind}"), ["kv_cache.past"]),
    ("unknown flavour", lambda m: m["graph"].update(flavour="turbo"), ["graph.flavour"]),
    ("unknown provider", lambda m: m["device"].update(execution_providers=["EvilExecutionProvider"]),
     ["device.execution_providers"]),
    ("QNN library path from a bundle", lambda m: m["device"].update(
        provider_options={"QNNExecutionProvider": {"backend_path": "/tmp/evil.so"}}),
     ["device.provider_options.QNNExecutionProvider.backend_path", "not an option a bundle may set"]),
    ("temperature as text", lambda m: m["generation"].update(temperature="hot"), ["generation.temperature"]),
    ("negative max_new_tokens", lambda m: m["generation"].update(max_new_tokens=-1), ["generation.max_new_tokens"]),
    ("tokenizer file missing", lambda m: m["tokenizer"].pop("file"), ["tokenizer.file", "missing"]),
    ("section of the wrong kind", lambda m: m.update(device=[]), ["'device'", "JSON object"]),
    ("file entry without a hash", lambda m: m["files"]["tokenizer.json"].pop("sha256"), ["files['tokenizer.json']"]),
    # Names the CLI prints: no terminal escapes (issue 24)
    ("a name with an escape", lambda m: m.update(name="tiny\x1b]0;pwned\x07"), ["manifest.name", "control characters"]),
    ("a recipe with a bidi override", lambda m: m["quantization"].update(recipe="int4\u202e"), ["quantization.recipe"]),
    ("a profile of two lines", lambda m: m["device"].update(profile="pi\nfake line"), ["device.profile"]),
    # Default stop strings within the runtime's limits (else every generate would fail)
    ("17 stop strings", lambda m: m["generation"].update(stop=[str(i) for i in range(17)]),
     ["generation.stop", "up to 16"]),
    ("a stop string of 1025 characters", lambda m: m["generation"].update(stop=["x" * 1025]), ["generation.stop"]),
])
def test_schema_names_the_field(bundle, field, change, words):
    _edit(bundle, change)
    _refused(bundle, *words)


def test_qnn_backend_path_in_a_static_graph_section_is_refused(bundle):
    def static(m):
        m["graph"].update(flavour="static", files={"prefill": "model.onnx", "decode": "model.onnx"}, prefill_chunk=8, inputs={},
                          qnn_options={"backend_path": "/tmp/evil.so"})
    _edit(bundle, static)
    _refused(bundle, "graph.qnn_options", "backend_path")


def test_read_manifest_without_hashing_still_confines(bundle):
    _edit(bundle, lambda m: m["tokenizer"].update(file="../../etc/passwd"))
    with pytest.raises(BundleError, match="tokenizer.file"):
        read_manifest(bundle, verify=False)
