"""`edge-sdk adapter merge` against PEFT's add_weighted_adapter: the same adapters, weights and combination type
give the same fp32 logits (<= 1e-3) on a tiny random llama, adapters of different ranks included (cat).

dare_linear drops entries at random with torch's generator, which numpy cannot replay: it is compared with
PEFT at density 1 (no drop: exact), and at density 0.5 checked statistically (the kept fraction, and the mean
over seeds converging to the undropped combination, which DARE's 1/density rescale promises).
"""
from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")
peft = pytest.importorskip("peft")

import edge_sdk  # noqa: E402
from edge_sdk.exporters.adapters.combine import combine, merge_adapters, unpack  # noqa: E402
from edge_sdk.exporters.export import export  # noqa: E402
from edge_sdk.exporters.testing import make_tiny_model_dir  # noqa: E402
from edge_sdk.runtime.bundle import read_manifest  # noqa: E402

from .test_adapters import IDS, _reference, make_adapter  # noqa: E402

ALL = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("merge")
    base = make_tiny_model_dir(root / "tiny-llama")
    adapters = {
        "one": make_adapter(base, root / "one", seed=1),  # r 8, alpha 16, every target
        "two": make_adapter(base, root / "two", seed=2, r=8, lora_alpha=4, use_rslora=True,
                            target_modules=["q_proj", "v_proj", "down_proj"]),
        "four": make_adapter(base, root / "four", seed=3, r=4, lora_alpha=8, target_modules=["k_proj", "up_proj"]),
        # (a run-time adapter has one rank: the manifest refuses a rank list; alpha patterns are per module)
        "pat": make_adapter(base, root / "pat", seed=4, r=8, alpha_pattern={"v_proj": 3, "down_proj": 40},
                            target_modules=["q_proj", "v_proj", "down_proj"]),
    }
    bundle = root / "bundle"
    export(str(base), bundle, recipe="fp32", adapters={k: str(v) for k, v in adapters.items()}, progress=False,
           validate=False)
    return {"root": root, "base": base, "bundle": bundle, **adapters}


def _peft(setup, names):
    from transformers import AutoModelForCausalLM

    model = peft.PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(setup["base"]), str(setup[names[0]]),
                                           adapter_name=names[0])
    for n in names[1:]:
        model.load_adapter(str(setup[n]), adapter_name=n)
    return model.eval()


def _ours(bundle, name):
    model = edge_sdk.load(bundle)
    model.adapter = name
    model.decoder.reset()
    return model.engine.forward(IDS, all_logits=True)


CASES = [
    ("linear", [("one", 0.7), ("two", -0.4)], {}),
    ("linear", [("two", 1.5)], {}),  # one adapter: scaled; rsLoRA first: the merged scale is still 1
    ("cat", [("one", 0.6), ("four", 1.3), ("two", 0.5)], {}),  # ranks 8, 4, 8: cat takes different ranks
    ("cat", [("two", 1.0), ("pat", -0.8)], {}),  # rsLoRA first; alpha patterns
    ("ties", [("one", 0.9), ("two", 0.6)], {"density": 0.5}),
    ("ties", [("one", 0.9), ("two", -0.6)], {"density": 0.3, "majority_sign": "frequency"}),
    ("dare_linear", [("one", 0.8), ("two", 0.5)], {"density": 1.0}),  # no drop: PEFT's randomness not involved
]


@pytest.mark.parametrize("method,parts,options", CASES,
                         ids=[f"{m}-{'+'.join(a for a, _ in p)}{'-freq' if o.get('majority_sign') else ''}"
                              for m, p, o in CASES])
def test_merging_matches_peft(setup, tmp_path, method, parts, options):
    import shutil

    bundle = tmp_path / "bundle"
    shutil.copytree(setup["bundle"], bundle)
    entry = merge_adapters(bundle, "mix", parts, method, **options)
    ours = _ours(bundle, "mix")
    model = _peft(setup, [a for a, _ in parts])
    model.add_weighted_adapter([a for a, _ in parts], [w for _, w in parts], "mix", combination_type=method,
                               density=options.get("density"),
                               majority_sign_method=options.get("majority_sign", "total"))
    model.set_adapter("mix")
    ref = _reference(model, IDS)
    assert np.abs(ours - ref).max() <= 1e-3
    model.set_adapter(parts[0][0])
    assert np.abs(ours - _reference(model, IDS)).max() > 1e-2  # the comparison can tell adapters apart
    assert entry["merged_from"]["method"] == method
    assert entry["merged_from"]["from"] == [{"adapter": a, "weight": w} for a, w in parts]
    assert read_manifest(bundle, verify=True)["lora"]["adapters"]["mix"]["merged_from"] == entry["merged_from"]


