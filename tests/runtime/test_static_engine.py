"""StaticEngine host logic: windows, padding, masks and the host-owned KV buffer."""
from __future__ import annotations

import sys

import numpy as np
import pytest

from edge_sdk.errors import DeviceError

pytest.importorskip("onnx")
torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from edge_sdk.exporters.graph.static import export_static  # noqa: E402
from edge_sdk.runtime.static_engine import StaticEngine  # noqa: E402

CHUNK, CONTEXT = 4, 32


@pytest.fixture(scope="module")
def engine(tmp_path_factory):
    from edge_sdk.exporters.testing import random_hf_model

    args, model = random_hf_model("llama")
    d = tmp_path_factory.mktemp("static-engine")
    fragment = export_static(args, {k: v.numpy() for k, v in model.state_dict().items()}, d, CHUNK, CONTEXT)
    return StaticEngine(fragment, d)


def test_interface_and_shapes(engine):
    engine.reset()
    assert (engine.capacity, engine.offset) == (CONTEXT, 0)
    assert engine.forward([1, 2, 3, 4, 5, 6, 7], all_logits=True).shape == (7, 512)  # window + 3 padded
    assert engine.offset == 7
    assert engine.forward([8]).shape == (512,)
    with pytest.raises(ValueError):
        engine.forward([])
    with pytest.raises(ValueError):
        engine.rewind(9)


def test_window_split_is_invisible(engine):
    """Prefilling in windows (with a padded remainder and a 1-token tail) equals token-by-token decode."""
    ids = [5, 17, 3, 99, 42, 7, 8, 250, 11]  # 2 full windows + 1 token (decode graph)
    engine.reset()
    windowed = engine.forward(ids, all_logits=True)
    engine.reset()
    stepped = np.stack([engine.forward([t]) for t in ids])
    np.testing.assert_allclose(windowed, stepped, atol=1e-4)


def test_a_window_that_runs_past_the_end_of_the_context(engine):
    """The last prefill window of a nearly full cache has pad rows beyond the context: their positions
    must be clipped into the RoPE table (the rows are discarded) - and the result must not change."""
    ids = list(range(3, 3 + CONTEXT - 3))  # 29 tokens: the cache is nearly full
    tail = [7, 9]  # a 2-token prompt: a 4-row window at positions 29..32, one row past the table
    engine.reset()
    engine.forward(ids)
    windowed = engine.forward(tail, all_logits=True)
    engine.reset()
    for t in ids:
        engine.forward([t])
    stepped = np.stack([engine.forward([t]) for t in tail])
    np.testing.assert_allclose(windowed, stepped, atol=1e-4)
    assert engine.offset == CONTEXT - 1


def test_kv_buffer_written_at_offset_only(engine):
    engine.reset()
    engine.forward([1, 2, 3])
    _, _, buf = engine.slots[0]
    assert np.abs(buf[:, :, :3]).sum() > 0
    snapshot = buf.copy()
    engine.forward([4])
    assert np.array_equal(buf[:, :, :3], snapshot[:, :, :3])  # earlier entries untouched
    assert not np.array_equal(buf[:, :, 3], snapshot[:, :, 3])


def test_missing_qnn_is_a_device_error(monkeypatch):
    from edge_sdk.runtime import qnn

    monkeypatch.setitem(sys.modules, "onnxruntime_qnn", None)  # import now raises ImportError
    monkeypatch.setattr(qnn, "_registered", False)
    with pytest.raises(DeviceError, match="onnxruntime-qnn"):
        qnn.provider_options({})
    assert isinstance(qnn.is_available(), bool)  # may still be registered in this process; must not raise


def test_bundle_qnn_options_reach_the_qnn_session(engine, monkeypatch, tmp_path):
    """A bundle's qnn_options (fp16 for its float nodes) are applied on the QNN EP; the caller's win."""
    from edge_sdk.runtime import static_engine
    from edge_sdk.runtime.providers import SessionConfig

    seen = []
    monkeypatch.setattr(static_engine, "make_session", lambda path, config: seen.append(config))
    manifest = {"graph": {"files": {"prefill": "p.onnx", "decode": "d.onnx"}, "prefill_chunk": CHUNK,
                          "max_context": CONTEXT, "qnn_options": {"htp_arch": "75", "soc_model": "57"}},
                "kv_cache": {"num_layers": 1, "num_kv_heads": 1, "head_dim": 4, "past": "past.{layer}.{kind}",
                             "present": "present.{layer}.{kind}"}}
    StaticEngine(manifest, tmp_path, SessionConfig(providers=["QNNExecutionProvider"],
                                                   provider_options={"QNNExecutionProvider": {"soc_model": "69"}}))
    assert seen[0].provider_options["QNNExecutionProvider"] == {"htp_arch": "75", "soc_model": "69"}
    StaticEngine(manifest, tmp_path)  # CPU EP: untouched
    assert seen[-1].provider_options == {}


def test_fp16_options_from_profile_spelling():
    from edge_sdk.runtime.qnn import fp16_options

    assert fp16_options("v75", "SM8650") == {"htp_arch": "75", "soc_model": "57", "enable_htp_fp16_precision": "1"}
    assert fp16_options("v75", None) == {} and fp16_options("v75", "unknown-soc") == {}
