"""The quantized KV cache (`edge-sdk export --kv-cache int8|int4`): what onnxruntime's GroupQueryAttention
computes with it, the RoPE-aware key bound, the graph rewrite, and the runtime over it (tiny models)."""
from __future__ import annotations

import json
import shutil

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper

from edge_sdk.errors import BundleError, DeviceError, UnsupportedModelError
from edge_sdk.exporters.graph.kv_quant import Calibration, calibrate, key_bound, quantize_cache_io, scales
from edge_sdk.runtime.kv_cache import KV_FORMATS, check_supported

H, HK, D, C = 4, 2, 16, 32  # query heads, kv heads, head dim, cache capacity


def _gqa(bits: int | None):
    """One GroupQueryAttention over a packed-QKV input and a shared past/present buffer (as the fused graph)."""
    cache_t = {None: TensorProto.FLOAT, 8: TensorProto.INT8, 4: TensorProto.UINT8}[bits]
    stored = D // 2 if bits == 4 else D
    io = [helper.make_tensor_value_info("qkv", TensorProto.FLOAT, [1, "S", (H + 2 * HK) * D])]
    io += [helper.make_tensor_value_info(n, cache_t, [1, HK, C, stored]) for n in ("pk", "pv")]
    io += [helper.make_tensor_value_info("seqlens_k", TensorProto.INT32, [1]),
           helper.make_tensor_value_info("total", TensorProto.INT32, [])]
    extra, attrs = [], {}
    if bits:
        io += [helper.make_tensor_value_info(n, TensorProto.FLOAT, [1, HK, 1, D]) for n in ("k_scale", "v_scale")]
        extra = [""] * 5 + ["k_scale", "v_scale"]
        attrs = dict(k_quant_type="PER_CHANNEL", v_quant_type="PER_CHANNEL", kv_cache_bit_width=bits)
    node = helper.make_node("GroupQueryAttention", ["qkv", "", "", "pk", "pv", "seqlens_k", "total", *extra],
                            ["out", "ok", "ov"], domain="com.microsoft", num_heads=H, kv_num_heads=HK, **attrs)
    outs = [helper.make_tensor_value_info("out", TensorProto.FLOAT, [1, "S", H * D])]
    outs += [helper.make_tensor_value_info(n, cache_t, [1, HK, C, stored]) for n in ("ok", "ov")]
    model = helper.make_model(helper.make_graph([node], "gqa", io, outs),
                              opset_imports=[helper.make_opsetid("", 21), helper.make_opsetid("com.microsoft", 1)])
    model.ir_version = 10
    so = ort.SessionOptions()
    so.log_severity_level = 3
    return ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])


