"""llama.cpp runner via llama-cpp-python's low-level C API (its own venv: /work/bench-venvs/llamacpp).

--model is the GGUF file. The high-level `Llama` class is not used: it keeps a Python-side
[n_ctx, n_vocab] score matrix and does per-token Python work that is not llama.cpp's own cost. This
runner does what llama.cpp's `simple` example does: llama_decode on a batch of the prompt ids (one
output, the last position), argmax of its logits, then one llama_decode per generated token.
Greedy, EOS ignored. n_threads = n_threads_batch = --threads; other context parameters are
llama.cpp's defaults (reported in the output), n_ctx = prompt + new tokens rounded up to 256.
See _common.py for the protocol.

OMP_WAIT_POLICY=passive unless the caller sets it (reported): the wheel's ggml is built with OpenMP, and its
barrier between two operators is an OpenMP barrier, where libgomp's default lets a waiting thread spin
(GOMP_SPINCOUNT 300000) before it sleeps. On this 2-core machine shared with other jobs, a spinning thread holds
a core the thread it waits for needs, at every operator: llama.cpp's decode collapsed (TinyLlama-1.1B Q4_0,
2 threads: 0.7-1.4 tok/s with the default against 4.3-8.6 with passive; docs/benchmarks.md), a cost of the box,
not of llama.cpp. Passive waiting (spin count 0) is what onnxruntime's pool comes closest to, as it spins only
briefly before it blocks. `OMP_WAIT_POLICY=` (empty: libgomp warns and keeps its default) gives the old setting.
"""
from __future__ import annotations

import ctypes
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common  # noqa: E402

os.environ.setdefault("OMP_WAIT_POLICY", "passive")  # read by libgomp when llama_cpp loads it, just below

import llama_cpp as L  # noqa: E402
import numpy as np  # noqa: E402


def main() -> None:
    args = _common.parse_args(__doc__.splitlines()[0])
    ids, n_new = _common.read_ids(args)
    need = max(len(ids) + n_new, len(_common.read_eval_ids(args)) if args.ppl else 0)  # the eval text is longer
    n_ctx = ((need + 255) // 256) * 256
    state: dict = {}  # reported settings
    handles: dict = {}

    def load():
        L.llama_backend_init()
        mparams = L.llama_model_default_params()
        model = L.llama_model_load_from_file(args.model.encode(), mparams)
        if not model:
            raise SystemExit(f"llama.cpp could not load {args.model}")
        cparams = L.llama_context_default_params()
        cparams.n_ctx = n_ctx
        cparams.n_batch = max(512, len(ids))
        cparams.n_threads = args.threads
        cparams.n_threads_batch = args.threads
        ctx = L.llama_init_from_model(model, cparams)
        if not ctx:
            raise SystemExit("llama.cpp could not create a context")
        handles.update(model=model, n_vocab=L.llama_vocab_n_tokens(L.llama_model_get_vocab(model)))
        state.update(
            system_info=L.llama_print_system_info().decode(errors="replace").strip(),
            omp_wait_policy=os.environ["OMP_WAIT_POLICY"],
            context={
                "n_ctx": n_ctx,
                "n_batch": cparams.n_batch,
                "n_ubatch": cparams.n_ubatch,
                "flash_attn_type": cparams.flash_attn_type,
                "type_k": cparams.type_k,
                "type_v": cparams.type_v,
            },
        )
        return ctx

    def last_logits(ctx, toks: list[int]) -> np.ndarray:  # a view into llama.cpp's buffer
        arr = (L.llama_token * len(toks))(*toks)
        rc = L.llama_decode(ctx, L.llama_batch_get_one(arr, len(toks)))
        if rc != 0:
            raise SystemExit(f"llama_decode returned {rc}")
        ptr = L.llama_get_logits_ith(ctx, -1)
        return np.ctypeslib.as_array(ctypes.cast(ptr, ctypes.POINTER(ctypes.c_float)), shape=(handles["n_vocab"],))

    def step(ctx, toks: list[int]) -> int:
        return int(last_logits(ctx, toks).argmax())

    def step_logits(ctx, toks):
        L.llama_memory_clear(L.llama_get_memory(ctx), True)
        for t in toks:
            yield last_logits(ctx, [t]).copy()

    def generate(ctx, prompt, n):
        L.llama_memory_clear(L.llama_get_memory(ctx), True)
        t0 = _common.now()
        tok = step(ctx, prompt)
        t1 = _common.now()
        out = [tok]
        for _ in range(n - 1):
            tok = step(ctx, [tok])
            out.append(tok)
        t2 = _common.now()
        return out, t1 - t0, t2 - t1

    info = {"llama-cpp-python": _pkg_version(), "settings": state}  # filled by load(); dumped at the end
    _common.run("llama.cpp", args, load, generate, info, step_logits)


def _pkg_version() -> str:
    from importlib.metadata import version

    return version("llama-cpp-python")


if __name__ == "__main__":
    main()