def test_one_adapter_merged_alone_is_its_update_times_the_weight(setup, tmp_path):
    # Needs no PEFT: B A s of the merge must be w B_i A_i s_i. rsLoRA adapter "two" (scale 4/sqrt(8)) is the one
    # that PEFT before 0.22 merged sqrt(r) too strong.
    import shutil

    bundle = tmp_path / "bundle"
    shutil.copytree(setup["bundle"], bundle)
    merge_adapters(bundle, "mix", [("two", 1.5)], "linear")
    manifest = read_manifest(bundle)
    source, merged = unpack(bundle, manifest, "two"), unpack(bundle, manifest, "mix")
    assert set(merged) == set(source)
    for module, (a, b, s) in source.items():
        ma, mb, ms = merged[module]
        assert ms == pytest.approx(1.0)
        np.testing.assert_allclose(mb @ ma * ms, 1.5 * (b @ a * s), rtol=1e-4, atol=1e-6)


def test_unpacking_gives_back_the_peft_matrices(setup):
    from edge_sdk.exporters.adapters.peft_lora import read_adapter

    manifest = read_manifest(setup["bundle"])
    for name in ("one", "two", "four", "pat"):
        got = unpack(setup["bundle"], manifest, name)
        want = read_adapter(setup[name]).modules
        assert set(got) == {w[:-len(".weight")] for w in want}
        for w, m in want.items():
            a, b, s = got[w[:-len(".weight")]]
            assert s == pytest.approx(m.scale) and np.allclose(a, m.a, atol=1e-6) and np.allclose(b, m.b, atol=1e-5)


def test_dare_drops_at_random_and_keeps_the_expectation(setup):
    manifest = read_manifest(setup["bundle"])
    parts = [(unpack(setup["bundle"], manifest, "one"), 0.8), (unpack(setup["bundle"], manifest, "two"), 0.5)]
    module = "model.layers.0.self_attn.q_proj"
    exact, _ = combine(parts, [8, 8], "linear")
    runs = [combine(parts, [8, 8], "dare_linear", density=0.5, rng=np.random.default_rng(seed))[0][module]
            for seed in range(200)]
    a_exact = exact[module][0].astype(np.float64)
    one = runs[0][0]
    kept = np.mean([np.count_nonzero(one) / one.size])  # both sources dropped independently: ~1 - 0.5 ** 2 nonzero
    assert 0.70 <= kept <= 0.80
    mean = np.mean([r[0] for r in runs], axis=0)
    # the mean of 200 draws is unbiased: its error shrinks like 1/sqrt(200) of one draw's
    one_error = np.abs(runs[0][0] - a_exact).mean()
    assert np.abs(mean - a_exact).mean() < one_error / 5
    assert not np.allclose(runs[0][0], runs[1][0])  # the seed matters
    again = combine(parts, [8, 8], "dare_linear", density=0.5, rng=np.random.default_rng(0))[0][module]
    assert np.array_equal(again[0], runs[0][0])  # and reproduces


@pytest.mark.parametrize("method,parts,options,message", [
    ("linear", [("one", 1.0), ("four", 1.0)], {}, "one rank"),
    ("ties", [("one", 1.0), ("two", 1.0)], {}, "needs a density"),
    ("dare_linear", [("one", 1.0), ("two", 1.0)], {"density": 1.5}, "needs a density"),
    ("svd", [("one", 1.0), ("two", 1.0)], {}, "must be one of"),
    ("cat", [("one", 1.0), ("nope", 1.0)], {}, "has no adapter 'nope'"),
])
def test_what_cannot_be_merged_is_refused_and_nothing_written(setup, tmp_path, method, parts, options, message):
    import shutil

    bundle = tmp_path / "bundle"
    shutil.copytree(setup["bundle"], bundle)
    before = (bundle / "edge_manifest.json").read_bytes()
    with pytest.raises(Exception, match=message):
        merge_adapters(bundle, "mix", parts, method, **options)
    assert (bundle / "edge_manifest.json").read_bytes() == before and not (bundle / "adapters" / "mix.npz").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bundle"]  # no temporary folder left behind


