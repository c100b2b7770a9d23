"""A linux-aarch64 device build, proven on an emulated arm64 CPU (qemu user-mode, Debian's arm64 Python 3.11).

The build is made by `edge-sdk package` on the host, unpacked from its .tar.gz, installed by its own
install.sh and run by its own run.sh, all by the emulated Python (scripts/emulate_arm64.py makes the shared
`pi` build of conftest.py; test_emulate_script.py checks its run.sh answer); then its answers and logits
are compared with this x86-64 host's on the same token ids:
- the fp32 bundle: logits within 1e-3 (x86 and arm64 kernels differ in rounding only);
- the default bundle (int4-b32-a32: int4 weights, fp32 activations in the layers, the head's top logits
  recomputed from fp32 activations): "Paris", the same greedy token at every position and the top logits
  within 1e-2 of x86's; the same int4 graph with fp32 activations in the head too must match x86 to cosine
  0.9999 (x86 and arm64 quantize activations to int8 in different kernels: only the head's other logits do).
- the build is made `--structured` (llguidance's aarch64 wheel): one schema-constrained answer by its own
  install. One build for every check: each emulated build and install costs minutes of CI.
"""
from __future__ import annotations

import json
import shutil
import struct
import time
from pathlib import Path

import numpy as np
import pytest

from ..conftest import require_pypi
from .conftest import PROMPT, package_and_install, package_and_unpack, report

pytestmark = [pytest.mark.arm64, pytest.mark.e2e]

HERE = Path(__file__).resolve().parent


def _host_logits(bundle: Path, profile: Path, ids: list[int], one_at_a_time: bool = False) -> np.ndarray:
    """This x86 host's logits for `ids`: one prefill (as the device probe), or one token per step."""
    import edge_sdk

    model = edge_sdk.load(bundle, device=str(profile))
    assert model.encode_prompt(PROMPT) == ids  # same tokenizer, same template, same ids
    if one_at_a_time:
        return np.stack([model.engine.forward([t]) for t in ids])
    return model.engine.forward(ids, all_logits=True)


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(-1) / (np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1))


SCHEMA = {"type": "object", "properties": {"name": {"type": "string", "maxLength": 30},
                                           "age": {"type": "integer", "minimum": 0, "maximum": 120},
                                           "city": {"type": "string", "maxLength": 30}},
          "required": ["name", "age", "city"], "additionalProperties": False}


@pytest.fixture(scope="module")
def probed(pi, arm64_device, smollm2_bundle, smollm2_fp32_bundle, tmp_path_factory) -> dict:
    """device_probe.py by the build's own (emulated) venv Python, with the build's profile, in one process (each
    emulated Python start and import costs tens of seconds): the shipped default bundle (8 new tokens), loaded
    again from the packed-weights cache the first load wrote (logits only), the same int4 graph at accuracy
    level 0 and the fp32 bundle (logits only), and a schema-constrained answer.
    {"info": the probe's JSON line, "bundles": {job: bundle}, "logits": {job: file}}."""
    work = tmp_path_factory.mktemp("probe")
    profile = str(pi / "device_profile.json")
    bundles = {"default": pi / "bundle", "default-mapped": pi / "bundle",
               "int4-level0": _with_accuracy_level(smollm2_bundle, 0, work / "int4-level0"),
               "fp32": smollm2_fp32_bundle}
    new_tokens = {"default": 8, "default-mapped": 0, "int4-level0": 0, "fp32": 0}
    logits = {name: work / f"{name}.npy" for name in bundles}
    jobs = {name: {"bundle": str(b), "profile": profile, "prompt": PROMPT, "logits": str(logits[name]),
                   "max_new_tokens": new_tokens[name]} for name, b in bundles.items()}
    (work / "schema.json").write_text(json.dumps(SCHEMA))
    jobs["structured"] = {"bundle": str(pi / "bundle"), "profile": profile, "schema": str(work / "schema.json")}
    (work / "jobs.json").write_text(json.dumps(jobs))
    t0 = time.perf_counter()
    # a packed-weights cache of its own: the first load of the default bundle packs and writes it, the second maps it
    proc = arm64_device.run([str(pi / ".venv" / "bin" / "python"), str(HERE / "device_probe.py"), str(work / "jobs.json")],
                            cwd=work, timeout=3600, EDGE_SDK_PACKED_CACHE=work / "packed")
    arm64_device.timings["probe_s"] = time.perf_counter() - t0
    assert proc.returncode == 0, proc.stderr[-3000:]
    info = json.loads(proc.stdout.strip().splitlines()[-1])
    assert info["machine"] == "aarch64", info
    assert info["edge_sdk"].startswith(str(pi / ".venv")), info["edge_sdk"]  # the build's wheel, not this checkout
    return {"info": info, "bundles": bundles, "logits": logits}


