"""POST /v1/embeddings in OpenAI's shape, when the server also serves an embedder bundle (`serve --embedder DIR`).

    {"model": "all-minilm-l6-v2", "input": "text" | ["text", ...], "encoding_format": "float" | "base64"}
    -> {"object": "list", "data": [{"object": "embedding", "index": i, "embedding": [...]}], "model", "usage"}

The vectors are the Embedder's own (Embedder.embed). One batch is embedded at a time, on a thread of its own;
requests beyond `max_queue` waiting get a 503. The official client asks for base64 (little-endian float32) unless
told otherwise. An input longer than the embedder can read (it truncates at its `max_tokens`) is refused when its
size alone proves it (see intake.py); shorter inputs are embedded exactly as Embedder.embed does.
"""
from __future__ import annotations

import asyncio
import base64
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from starlette.responses import JSONResponse
from starlette.routing import Route

from . import intake
from .protocol import ApiError, check_text

MAX_INPUTS = 2048  # OpenAI's limit per request


class Embeddings:
    def __init__(self, server, embedder, names: list[str]):
        self.server, self.embedder, self.names = server, embedder, names
        self._work = ThreadPoolExecutor(max_workers=1, thread_name_prefix="edge-sdk-embed")
        self.waiting = 0
        longest = intake.longest_token_bytes(embedder.tokenizer)
        self.input_limit = embedder.max_tokens * longest if longest else None  # bytes an input may have
        # The body: a full batch of inputs that could be read whole (JSON escapes included), within 8 MB.
        self.max_body = min(8 << 20, max(intake.MIN_BODY, 2 * MAX_INPUTS * (self.input_limit or 4096)))

    def routes(self) -> list[Route]:
        return [Route("/v1/embeddings", self.answer, methods=["POST"])]

    def shutdown(self) -> None:
        self._work.shutdown(wait=False, cancel_futures=True)

    async def answer(self, request):
        s = self.server
        s._authorize(request)
        data = await intake.read_body(request, self.max_body, s.body_seconds)
        model, texts, base64_ = await s._off_loop(self._parse, data)
        if self.waiting >= s.pool.max_queue:
            raise ApiError(503, f"the server is busy: {self.waiting} embedding requests waiting; retry shortly",
                           type="server_error", code="server_busy", headers={"Retry-After": "1"})
        self.waiting += 1
        try:
            vectors, tokens = await asyncio.get_running_loop().run_in_executor(self._work, self._embed, texts)
        finally:
            self.waiting -= 1
        data = [{"object": "embedding", "index": i,
                 "embedding": base64.b64encode(v.astype("<f4").tobytes()).decode("ascii") if base64_ else v.tolist()}
                for i, v in enumerate(vectors)]
        return JSONResponse({"object": "list", "data": data, "model": model,
                             "usage": {"prompt_tokens": tokens, "total_tokens": tokens}})

    def _parse(self, data: bytes) -> tuple[str, list[str], bool]:
        body = intake.parse_json(data)
        if not isinstance(body, dict):
            raise ApiError(400, "the request body must be a JSON object")
        check_text(body)
        model = body.get("model")
        if model not in self.names:
            served = ", ".join(repr(n) for n in self.names)
            raise ApiError(404, f"the embedder {model!r} does not exist here; this server embeds with {served}",
                           param="model", code="model_not_found")
        texts = body.get("input")
        texts = [texts] if isinstance(texts, str) else texts
        if not isinstance(texts, list) or not texts or not all(isinstance(t, str) and t for t in texts):
            raise ApiError(400, "'input' must be a non-empty string or a list of them (token ids are not taken: "
                                "send text)", param="input")
        if len(texts) > MAX_INPUTS:
            raise ApiError(400, f"'input' has {len(texts)} texts; at most {MAX_INPUTS} per request", param="input")
        if self.input_limit is not None:
            for i, t in enumerate(texts):
                size = len(t.encode("utf-8"))
                if size > self.input_limit:
                    raise ApiError(400, f"input[{i}] has {size} bytes, more than this embedder reads (at most "
                                        f"{self.embedder.max_tokens} tokens, which hold at most {self.input_limit} "
                                        "bytes): split the text", param="input")
        fmt = body.get("encoding_format", "float")
        if fmt not in ("float", "base64"):
            raise ApiError(400, f"'encoding_format' must be \"float\" or \"base64\", got {fmt!r}",
                           param="encoding_format")
        dims = body.get("dimensions")
        if dims is not None and dims != self.embedder.dim:
            raise ApiError(400, f"this embedder's vectors have {self.embedder.dim} dimensions; 'dimensions' cannot "
                                f"change that (got {dims!r})", param="dimensions", code="unsupported_parameter")
        return model, texts, fmt == "base64"

    def _embed(self, texts: list[str]) -> tuple[np.ndarray, int]:
        tokens = sum(len(self.embedder.token_ids(t)) for t in texts)
        return self.embedder.embed(texts), tokens
