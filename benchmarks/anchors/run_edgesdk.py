"""edge-sdk runner (its own venv: /work/bench-venvs/edgesdk, the device install: numpy + onnxruntime).

--model is an edge-sdk bundle folder (made by `edge-sdk export`). Uses the token-level engine:
`m = edge_sdk.load(bundle, threads=N)`, `m.engine.reset()`, `m.engine.forward(ids) -> logits of the
last position` (appends to the KV cache). Greedy = argmax, EOS ignored. See _common.py for the protocol.
"""
from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common  # noqa: E402


def main() -> None:
    args = _common.parse_args(__doc__.splitlines()[0])

    import numpy as np
    import onnxruntime as ort

    import edge_sdk
    import edge_sdk.runtime.model  # noqa: F401  (edge_sdk.load imports it lazily: imported before the load is
    # timed, as the anchors' runners import llama_cpp / onnxruntime_genai before theirs; 2.5 s of a 12 s 0.5B load
    # under cProfile on the loaded box was this import)

    def load():
        return edge_sdk.load(args.model, threads=args.threads)

    def generate(m, ids, n_new):
        eng = m.engine
        eng.reset()
        t0 = _common.now()
        tok = int(np.argmax(eng.forward(list(ids))))
        t1 = _common.now()
        out = [tok]
        for _ in range(n_new - 1):
            tok = int(np.argmax(eng.forward([tok])))
            out.append(tok)
        t2 = _common.now()
        return out, t1 - t0, t2 - t1

    def step_logits(m, ids):
        m.engine.reset()
        for t in ids:
            yield m.engine.forward([t])

    versions = {
        "edge-sdk": getattr(edge_sdk, "__version__", "?"),
        "onnxruntime": ort.__version__,
        "numpy": np.__version__,
    }
    _common.run("edge-sdk", args, load, generate, versions, step_logits)


if __name__ == "__main__":
    main()