def _job(probed: dict, name: str) -> tuple[dict, np.ndarray | None]:
    """One job's result (a failed job fails here, with the device's traceback) and its saved logits."""
    result = probed["info"]["jobs"][name]
    assert "error" not in result, result["error"]
    out = probed["logits"].get(name)
    return result, (np.load(out) if out else None)


def _with_accuracy_level(bundle: Path, level: int, dest: Path) -> Path:
    """A copy of an int4 bundle whose MatMulNBits nodes compute with `level` (0: fp32 activations)."""
    import onnx

    from edge_sdk.exporters.bundle import write_manifest

    shutil.copytree(bundle, dest)
    manifest = json.loads((dest / "edge_manifest.json").read_text())
    graph = dest / manifest["graph"]["files"]["decoder"]
    model = onnx.load(str(graph), load_external_data=False)
    nodes = [n for n in model.graph.node if n.op_type == "MatMulNBits"]
    assert nodes
    for node in nodes:
        kept = [a for a in node.attribute if a.name != "accuracy_level"]
        del node.attribute[:]
        node.attribute.extend([*kept, onnx.helper.make_attribute("accuracy_level", level)])
    onnx.save(model, str(graph))
    manifest["quantization"]["accuracy_level"] = level
    write_manifest(dest, manifest)
    return dest


def test_default_answers_and_agrees_with_x86(probed, pi, arm64_device, smollm2_bundle):
    """The shipped default bundle: fp32 activations in the layers (accuracy level 0, the same arithmetic on
    both CPUs), the int8 head at int8 activations (different kernels) with its top 8 logits recomputed from
    fp32 activations. So the logits that decide are x86's, the others close."""
    info, arm = _job(probed, "default")
    assert info["providers"] == ["CPUExecutionProvider"]
    assert "Paris" in info["text"], info["text"]
    host = _host_logits(smollm2_bundle, pi / "device_profile.json", info["ids"])
    top = np.argsort(-host, axis=-1)[:, :4]
    diff = float(np.abs(np.take_along_axis(arm, top, -1) - np.take_along_axis(host, top, -1)).max())
    cos = _cosines(arm.astype(np.float64), host.astype(np.float64))
    print(f"default ({json.loads((smollm2_bundle / 'edge_manifest.json').read_text())['quantization']['recipe']}) "
          f"arm64 vs x86: top-4 logits max abs difference {diff:.2e}, min cosine {cos.min():.5f}; arm64 load "
          f"{info['load_s']:.1f} s, prefill {info['prefill_s']:.1f} s, {info['new_tokens']} tokens in "
          f"{info['generate_s']:.1f} s: {info['text']!r}")
    assert (arm.argmax(-1) == host.argmax(-1)).all()
    assert diff <= 1e-2 and cos.min() >= 0.999, (diff, cos.min())
    arm64_device.timings.update(int4_load_s=info["load_s"], int4_prefill_s=info["prefill_s"],
                                int4_generate_s=info["generate_s"], int4_tokens=info["new_tokens"])


def test_packed_weights_are_written_then_mapped_with_the_same_logits_on_arm64(probed):
    """The device packs its 4-bit weights at the first load and writes them to the cache (runtime/packed.py); the
    next load maps them instead of packing on the heap. arm64's packed layout is its own (KleidiAI is off in the
    build's profile, and the cache is keyed by machine): the mapped weights give the same logits, bit for bit."""
    first, first_logits = _job(probed, "default")
    again, again_logits = _job(probed, "default-mapped")
    assert first["packed"] and first["packed"]["cached"] and first["packed"]["built"], first["packed"]
    assert again["packed"] and again["packed"]["cached"] and not again["packed"]["built"], again["packed"]
    np.testing.assert_array_equal(first_logits, again_logits)


