"""KleidiAI on the emulated arm64 CPU: is onnxruntime's bf16-scale int4 path taken, and what does it cost?

    python benchmarks/kleidiai.py FP32_BUNDLE BUNDLE [BUNDLE ...] --tokens 128 [--work DIR] [--json OUT]

Each BUNDLE teacher-forces the first --tokens tokens of the held-out text (runtime/eval_text.py) through
benchmarks/kleidiai_probe.py three times: on this x86 host (no KleidiAI in onnxruntime's x86 build), and on
arm64 emulated by qemu user-mode (tests/arm64/sysroot.py: Debian's arm64 Python, the aarch64 wheels of
onnxruntime and numpy, edge-sdk's own wheel) with `mlas.disable_kleidiai` unset (onnxruntime's choice) and
set to "1". FP32_BUNDLE runs on x86 only: its logits are the reference for perplexity. Printed per bundle and
CPU: perplexity and its change vs fp32, the change in each 32-token segment (the spread), the largest logit
difference from x86 and from arm64 with KleidiAI off, and top-1 agreement with x86.

--simulate adds, on x86 only and over the whole held-out text, each bundle with its 4-bit MatMulNBits scales cut
to bf16 as KleidiAI's packing does (the top 16 bits of each fp32): the scales' share of the change, at a
token count emulation cannot reach (KleidiAI also quantizes activations per row, which this leaves out).

qemu 7.2's default CPU ("max") reports dotprod, i8mm, bf16, SVE2 and SME, so onnxruntime takes every path
those select; a phone with fewer features may take fewer (docs/deploy.md). Emulation runs ~1 token/s:
128 tokens cost ~4 minutes per run on a busy 2-core box. Probe outputs are kept in --work and reused.
"""
from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
PROBE = Path(__file__).resolve().parent / "kleidiai_probe.py"
SEGMENT = 32


def arm64_python(work: Path) -> tuple[list[str], dict[str, str]]:
    """argv prefix and environment for the emulated arm64 Python with the device dependencies importable."""
    sys.path.insert(0, str(ROOT))
    from tests.arm64 import sysroot as sr

    from edge_sdk.deploy.targets import get_target
    from edge_sdk.deploy.wheelhouse import build_own_wheel, device_requirements, download

    qemu = sr.ensure_qemu()
    root = sr.ensure_sysroot(Path.home() / ".cache" / "edge-sdk" / "arm64", log=lambda m: None)
    site = work / "site"
    if not (site / "edge_sdk").is_dir():
        wheels = work / "wheels"
        target = get_target("linux-aarch64")
        download(wheels, device_requirements((), target, "3.11"), target, "3.11")
        build_own_wheel(wheels)
        for wheel in wheels.glob("*.whl"):  # an import path is all the probe needs: unpack, do not install
            with zipfile.ZipFile(wheel) as z:
                z.extractall(site)
    env = sr.arm64_env(root)
    env["PYTHONPATH"] = str(site)
    return sr.python_command(root, qemu), env


def probe(argv: list[str], env: dict | None, bundle: Path, out: Path, tokens: int, kleidiai: str) -> np.ndarray:
    if not out.exists():
        proc = subprocess.run([*argv, str(PROBE), str(bundle), str(out), "--tokens", str(tokens),
                               "--kleidiai", kleidiai], env=env, cwd=out.parent, capture_output=True, text=True)
        if proc.returncode != 0:
            sys.exit(f"probe failed on {bundle} ({kleidiai}):\n{proc.stderr[-3000:]}")
        out.with_suffix(".json").write_text(proc.stdout.strip().splitlines()[-1])
    return np.load(out)


