"""The served model's tokenizer over HTTP, in vLLM's shapes, so that an evaluation scores exactly the token ids
this model sees without a tokenizer of its own (lm-evaluation-harness's `tokenizer_backend=remote` reads these):

    POST /tokenize         {"prompt": text, "add_special_tokens": true} -> {"tokens": [...], "count", "max_model_len"}
    POST /detokenize       {"tokens": [...]} -> {"prompt": text}
    GET  /tokenizer_info   {"eos_token", "bos_token", "pad_token", "chat_template", "model_max_length", "vocab_size"}

/tokenize reads special-token strings ("<|im_end|>") as the control tokens, as vLLM and Hugging Face do (how a
harness finds the eos id); a string prompt on /v1/completions does not (a user typing "<|im_end|>" cannot end a
turn), so a harness sends the ids it got here.
"""
from __future__ import annotations

from starlette.responses import JSONResponse
from starlette.routing import Route

from . import intake
from .protocol import ApiError, check_text


class TokenizerRoutes:
    def __init__(self, server):
        self.server = server

    def routes(self) -> list[Route]:
        return [Route("/tokenize", self.tokenize, methods=["POST"]),
                Route("/detokenize", self.detokenize, methods=["POST"]),
                Route("/tokenizer_info", self.info, methods=["GET"])]

    async def _answer(self, request, work):
        s = self.server
        s._authorize(request)
        data = await intake.read_body(request, s.max_body, s.body_seconds)
        return JSONResponse(await s._off_loop(work, data))

    async def tokenize(self, request):
        return await self._answer(request, self._tokenize)

    async def detokenize(self, request):
        return await self._answer(request, self._detokenize)

    async def info(self, request):
        self.server._authorize(request)
        model = self.server.pool.model
        tok = model.manifest["tokenizer"]
        template = model.template.source if model.template is not None else None
        return JSONResponse({"eos_token": tok.get("eos_token"), "bos_token": tok.get("bos_token"), "pad_token": None,
                             "chat_template": template, "model_max_length": model.max_context,
                             "vocab_size": model.tokenizer.vocab_size})

    def _body(self, data: bytes) -> dict:
        body = intake.parse_json(data)
        if not isinstance(body, dict):
            raise ApiError(400, "the request body must be a JSON object")
        check_text(body)
        return body

    def _tokenize(self, data: bytes) -> dict:
        body = self._body(data)
        prompt, add = body.get("prompt"), body.get("add_special_tokens", True)
        if not isinstance(prompt, str):
            raise ApiError(400, "'prompt' must be a string", param="prompt")
        if not isinstance(add, bool):
            raise ApiError(400, "'add_special_tokens' must be true or false", param="add_special_tokens")
        model, limit = self.server.pool.model, self.server.prompt_limit
        if limit is not None and len(prompt.encode("utf-8")) > limit:  # tokenizing megabytes holds the GIL for seconds
            raise ApiError(400, f"'prompt' has more bytes of text ({len(prompt.encode('utf-8'))}) than any prompt of "
                                f"this model's {model.max_context} tokens can hold ({limit})", param="prompt",
                           code="context_length_exceeded")
        ids = model.tokenizer.encode(prompt, parse_special=True)
        tok = model.manifest["tokenizer"]
        if add and tok.get("add_bos") and tok.get("bos_token_id") is not None:  # as a raw prompt is encoded
            ids = [tok["bos_token_id"]] + ids
        return {"count": len(ids), "max_model_len": model.max_context, "tokens": ids}

    def _detokenize(self, data: bytes) -> dict:
        body = self._body(data)
        ids, vocab = body.get("tokens"), self.server.pool.model.tokenizer.vocab_size
        if not isinstance(ids, list) or not all(isinstance(t, int) and not isinstance(t, bool) and 0 <= t < vocab
                                                for t in ids):
            raise ApiError(400, f"'tokens' must be a list of token ids (0..{vocab - 1})", param="tokens")
        return {"prompt": self.server.pool.model.tokenizer.decode(ids)}