def test_documents_are_indexed_and_answered_from_on_arm64(pi, arm64_device, minilm_bundle, tmp_path):
    """The build's own edge-sdk on the emulated device: index a document with the shipped embedder, ask
    the shipped model, get the fact and its citation; and the device's vectors agree with x86's."""
    doc = HERE.parent / "rag" / "data" / "docs" / "brindlecove_handbook.md"
    cli = str(pi / ".venv" / "bin" / "edge-sdk")
    t0 = time.perf_counter()
    proc = arm64_device.run([cli, "index", "add", "docs.index", str(doc), "--embedder", str(pi / "embedder"), "--json"],
                            cwd=tmp_path, timeout=1800)
    index_s = time.perf_counter() - t0
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert len(json.loads(proc.stdout)["added"]) == 1
    question = "Who is the Chief People Officer at Brindlecove Analytics?"
    t0 = time.perf_counter()
    proc = arm64_device.run([cli, "ask", str(pi / "bundle"), "--index", "docs.index", question, "-k", "2", "--json",
                             "--max-new-tokens", "24", "--device", str(pi / "device_profile.json")],
                            cwd=tmp_path, timeout=1800)
    ask_s = time.perf_counter() - t0
    assert proc.returncode == 0, proc.stderr[-3000:]
    answer = json.loads(proc.stdout)
    assert "Achterberg" in answer["answer"] and Path(answer["cited"][0]["path"]).name == doc.name, answer
    # The vectors the device stored (and searched) against x86's for the same chunk texts: read from the
    # index file on the host, so no third emulated Python start is needed for the comparison.
    import edge_sdk
    from edge_sdk.runtime.rag.store import Store

    store = Store.open(tmp_path / "docs.index")
    try:
        ids, arm_vectors, _ = store.vectors(store.meta()["dim"])
        rows = store.rows(ids)
    finally:
        store.close()
    texts = [rows[int(i)].text for i in ids]
    assert len(texts) >= 5 and "Achterberg" in "".join(texts), len(texts)  # the whole handbook, chunked
    cos = (arm_vectors * edge_sdk.load(minilm_bundle).embed(texts)).sum(1)
    print(f"arm64 RAG: index add {index_s:.1f} s, ask {ask_s:.1f} s; embedder arm64 vs x86 cosine min {cos.min():.5f} "
          f"over {len(texts)} chunks")
    # int8 weights, int8 activations (accuracy level 4) in different kernels on each CPU: the bound of
    # the export's own check against sentence-transformers.
    assert cos.min() >= 0.99, cos
    arm64_device.timings.update(rag_index_add_s=index_s, rag_ask_s=ask_s)


def test_int4_at_accuracy_level_0_matches_x86(probed, pi):
    """The same int4 weights and graph with fp32 activations: x86 and arm64 must compute the same thing."""
    bundle = probed["bundles"]["int4-level0"]
    info, arm = _job(probed, "int4-level0")
    host = _host_logits(bundle, pi / "device_profile.json", info["ids"])
    cos, diff = _cosines(arm.astype(np.float64), host.astype(np.float64)), float(np.abs(arm - host).max())
    print(f"int4 at accuracy level 0, arm64 vs x86: min cosine {cos.min():.7f}, max abs logits difference {diff:.2e}")
    assert cos.min() >= 0.9999 and diff <= 1e-2, (cos.min(), diff)
    assert (arm.argmax(-1) == host.argmax(-1)).all()


def test_fp32_logits_match_x86(probed, pi, arm64_device, smollm2_fp32_bundle):
    info, arm = _job(probed, "fp32")
    host = _host_logits(smollm2_fp32_bundle, pi / "device_profile.json", info["ids"])
    diff = float(np.abs(arm - host).max())
    print(f"fp32 arm64 vs x86: max abs logits difference {diff:.2e} over {arm.shape[0]} positions")
    assert diff <= 1e-3, diff
    assert (arm.argmax(-1) == host.argmax(-1)).all()
    arm64_device.timings.update(fp32_load_s=info["load_s"], fp32_prefill_s=info["prefill_s"])
    report(arm64_device)


def _png_size(path: Path) -> tuple[int, int]:
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n", head[:8]
    return struct.unpack(">II", head[16:24])


def test_a_schema_constrained_answer_on_arm64(probed, pi, arm64_device):
    """The build's own install (its llguidance aarch64 wheel, its edge-sdk) runs one schema-constrained
    generation of the real SmolLM2; jsonschema checks the answer."""
    jsonschema = pytest.importorskip("jsonschema")
    assert json.loads((pi / "device_build.json").read_text())["target"]["min_glibc"] == "2.31"
    info, _ = _job(probed, "structured")
    arm64_device.timings["structured_s"] = info["seconds"]
    assert info["llguidance"].startswith(str(pi / ".venv"))  # the build's own install
    assert info["finish_reason"] == "stop", info
    answer = json.loads(info["text"])
    jsonschema.validate(answer, SCHEMA)
    assert "Ana" in answer["name"] and answer["age"] == 34 and answer["city"] == "Porto", answer


def _wheels(build: Path) -> dict[str, object]:
    """The build's wheels: third-party ones by sha256; edge-sdk's own (built afresh by each package, with other
    zip timestamps) by the bytes of its members."""
    import zipfile

    files = json.loads((build / "device_build.json").read_text())["files"]
    out: dict[str, object] = {}
    for name, f in files.items():
        if name.startswith("wheels/edge_sdk"):
            with zipfile.ZipFile(build / name) as z:
                out[name] = {m: z.read(m) for m in z.namelist()}
        elif name.startswith("wheels/"):
            out[name] = f["sha256"]
    return out