def _run(bits, q, k, v, ks=None, vs=None, steps=(12, 1, 1, 1, 1)):
    """Prefill then single steps through one in-place cache; returns (outputs [T, H*D], key buffer, value buffer)."""
    sess = _gqa(bits)
    dtype = {None: np.float32, 8: np.int8, 4: np.uint8}[bits]
    kb = np.zeros((1, HK, C, D // 2 if bits == 4 else D), dtype)
    vb = np.zeros_like(kb)
    kv = [ort.OrtValue.ortvalue_from_numpy(a) for a in (kb, vb)]
    out, off = [], 0
    for n in steps:
        rows = np.concatenate([x[:, off:off + n].transpose(1, 0, 2).reshape(n, -1) for x in (q, k, v)], -1)
        io = sess.io_binding()
        io.bind_output("out")
        io.bind_cpu_input("qkv", rows[None].astype(np.float32))
        io.bind_ortvalue_input("pk", kv[0])
        io.bind_ortvalue_input("pv", kv[1])
        io.bind_ortvalue_output("ok", kv[0])
        io.bind_ortvalue_output("ov", kv[1])
        io.bind_cpu_input("seqlens_k", np.array([off + n - 1], np.int32))
        io.bind_cpu_input("total", np.array(off + n, np.int32))
        if bits:
            io.bind_cpu_input("k_scale", ks)
            io.bind_cpu_input("v_scale", vs)
        sess.run_with_iobinding(io)
        out.append(io.get_outputs()[0].numpy()[0])
        off += n
    return np.concatenate(out), kb, vb


def _attention(q, k, v):
    """Causal grouped-query attention in float64: q [H, T, D], k v [HK, T, D] -> [T, H*D]."""
    T, group = q.shape[1], H // HK
    out = np.zeros((T, H, D))
    for h in range(H):
        s = q[h].astype(np.float64) @ k[h // group].T.astype(np.float64) / np.sqrt(D)
        s = np.where(np.tril(np.ones((T, T), bool)), s, -np.inf)
        p = np.exp(s - s.max(-1, keepdims=True))
        out[:, h] = (p / p.sum(-1, keepdims=True)) @ v[h // group]
    return out.reshape(T, H * D)


def _data(seed=0, spread=1.0):
    rng = np.random.default_rng(seed)
    chan = np.exp(rng.normal(0, 1, (HK, 1, D)))  # channels of very different ranges, as real keys have
    return (rng.normal(0, 1, (H, 16, D)), rng.normal(0, 1, (HK, 16, D)) * chan * spread, rng.normal(0, 1, (HK, 16, D)))


@pytest.mark.parametrize("bits", [8, 4])
@pytest.mark.parametrize("clip", [1.0, 3.0], ids=["in-range", "saturating"])
def test_onnxruntime_quantizes_the_cache_symmetric_per_channel_with_the_given_scales(bits, clip):
    """What the exporter relies on, in onnxruntime itself: codes round(x / scale) saturated at
    [-2^(b-1), 2^(b-1) - 1] (int4: + 8, two per byte, low nibble first), and attention - the prompt's own rows
    too - over the dequantized keys and values. A numpy model of that matches to float rounding."""
    q, k, v = _data()
    top = 2 ** (bits - 1) - 1
    ks = (np.abs(k).max(1, keepdims=True) / top / clip)[None].astype(np.float32)  # [1, HK, 1, D]
    vs = (np.abs(v).max(1, keepdims=True) / top / clip)[None].astype(np.float32)
    out, kb, _ = _run(bits, q, k, v, ks, vs)
    kq = np.clip(np.rint(k / ks[0]), -top - 1, top)
    vq = np.clip(np.rint(v / vs[0]), -top - 1, top)
    assert np.abs(out - _attention(q, kq * ks[0], vq * vs[0])).max() < 1e-5
    stored = kb[0, :, :16]
    if bits == 4:
        stored = np.stack([stored & 15, stored >> 4], -1).reshape(HK, 16, D).astype(np.int16) - 8
    np.testing.assert_array_equal(stored, kq)
    exact, _, _ = _run(None, q, k, v)
    assert np.abs(exact - _attention(q, k, v)).max() < 1e-5  # the float cache: exact attention
    if bits == 8 and clip == 1.0:  # an int8 cache in range stays close to exact attention
        assert np.abs(out - exact).max() < 0.05


def _rotate(keys, positions, inv_freq):
    """Non-interleaved RoPE of keys [heads, n, D] at positions [n] (as GroupQueryAttention applies it)."""
    half = len(inv_freq)
    a = positions[:, None] * inv_freq[None]
    c, s = np.cos(a), np.sin(a)
    x1, x2 = keys[..., :half], keys[..., half:2 * half]
    return np.concatenate([x1 * c - x2 * s, x2 * c + x1 * s, keys[..., 2 * half:]], -1)


def test_key_bound_covers_every_position_the_context_reaches():
    rng = np.random.default_rng(1)
    inv_freq = 1.0 / (10000.0 ** (np.arange(0, 12, 2) / 12))  # rotary_dim 12 of 16: 4 channels not rotated
    raw = rng.normal(0, 1, (2, 40, 16)) * np.exp(rng.normal(0, 1, (2, 1, 16)))
    capacity = 512
    seen = _rotate(raw, np.arange(40), inv_freq)  # calibration saw positions 0..39 only
    bound = key_bound(seen, np.arange(40), inv_freq, capacity)
    anywhere = _rotate(raw, rng.integers(0, capacity, 40).astype(float), inv_freq)
    later = np.stack([np.abs(_rotate(raw, np.full(40, float(p)), inv_freq)).max(1) for p in range(0, capacity, 7)])
    limit = bound * (1 + 3e-4)  # the sweep samples 129 angles: off by at most (pi/128)^2/2 of the pair's norm
    assert (np.abs(anywhere).max(1) <= limit).all() and (later <= limit).all()
    assert (bound > np.abs(seen).max(1) + 1e-6).any()  # positions calibration never saw reach further
    pair = np.sqrt(raw[..., :6] ** 2 + raw[..., 6:12] ** 2).max(1)  # what a full turn would reach
    slow = (capacity - 1) * inv_freq < np.pi / 2
    assert slow.any() and (bound[:, :6][:, slow] < pair[:, slow] - 1e-6).any()  # slow pairs: tighter than that
    np.testing.assert_allclose(bound[:, 12:], np.abs(raw[..., 12:]).max(1))  # unrotated channels: their own max


def _quantized_copy(tiny_bundle, tmp_path, fmt: str):
    """The tiny fp32 bundle with its cache in `fmt`, made by the exporter's own calibrate + rewrite."""
    from edge_sdk.exporters.bundle import write_manifest
    from edge_sdk.exporters.graph.kv_quant import manifest_section
    from edge_sdk.runtime.bundle import read_manifest

    dst = tmp_path / f"tiny-{fmt}"
    shutil.copytree(tiny_bundle, dst)
    manifest = read_manifest(dst)
    arch = manifest["architecture"]
    head_dim = manifest["kv_cache"]["head_dim"]
    inv = 1.0 / (float(arch["rope_theta"]) ** (np.arange(0, head_dim, 2) / head_dim))
    rng = np.random.default_rng(0)
    cal = calibrate(dst, manifest, arch["vocab_size"], [inv] * manifest["kv_cache"]["num_layers"],
                    [rng.integers(3, arch["vocab_size"], 40).tolist() for _ in range(3)])
    path = dst / manifest["graph"]["files"]["decoder"]
    onnx.save_model(quantize_cache_io(onnx.load(str(path), load_external_data=False), cal, fmt), str(path))
    manifest["kv_cache"].update(manifest_section(fmt, cal))
    write_manifest(dst, manifest)
    return dst, cal


@pytest.mark.parametrize("fmt", ["int8", "int4"])
def test_a_quantized_cache_is_written_in_place_and_rewinds_in_o1(tiny_bundle, tmp_path, fmt):
    import edge_sdk

    bundle, _ = _quantized_copy(tiny_bundle, tmp_path, fmt)
    model = edge_sdk.load(bundle)
    cache = model.engine.cache
    kind = KV_FORMATS[fmt]
    head_dim = model.manifest["kv_cache"]["head_dim"]
    assert all(a.dtype == np.dtype(kind.dtype) and a.shape[-1] == head_dim // kind.values_per_element
               for a in cache._arrays)
    assert cache.nbytes * (4 // np.dtype(kind.dtype).itemsize) * kind.values_per_element == \
        2 * cache.capacity * model.manifest["kv_cache"]["num_layers"] * model.manifest["kv_cache"]["num_kv_heads"] * head_dim * 4
    ids = model.encode_prompt("hello there, how are you")
    pointers = [s[2].data_ptr() for s in cache.slots]
    first = model.engine.forward(ids, all_logits=True)
    steps = [model.engine.forward([t]) for t in (5, 6, 7)]
    assert any(a[:, :, :len(ids)].any() for a in cache._arrays)  # the graph wrote into our buffers
    assert [s[2].data_ptr() for s in cache.slots] == pointers
    model.engine.rewind(3)  # O(1): the stale entries are overwritten by the next pass
    again = [model.engine.forward([t]) for t in (5, 6, 7)]
    np.testing.assert_array_equal(np.stack(steps), np.stack(again))
    model.decoder.reset()
    np.testing.assert_array_equal(model.engine.forward(ids, all_logits=True), first)
    exact = edge_sdk.load(tiny_bundle).engine.forward(ids, all_logits=True)
    agree = (exact.argmax(-1) == first.argmax(-1)).mean()
    cos = (exact * first).sum(-1) / np.linalg.norm(exact, axis=-1) / np.linalg.norm(first, axis=-1)
    if fmt == "int8":  # close to the float cache; int4's 16 levels are not (measured: docs/benchmarks.md)
        assert agree >= 0.9 and cos.min() > 0.99, (agree, cos.min())
    else:
        assert cos.min() > 0.5 and not np.array_equal(exact, first)


def test_the_rewrite_gives_every_attention_its_own_scales_and_types(tiny_bundle, tmp_path):
    bundle, cal = _quantized_copy(tiny_bundle, tmp_path, "int4")
    model = onnx.load(str(bundle / "model.onnx"), load_external_data=False)
    inits = {t.name: onnx.numpy_helper.to_array(t) for t in model.graph.initializer if "kv_cache" in t.name}
    nodes = [n for n in model.graph.node if n.op_type == "GroupQueryAttention"]
    assert len(nodes) == cal.keys.shape[0] and len(inits) == 2 * len(nodes)
    for layer, node in enumerate(nodes):
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        assert attrs["kv_cache_bit_width"] == 4 and attrs["k_quant_type"] == attrs["v_quant_type"] == b"PER_CHANNEL"
        k, v = inits[node.input[12]], inits[node.input[13]]
        np.testing.assert_allclose(k[0, :, 0], scales(cal.keys[layer], 4))
        np.testing.assert_allclose(v[0, :, 0], cal.values[layer] / 7, rtol=1e-6)
    caches = [x for x in list(model.graph.input) + list(model.graph.output) if "key" in x.name or "value" in x.name]
    assert caches and all(x.type.tensor_type.elem_type == TensorProto.UINT8 for x in caches)
    assert all(x.type.tensor_type.shape.dim[3].dim_value == cal.keys.shape[2] // 2 for x in caches)


def test_manifest_kv_format_is_checked(tiny_bundle, tmp_path):
    import edge_sdk
    from edge_sdk.exporters.bundle import write_manifest

    for change, field in ((dict(format="int8"), "kv_cache.dtype"),  # int8 needs dtype int8
                          (dict(format="int16", dtype="int8"), "kv_cache.format"),
                          (dict(format="int4", dtype="uint8", head_dim=15), "kv_cache.head_dim")):
        d = tmp_path / f"b{len(list(tmp_path.iterdir()))}"
        shutil.copytree(tiny_bundle, d)
        m = json.loads((d / "edge_manifest.json").read_text())
        m["kv_cache"].update(change)
        write_manifest(d, m)
        with pytest.raises(BundleError, match=field.replace(".", r"\.")):
            edge_sdk.load(d)


def test_an_older_onnxruntime_is_refused_with_the_fix():
    kv = {"format": "int8", "dtype": "int8"}
    with pytest.raises(DeviceError, match=r"needs onnxruntime >= 1\.32.*--kv-cache float"):
        check_supported(kv, "1.31.2")
    check_supported(kv, "1.32.0")
    check_supported({"dtype": "float32"}, "1.20.0")  # a float cache runs anywhere


def test_profiles_choose_the_format_and_the_static_flavour_cannot():
    from edge_sdk.devices import KV_CACHES, load_profile, validate_profile
    from edge_sdk.exporters.export import _kv_format

    assert set(KV_CACHES) == set(KV_FORMATS)
    laptop = load_profile("x86-64-laptop")
    assert _kv_format(None, laptop) == (laptop.kv_cache or "float")
    assert _kv_format("int8", laptop) == "int8"
    with pytest.raises(UnsupportedModelError, match="fused"):
        _kv_format("int8", load_profile("snapdragon-8-gen3"))
    with pytest.raises(UnsupportedModelError, match="unknown KV-cache format"):
        _kv_format("fp8", laptop)
    data = load_profile("snapdragon-8-gen3").to_dict()
    data["kv_cache"] = "int8"
    data["reasons"]["kv_cache"] = "smaller"
    with pytest.raises(DeviceError, match="kv_cache"):
        validate_profile(data)


def test_export_writes_the_format_and_validates_it(tiny_model_dir, tmp_path):
    """The whole path once: --kv-cache int8 through export, its manifest, and validation against transformers."""
    from edge_sdk.cli import main

    out = tmp_path / "int8"
    assert main(["export", str(tiny_model_dir), "--output", str(out), "--recipe", "fp32", "--max-context", "128",
                 "--kv-cache", "int8", "--quiet"]) == 0
    m = json.loads((out / "edge_manifest.json").read_text())
    assert m["kv_cache"]["format"] == "int8" and m["kv_cache"]["dtype"] == "int8"
    assert m["kv_cache"]["quantization"]["calibration_tokens"] > 100
    checks = {c["name"]: c for c in m["validation"]["checks"]}
    assert checks["perplexity"]["passed"] and checks["perplexity"]["figures"]["bound"] == pytest.approx(0.011)
    assert checks["logits"]["figures"]["tolerance"] is None  # held to agreement, not fp32 logits


def test_a_profile_s_kv_cache_is_the_export_default_and_kv_cache_float_overrides_it(tiny_model_dir, tmp_path):
    """A profile that sets kv_cache (a user's board file) quantizes the cache unless the command line says float."""
    from edge_sdk.cli import main
    from edge_sdk.devices import load_profile

    data = load_profile("android-midrange").to_dict() | {"name": "int8-phone", "kv_cache": "int8"}
    data["reasons"]["kv_cache"] = "a quarter of the float cache's memory"
    profile = tmp_path / "int8-phone.json"
    profile.write_text(json.dumps({k: v for k, v in data.items() if v is not None}))
    for fmt in (None, "float"):
        out = tmp_path / f"phone-{fmt}"
        args = ["export", str(tiny_model_dir), "--output", str(out), "--device", str(profile), "--recipe", "fp32",
                "--max-context", "128", "--quiet"]
        assert main(args + (["--kv-cache", fmt] if fmt else [])) == 0
        kv = json.loads((out / "edge_manifest.json").read_text())["kv_cache"]
        assert (kv.get("format", "float"), kv["dtype"]) == (("int8", "int8") if fmt is None else ("float", "float32"))