def test_cli_merge_and_save(setup, tmp_path, capsys):
    import shutil

    from edge_sdk.cli import main

    bundle = tmp_path / "bundle"
    shutil.copytree(setup["bundle"], bundle)
    assert main(["adapter", "merge", str(bundle), "mix", "--from", "one:0.5", "four:2", "--method", "cat",
                 "--save", str(tmp_path / "mix-peft")]) == 0
    assert "mix" in capsys.readouterr().out
    config = json.loads((tmp_path / "mix-peft" / "adapter_config.json").read_text())
    assert config["r"] == config["lora_alpha"] == 12
    assert main(["adapter", "merge", str(bundle), "mix", "--from", "one:0.5"]) != 0  # exists: --force
    assert "already has an adapter" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        main(["adapter", "merge", str(bundle), "mix2", "--from", "one"])
    assert e.value.code == 2 and "NAME:WEIGHT" in capsys.readouterr().err
    assert main(["adapter", "merge", str(bundle), "mix2", "--from", "one:1", "four:1", "--method", "linear"]) == 2
    assert "one rank" in capsys.readouterr().err


def test_save_never_writes_into_a_folder_of_the_users_files(setup, tmp_path, capsys):
    import shutil

    from edge_sdk.cli import main

    bundle = tmp_path / "bundle"
    shutil.copytree(setup["bundle"], bundle)
    mine = tmp_path / "my-adapter"
    shutil.copytree(setup["one"], mine)  # the user's own PEFT folder: same file names as a merge writes
    before = {p.name: p.read_bytes() for p in mine.iterdir()}
    manifest = (bundle / "edge_manifest.json").read_bytes()
    for force in ([], ["--force"]):
        assert main(["adapter", "merge", str(bundle), "mix", "--from", "one:0.5", "--save", str(mine), *force]) == 2
        assert "will not be replaced" in capsys.readouterr().err
        assert {p.name: p.read_bytes() for p in mine.iterdir()} == before
        assert (bundle / "edge_manifest.json").read_bytes() == manifest  # refused before any work

    saved = tmp_path / "mix-peft"
    assert main(["adapter", "merge", str(bundle), "mix", "--from", "one:0.5", "--save", str(saved)]) == 0
    first = (saved / "adapter_model.safetensors").read_bytes()
    # a second merge into the same folder: refused without --force, replaced with it
    assert main(["adapter", "merge", str(bundle), "mix2", "--from", "one:2", "--save", str(saved)]) == 2
    assert "already exists" in capsys.readouterr().err and "mix2" not in read_manifest(bundle)["lora"]["adapters"]
    assert main(["adapter", "merge", str(bundle), "mix2", "--from", "one:2", "--save", str(saved), "--force"]) == 0
    assert (saved / "adapter_model.safetensors").read_bytes() != first
    # an add the bundle refuses (the name exists, no --force) publishes no saved folder either
    assert main(["adapter", "merge", str(bundle), "mix", "--from", "one:1", "--save", str(tmp_path / "new")]) != 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bundle", "mix-peft", "my-adapter"]


@pytest.mark.parametrize("method,density,sign", [("linear", None, "total"), ("ties", 0.4, "total"),
                                                 ("ties", 0.4, "frequency"), ("ties", 1.0, "total")])
def test_the_combination_functions_equal_peft_merge_utils(method, density, sign):
    """Our numpy _task against peft.utils.merge_utils on random tensors, weights of both signs."""
    from peft.utils import merge_utils

    from edge_sdk.exporters.adapters.combine import _task

    rng = np.random.default_rng(5)
    tensors = [rng.standard_normal((8, 64)).astype(np.float32) for _ in range(3)]
    weights = np.array([0.9, -0.6, 0.3])
    ours = _task(method, tensors, weights, density, sign, rng)
    torch_tensors, torch_weights = [torch.from_numpy(t) for t in tensors], torch.tensor(weights, dtype=torch.float32)
    if method == "linear":
        ref = merge_utils.task_arithmetic(torch_tensors, torch_weights)
    else:
        ref = merge_utils.ties(torch_tensors, torch_weights, density, sign)
    assert np.abs(ours - ref.numpy()).max() <= 1e-5