def test_a_build_that_pulls_its_bundle_on_arm64(pi, smollm2_bundle, arm64_device, tmp_path_factory):
    """`package --store-url`: the build ships no bundle; its run.sh pulls the published one from a local server on
    first run (under emulation: download, sha256, signature, smoke prompt), answers, and runs offline after.

    Not installed again: it runs on the shared `pi` build's venv (EDGE_SDK_VENV, as for a system-wide install),
    which install.sh made from the very same wheels (checked below); an emulated install would add about a minute."""
    from edge_sdk.cli import main
    from edge_sdk.deploy.publish import publish

    from ..store.conftest import StaticServer

    work = tmp_path_factory.mktemp("pi-store")
    assert main(["keygen", "-o", str(work / "publisher.key")]) == 0
    (work / "site" / "models").mkdir(parents=True)
    publish(smollm2_bundle, work / "site" / "models", name="smollm2", version="1", sign_key=work / "publisher.key")
    server = StaticServer(work / "site")
    try:
        build = package_and_unpack(smollm2_bundle, arm64_device, work, label="store",  # as pi, but no bundle
                                   extra=("--store-url", server.url + "models/", "--structured"))
        assert not (build / "bundle").exists() and (build / "publisher.pub").is_file()
        assert _wheels(build) == _wheels(pi) and (build / "install.sh").read_bytes() == (pi / "install.sh").read_bytes()
        t0 = time.perf_counter()
        first = arm64_device.run(["sh", str(build / "run.sh"), PROMPT, "--max-new-tokens", "12"], cwd=work,
                                 timeout=1800, EDGE_SDK_VENV=pi / ".venv")
        arm64_device.timings["store_first_run_s"] = time.perf_counter() - t0
        assert first.returncode == 0, first.stderr[-3000:]
        assert "smollm2 1: downloaded 5 files" in first.stderr and "Paris" in first.stdout, first.stdout + first.stderr
    finally:
        server.close()
    t0 = time.perf_counter()  # the server is gone: the second run must not need it
    again = arm64_device.run(["sh", str(build / "run.sh"), PROMPT, "--max-new-tokens", "12"], cwd=work,
                             timeout=1800, EDGE_SDK_VENV=pi / ".venv")
    arm64_device.timings["store_second_run_s"] = time.perf_counter() - t0
    assert again.returncode == 0 and again.stdout == first.stdout, again.stdout + again.stderr[-3000:]
    report(arm64_device)


@pytest.mark.ui
def test_chat_app_on_arm64(smollm2_bundle, arm64_gui_device, tmp_path_factory):
    """The --app chat build: Kivy's aarch64 wheel, the installed app, one message through the UI."""
    require_pypi("the linux-aarch64 build (it downloads aarch64 wheels)")
    work = tmp_path_factory.mktemp("pi-chat")
    build = package_and_install(smollm2_bundle, arm64_gui_device, work, app="chat")
    shot = work / "arm64-chat.png"
    proc = arm64_gui_device.run([str(build / ".venv" / "bin" / "python"), "-P", str(HERE / "scenario_chat_arm64.py")],
                                cwd=work, timeout=1800, UI_BUNDLE=build / "bundle",
                                UI_DEVICE=build / "device_profile.json", UI_SCREENSHOT=shot,
                                UI_APP_MODULE="edge_sdk.mobile_demo.app", KIVY_HOME=work / "kivy-home")
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")), None)
    assert line, proc.stdout[-2000:] + proc.stderr[-3000:]
    res = json.loads(line[len("RESULT "):])
    assert "error" not in res, res
    assert res["machine"] == "aarch64" and res["app_module"] == "edge_sdk.mobile_demo.app" and res["done"]
    assert res["threads"] == 4  # raspberry-pi-5's profile from the build, not the bundle's 2
    assert res["model_name"] == "smollm2-135m-instruct"  # the header names the model, not the folder
    texts = [b["text"] for b in res["bubbles"]]
    assert texts[0] == "Name the capital of France." and "Paris" in texts[-1], texts
    width, height = _png_size(Path(res["screenshot"]))
    assert (width, height) == (420, 820)
    arm64_gui_device.timings.update(chat_start_s=res["start_s"], chat_reply_s=res["reply_s"])
    print(f"arm64 chat app: started in {res['start_s']:.1f} s, replied in {res['reply_s']:.1f} s, "
          f"{res['frames']} frames, screenshot {res['screenshot']}")
    report(arm64_gui_device)