def nll(logits: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """-log p(ids[t+1] | ids[..t]) per position t (the last row predicts nothing known)."""
    x = logits[:-1].astype(np.float64)
    peak = x.max(-1, keepdims=True)
    return np.log(np.exp(x - peak).sum(-1)) + peak[:, 0] - x[np.arange(len(x)), ids[1:]]


def bf16_scales_copy(bundle: Path, dest: Path) -> Path:
    """A copy of `bundle` whose 4-bit MatMulNBits block scales are truncated to bf16 (KleidiAI's packing)."""
    import shutil

    import onnx
    from onnx import numpy_helper

    from edge_sdk.exporters.bundle import save_onnx, write_manifest

    if dest.exists():
        return dest
    manifest = json.loads((bundle / "edge_manifest.json").read_text())
    name = manifest["graph"]["files"]["decoder"]
    model = onnx.load(str(bundle / name))
    inits = {t.name: t for t in model.graph.initializer}
    for node in model.graph.node:
        if node.op_type == "MatMulNBits" and next(a.i for a in node.attribute if a.name == "bits") == 4:
            t = inits[node.input[2]]
            cut = (numpy_helper.to_array(t).view(np.uint32) & 0xFFFF0000).view(np.float32)
            t.CopyFrom(numpy_helper.from_array(cut, t.name))
    shutil.copytree(bundle, dest, ignore=shutil.ignore_patterns(name, name + ".data", "edge_manifest.json"))
    save_onnx(model, dest, name)
    write_manifest(dest, {k: v for k, v in manifest.items() if k not in ("format", "schema_version", "files")})
    return dest


def simulate(fp32: Path, bundles: list[Path], work: Path) -> list[dict]:
    """x86 perplexity over the whole held-out text: fp32, each bundle, each bundle with bf16 scales."""
    import edge_sdk
    from edge_sdk.runtime.evaluate import perplexity

    ref = perplexity(edge_sdk.load(fp32))
    rows = [{"bundle": "fp32", "ppl": ref["ppl"], "tokens": ref["tokens"]}]
    for bundle in bundles:
        recipe = json.loads((bundle / "edge_manifest.json").read_text())["quantization"]["recipe"]
        for label, path in ((recipe, bundle), (f"{recipe}, scales cut to bf16",
                                                bf16_scales_copy(bundle, work / f"bf16-{recipe}"))):
            r = perplexity(edge_sdk.load(path))
            rows.append({"bundle": label, "ppl": r["ppl"], "tokens": r["tokens"],
                         "ppl_delta_pct": 100 * (r["ppl"] / ref["ppl"] - 1)})
    print(f"\nx86, whole held-out text ({ref['tokens']} tokens scored):")
    print("| bundle | ppl | vs fp32 |\n|---|---|---|")
    for r in rows:
        print(f"| {r['bundle']} | {r['ppl']:.3f} | {r.get('ppl_delta_pct', 0):+.2f} % |")
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("fp32", type=Path)
    ap.add_argument("bundles", type=Path, nargs="+")
    ap.add_argument("--tokens", type=int, default=128)
    ap.add_argument("--work", type=Path, default=Path("kleidiai-work"))
    ap.add_argument("--json", type=Path)
    ap.add_argument("--simulate", action="store_true", help="also the bf16-scale copies on x86 (whole text)")
    args = ap.parse_args()
    work = args.work.resolve()
    work.mkdir(parents=True, exist_ok=True)
    arm, env = arm64_python(work)
    host = [sys.executable]

    ref = probe(host, None, args.fp32, work / "x86_fp32.npy", args.tokens, "on")
    ids = np.array(json.loads((work / "x86_fp32.json").read_text())["ids"])
    ref_nll = nll(ref, ids)
    rows = []
    for bundle in args.bundles:
        recipe = json.loads((bundle / "edge_manifest.json").read_text())["quantization"]["recipe"]
        runs = {"x86": probe(host, None, bundle, work / f"x86_{recipe}.npy", args.tokens, "on"),
                "arm64 on": probe(arm, env, bundle, work / f"arm_{recipe}_on.npy", args.tokens, "on"),
                "arm64 off": probe(arm, env, bundle, work / f"arm_{recipe}_off.npy", args.tokens, "off")}
        for cpu, logits in runs.items():
            own = nll(logits, ids)
            segments = [100 * (math.exp(own[s:s + SEGMENT].mean() - ref_nll[s:s + SEGMENT].mean()) - 1)
                        for s in range(0, len(own), SEGMENT)]
            rows.append({"recipe": recipe, "cpu": cpu, "tokens": len(own), "ppl": math.exp(own.mean()),
                         "ppl_delta_pct": 100 * (math.exp(own.mean() - ref_nll.mean()) - 1),
                         "segment_delta_pct": segments,
                         "max_abs_vs_x86": float(np.abs(logits - runs["x86"]).max()),
                         "max_abs_vs_arm64_off": float(np.abs(logits - runs["arm64 off"]).max()),
                         "top1_vs_x86": float((logits.argmax(-1) == runs["x86"].argmax(-1)).mean())})
    print(f"fp32 reference: ppl {math.exp(ref_nll.mean()):.3f} over {len(ref_nll)} tokens")
    print("| recipe | CPU (KleidiAI) | ppl | vs fp32 | per 32-token segment | max abs logit diff vs x86 | vs arm64 off "
          "| top-1 = x86 |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['recipe']} | {r['cpu']} | {r['ppl']:.3f} | {r['ppl_delta_pct']:+.2f} % | "
              f"{' / '.join(f'{d:+.2f} %' for d in r['segment_delta_pct'])} | {r['max_abs_vs_x86']:.3f} | "
              f"{r['max_abs_vs_arm64_off']:.3f} | {100 * r['top1_vs_x86']:.1f} % |")
    simulated = simulate(args.fp32, args.bundles, work) if args.simulate else None
    if args.json:
        args.json.write_text(json.dumps({"fp32_ppl": math.exp(ref_nll.mean()), "rows": rows, "simulated": simulated},
                                        indent=1))


if __name__ == "__main__":
    main()
