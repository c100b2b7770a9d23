"""onnxruntime-genai runner (its own venv: /work/bench-venvs/ortgenai). See _common.py for the protocol.

--model is the folder written by `python -m onnxruntime_genai.models.builder` (genai_config.json,
model.onnx, model.onnx.data). The prompt goes in as token ids (`append_tokens`), never as text:
onnxruntime-genai's own tokenizer mis-encodes SmolLM2's GGUF-derived tokenizer.json.

Thread count: set through og.Config (session option intra_op_num_threads), overriding genai_config.json.
Greedy, EOS ignored: do_sample=False and min_length = prompt + new tokens. max_length (the KV cache's capacity)
is prompt + new tokens, but at least the sliding window of a model that has one (Gemma 3: 512): its
GroupQueryAttention with `sliding_window_cache` refuses a cache shorter than the window ("KV cache capacity (12)
must be at least local_window_size (512)").

Timing: `append_tokens` runs the prompt through the model; the first `generate_next_token` only picks the
argmax of those logits, so TTFT = append_tokens + first generate_next_token. Each later
`generate_next_token` runs the model on the previous token and picks the next one (one decode step).
"""
from __future__ import annotations

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common  # noqa: E402

import onnxruntime_genai as og  # noqa: E402


def main() -> None:
    args = _common.parse_args(__doc__.splitlines()[0])

    def load():
        config = og.Config(args.model)
        config.clear_providers()  # CPU
        # Session options live in genai_config.json; set the thread count there via the overlay API.
        config.overlay(
            '{"model": {"decoder": {"session_options": {"intra_op_num_threads": %d, "inter_op_num_threads": 1}}}}'
            % args.threads
        )
        return og.Model(config)

    with open(os.path.join(args.model, "genai_config.json")) as f:
        window = (json.load(f)["model"]["decoder"].get("sliding_window") or {}).get("window_size", 0)

    def generate(model, ids, n_new):
        params = og.GeneratorParams(model)
        total = len(ids) + n_new
        params.set_search_options(do_sample=False, max_length=max(total, window), min_length=total, batch_size=1)
        gen = og.Generator(model, params)
        t0 = _common.now()
        gen.append_tokens(ids)
        gen.generate_next_token()
        first = int(gen.get_next_tokens()[0])
        t1 = _common.now()
        out = [first]
        for _ in range(n_new - 1):
            gen.generate_next_token()
            out.append(int(gen.get_next_tokens()[0]))
        t2 = _common.now()
        del gen
        return out, t1 - t0, t2 - t1

    def step_logits(model, ids):
        params = og.GeneratorParams(model)
        params.set_search_options(do_sample=False, max_length=max(len(ids) + 1, window), batch_size=1)
        gen = og.Generator(model, params)
        for t in ids:
            gen.append_tokens([t])
            yield gen.get_logits().reshape(-1)  # the last position's logits, [1, 1, vocab]

    from importlib.metadata import PackageNotFoundError, version

    versions = {"onnxruntime-genai": og.__version__}
    try:
        versions["onnxruntime"] = version("onnxruntime")  # the library ort-genai loads
    except PackageNotFoundError:
        pass
    _common.run("onnxruntime-genai", args, load, generate, versions, step_logits)


if __name__ == "__main__":
    main()
