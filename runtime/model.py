"""The public runtime: `load(bundle) -> Model`, `Model.generate/stream/chat`.

Only numpy, onnxruntime and the standard library (plus jinja2 for chat templates, and the Rust
`tokenizers` package when it happens to be installed) are imported here: this is what ships on the
device.
"""
from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any, Iterator, Sequence

from edge_sdk.errors import BundleError

from . import sampling
from .chat_template import ChatTemplate
from .tokenizer import StreamingDetokenizer
from .engine import engine_class
from .generate import Decoder, GenerationStats, generate_tokens, stream_text
from .generation_defaults import for_copying, resolve as resolve_defaults
from .prompt_ids import PromptIds
from .bundle import read_manifest, resolve
from .bundle.manifest import manifest_kind
from .bundle.schema import MAX_THREADS
from .providers import SessionConfig
from .stopping import StopStrings, check_stop_limits
from .tokenizer import Tokenizer

Messages = Sequence[dict[str, str]]
_DEFAULT = object()  # "the model's current adapter", where None means "no adapter"


class _OneAtATime:
    """One generation at a time on a Model (or a ChatSession).

    Another thread waits its turn; the same thread starting a second generation while its first is
    unfinished (an open stream) gets a RuntimeError, where waiting would deadlock. Two generations
    interleaved on one KV cache would silently produce garbage, and leave the cache broken.
    """

    def __init__(self, what: str):
        self.what = what
        self._lock = threading.Lock()
        self._owner: int | None = None

    def hold(self, gen: Iterator[str]) -> Iterator[str]:
        me = threading.get_ident()
        if self._owner == me:
            gen.close()
            raise RuntimeError(f"this {self.what} is already generating in this thread: finish or close() the earlier "
                               f"stream first (a {self.what} runs one generation at a time; use one per thread to run "
                               "several at once)")
        with self._lock:
            self._owner = me
            try:
                yield from gen
            finally:
                self._owner = None
                gen.close()


def _session_config(manifest: dict[str, Any], device: str | None, threads: int | None) -> SessionConfig:
    """The bundle's device section, optionally overridden by a named profile and a thread count."""
    dev = dict(manifest["device"])
    if device is not None:
        from edge_sdk.devices import load_profile

        profile = load_profile(device)
        dev.update(execution_providers=list(profile.execution_providers), threads=profile.threads,
                   npu_only=profile.npu_only, provider_options=getattr(profile, "provider_options", {}) or {},
                   kleidiai=profile.kleidiai)
    providers = dev.get("execution_providers") or ["CPUExecutionProvider"]
    env = os.environ.get("EDGE_SDK_THREADS") if threads is None else None
    if env:  # bounded as a manifest's and a profile's threads are (issue 11: `threads: 300` started 302 threads)
        if not env.isdigit() or not 1 <= int(env) <= MAX_THREADS:
            from edge_sdk.errors import DeviceError

            raise DeviceError(f"EDGE_SDK_THREADS must be an integer from 1 to {MAX_THREADS}, got {env[:20]!r}")
        threads = int(env)
    threads = dev.get("threads") if threads is None else threads
    if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int)
                                or not 1 <= threads <= MAX_THREADS):
        raise ValueError(f"threads must be an integer from 1 to {MAX_THREADS}, got {threads!r}")
    return SessionConfig(providers=list(providers), threads=threads, npu_only=bool(dev.get("npu_only", False)),
                         provider_options=dev.get("provider_options", {}) or {}, kleidiai=dev.get("kleidiai"))


class Model:
    """A loaded bundle. One generation at a time: calls from other threads wait their turn (use one
    Model per thread to generate in parallel)."""

    def __init__(self, bundle_dir: Path, manifest: dict[str, Any], config: SessionConfig,
                 tokenizer_backend: str = "auto", capacity: int | None = None):
        self.bundle_dir = bundle_dir
        self.manifest = manifest
        tok = manifest["tokenizer"]
        if tok.get("compact_file") and Tokenizer.resolve_backend(tokenizer_backend) == "pure":
            # The same tokenizer with its merges pre-resolved: Gemma 3's 262k vocabulary loads ~3x faster.
            self.tokenizer = Tokenizer.from_compact(resolve(bundle_dir, manifest, tok["compact_file"],
                                                            "tokenizer.compact_file"))
        else:
            self.tokenizer = Tokenizer.from_file(resolve(bundle_dir, manifest, tok["file"], "tokenizer.file"),
                                                 backend=tokenizer_backend)
        self.eos_token_ids: list[int] = list(tok["eos_token_ids"])
        ct = manifest["chat_template"]
        template = ct.get("template")
        if ct.get("file"):
            try:
                template = resolve(bundle_dir, manifest, ct["file"], "chat_template.file").read_text(encoding="utf-8")
            except UnicodeDecodeError:
                raise BundleError(f"{bundle_dir}: {ct['file']} is not UTF-8 text; re-export the bundle") from None
        self.template = ChatTemplate(template, bos_token=tok.get("bos_token") or "",
                                     eos_token=tok.get("eos_token") or "") if template else None
        self.defaults: dict[str, Any] = dict(manifest["generation"])
        sized = {"capacity": capacity} if capacity else {}  # a smaller KV cache than the graph's max_context
        self.engine = engine_class(manifest["graph"]["flavour"])(manifest, bundle_dir, config, **sized)
        self.decoder = Decoder(self.engine)
        self.last_stats = GenerationStats()
        self._busy = _OneAtATime("Model")
        self._adapter: str | None = None  # the adapter a generation uses when it names none

    # -- adapters -----------------------------------------------------------------------------------
    @property
    def adapters(self) -> list[str]:
        """Names of the LoRA adapters the bundle carries (switchable without reloading)."""
        adapters = getattr(self.engine, "adapters", None)
        return adapters.names if adapters is not None else []

    @property
    def adapter(self) -> str | None:
        """The adapter generations use unless they name one (None: the base model). Setting it switches now."""
        return self._adapter

    @adapter.setter
    def adapter(self, name: str | None) -> None:
        self._check_adapter(name)
        self._adapter = name
        self._activate(name)

    def _check_adapter(self, name) -> None:
        if name is not None and name not in self.adapters:
            known = ", ".join(self.adapters) or "none (export with --adapters NAME=PEFT_DIR)"
            raise ValueError(f"unknown adapter {name!r}; this bundle's adapters: {known}")

    def _activate(self, name: str | None) -> None:
        """Bind `name` if another adapter is bound; the cache then holds the other adapter's keys and values."""
        if getattr(self.engine, "adapter", None) != name:
            self.engine.use_adapter(name)
            self.decoder.reset()  # the whole cache, also what engine-level callers (evaluate, bench) put in it

    @property
    def max_context(self) -> int:
        return self.engine.capacity

    # -- prompts ------------------------------------------------------------------------------------
    def encode_prompt(self, prompt: str | Messages, *, raw: bool = False) -> list[int]:
        """Token ids for a prompt: a string is one user turn through the chat template (unless `raw`);
        a model without a chat template (a base model) takes a string as plain text."""
        if isinstance(prompt, (bytes, bytearray)):
            raise TypeError("prompt must be text (str), not bytes: decode it first, e.g. prompt.decode('utf-8')")
        if not isinstance(prompt, (str, list, tuple)):
            raise TypeError(f"prompt must be a str or a list of chat messages, got {type(prompt).__name__}")
        if not prompt:  # "" or no messages at all: the template would render only the assistant's header
            raise ValueError("prompt is empty: give the text to answer" if isinstance(prompt, str) else
                             "prompt is an empty list of messages: give at least one message")
        if raw or (self.template is None and isinstance(prompt, str)):
            if not isinstance(prompt, str):
                raise ValueError("raw=True needs a string prompt, not messages")
            ids = self.tokenizer.encode(prompt)
            bos = self.manifest["tokenizer"].get("bos_token_id")
            if self.manifest["tokenizer"].get("add_bos") and bos is not None:
                ids = [bos] + ids
            return ids
        messages = [{"role": "user", "content": prompt}] if isinstance(prompt, str) else list(prompt)
        if self.template is None:
            raise ValueError("this model has no chat template (a base model): give the prompt as plain text (a str), "
                             "not chat messages")
        return self.template.encode(messages, self.tokenizer, add_generation_prompt=True)

    # -- generation ---------------------------------------------------------------------------------
    @property
    def generation_defaults(self) -> dict[str, Any]:
        """The settings a call that names none generates with: the bundle's `generation` section, and
        edge-sdk's defaults for what it leaves out (runtime/generation_defaults.py)."""
        return self._settings({})

    def _settings(self, kw: dict[str, Any]) -> dict[str, Any]:
        known = {"max_new_tokens", "temperature", "top_k", "top_p", "min_p", "repetition_penalty", "frequency_penalty",
                 "presence_penalty", "seed", "stop"}
        unknown = set(kw) - known
        if unknown:
            raise TypeError(f"unknown generation argument(s): {', '.join(sorted(unknown))}; known: {', '.join(sorted(known))}")
        s = resolve_defaults(self.defaults, known)  # edge-sdk's, then the bundle's (null = not set)
        s.update({k: v for k, v in kw.items() if v is not None or k == "seed"})
        sampling.validate(s["temperature"], s["top_k"], s["top_p"], s["min_p"], s["repetition_penalty"],
                          frequency_penalty=s["frequency_penalty"], presence_penalty=s["presence_penalty"])
        n = s["max_new_tokens"]
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise ValueError(f"max_new_tokens must be an integer >= 0, got {n!r}")
        seed = s["seed"]
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or seed < 0):
            raise ValueError(f"seed must be an integer >= 0 (or None for a random seed), got {seed!r}")
        stop = s["stop"]
        if stop is not None:
            stops = [stop] if isinstance(stop, str) else stop
            if not isinstance(stops, (list, tuple)) or not all(isinstance(x, str) for x in stops):
                raise TypeError(f"stop must be a string or a list of strings, got {stop!r}")
            if not stops or not all(stops):
                raise ValueError(f"stop strings must not be empty, got {stop!r}")
            check_stop_limits(stops)  # bounded: they come from requests and the command line
        return s

    def stream_ids(self, prompt_ids: Sequence[int], stats: GenerationStats | None = None, *,
                   speculative: bool = False, confidence=None, adapter=_DEFAULT, constraint=None,
                   **kw) -> Iterator[str]:
        """Text pieces generated after `prompt_ids` (the layer chat sessions and the CLI share).

        speculative: prompt-lookup decoding (drafts copied from the context, verified in one pass);
        greedy only (with or without a repetition penalty), token-identical to plain greedy decoding.
        confidence: an object whose `observe(logits, token)` sees every sampled token (hybrid.Confidence).
        adapter: the LoRA adapter for this generation (None: the base model; default: `self.adapter`).
        constraint: a grammar for this one generation (runtime/structured: structured.generation.constraint_for).
        """
        adapter = self._adapter if adapter is _DEFAULT else adapter
        self._check_adapter(adapter)
        if constraint is not None:  # a structured answer copies from the prompt (a name, a figure)
            kw = for_copying(kw)
        s = self._settings(kw)
        stops = s["stop"]
        stop = StopStrings([stops] if isinstance(stops, str) else list(stops)) if stops else None
        if speculative:
            from .speculative import SpeculativeStats, generate_tokens_speculative

            if s["temperature"] != 0 or s["frequency_penalty"] or s["presence_penalty"]:
                raise ValueError("speculative=True needs greedy decoding: temperature=0 and no frequency or presence "
                                 "penalty (a repetition penalty is fine)")
            if constraint is not None:
                raise ValueError("speculative=True does not combine with structured output (response_format, grammar, "
                                 "tools) yet")
            stats = stats if stats is not None else SpeculativeStats()
            self.last_stats = stats
            tokens = generate_tokens_speculative(self.decoder, prompt_ids, max_new_tokens=s["max_new_tokens"],
                                                 eos_ids=self.eos_token_ids, stats=stats,
                                                 processor=sampling.make_logits_processor(s["repetition_penalty"]))
        else:
            stats = stats if stats is not None else GenerationStats()
            self.last_stats = stats
            sampler = sampling.make_sampler(s["temperature"], s["top_k"], s["top_p"], s["min_p"], s["seed"])
            processor = sampling.make_logits_processor(s["repetition_penalty"], s["frequency_penalty"],
                                                       s["presence_penalty"], prompt_tokens=len(prompt_ids))
            if constraint is not None:  # only tokens the grammar allows, sampled as from the masked logits
                sampler = constraint.sampler(sampler, temperature=s["temperature"], top_k=s["top_k"],
                                             top_p=s["top_p"], min_p=s["min_p"])
            if confidence is not None:
                sampler, processor = _observed(sampler, processor, confidence)
            tokens = generate_tokens(self.decoder, prompt_ids, max_new_tokens=s["max_new_tokens"], sampler=sampler,
                                     processor=processor, eos_ids=self.eos_token_ids, stats=stats, constraint=constraint)
        tokens = self._with_adapter(adapter, tokens)
        # Under a grammar, special tokens are part of the syntax (a tool-call marker); it admits no others.
        detokenizer = StreamingDetokenizer(self.tokenizer, skip_special_tokens=constraint is None)
        return self._busy.hold(stream_text(tokens, detokenizer, stop, stats))

    def _with_adapter(self, adapter: str | None, tokens: Iterator[int]) -> Iterator[int]:
        # Bound when the generation starts (inside the one-at-a-time lock), not when it is requested.
        self._activate(adapter)
        yield from tokens

    def stream(self, prompt: str | Messages, *, raw: bool = False, speculative: bool = False, **kw) -> Iterator[str]:
        """Yield the reply as text pieces as they are decoded.

        `prompt` is a user message (str) or a list of chat messages; keyword arguments are
        max_new_tokens, temperature (0 = greedy), top_k, top_p, min_p, repetition_penalty, frequency_penalty and
        presence_penalty (OpenAI's, in [-2, 2]: they count only the reply's own tokens), seed, stop, and the
        structured-output fields of OpenAI's API (docs/structured.md): response_format, grammar=("lark" |
        "regex", text), tools, tool_choice, parallel_tool_calls. With tools, the stream also yields
        ToolCallDelta events (the call's id and name first, then its arguments' JSON text).
        """
        fields = structured_fields(kw)
        if fields or _has_tool_turns(prompt):
            from .structured.generation import stream_reply

            return stream_reply(self, prompt, raw=raw, fields=fields, stream_ids_kw=dict(kw, speculative=speculative))
        return self.stream_ids(self.encode_prompt(prompt, raw=raw), speculative=speculative, **kw)

    def generate(self, prompt: str | Messages, *, raw: bool = False, **kw) -> str:
        """The whole reply (see `stream` for the arguments) as a Reply: a str, plus `.tool_calls` (ToolCall
        objects: id, name, arguments parsed) and `.finish_reason` ("stop", "length" or "tool_calls")."""
        from .structured.generation import collect

        return collect(self.stream(prompt, raw=raw, **kw), self)

    def chat(self, system: str | None = None, *, adapter=_DEFAULT) -> "ChatSession":
        """A multi-turn conversation that keeps its KV cache between turns (with `adapter`, default self.adapter)."""
        adapter = self._adapter if adapter is _DEFAULT else adapter
        self._check_adapter(adapter)
        return ChatSession(self, system, adapter=adapter)


def _observed(sampler, processor, observer):
    """(sampler, processor) that show `observer` each chosen token with the model's own logits: before the
    repetition penalty and temperature, so a confidence score means the same whatever the sampling settings
    (the router's threshold was calibrated on it)."""
    raw: list = [None]

    def process(logits, seen):
        raw[0] = logits
        return processor(logits, seen) if processor is not None else logits

    def sample(logits):
        token = sampler(logits)
        observer.observe(raw[0], token)
        return token

    return sample, process


class ChatSession:
    """A conversation that keeps its KV cache between turns.

    What a turn runs: the conversation's earlier prompts stay in the cache; the previous reply does not,
    because its tokens were decoded one at a time, and onnxruntime's one-row kernels give slightly other
    numbers than the many-row ones a prompt runs with (int8 activations: logits off by up to ~1.3; fp32:
    ~5e-5). Running the reply again as part of a prompt keeps "the same conversation gives the same
    answer, whatever the cache held". `settle()` does that as soon as a reply is finished (the CLI and
    the app call it while you read), so the next turn runs only its new message and the template around
    it; without it, the next turn runs the reply too. Each message's text is tokenized once.
    """

    def __init__(self, model: Model, system: str | None = None, adapter: str | None = None):
        if system is not None and not isinstance(system, str):
            raise TypeError(f"system must be a str, got {type(system).__name__}")
        self.model = model
        self.system = system
        self.adapter = adapter  # every turn runs with it (another adapter in between costs a recompute)
        self.messages: list[dict] = []
        self.last_stats = GenerationStats()
        self.last_reply = None  # the Reply of the last turn
        self._busy = _OneAtATime("ChatSession")
        # Keeps the previous prompt's ids: a turn tokenizes only its new message and the reply before it.
        self._prompt_ids = PromptIds(model.template, model.tokenizer) if model.template is not None else None
        self.reset()

    def reset(self) -> None:
        self.messages = [{"role": "system", "content": self.system}] if self.system else []
        self._tokens_used = 0

    @property
    def tokens_used(self) -> int:
        """Tokens this conversation occupies in the context (0 for a new chat)."""
        return self._tokens_used

    def stream(self, user_text: str | None, *, confidence=None, **kw) -> Iterator[str]:
        """Yield the assistant's reply to `user_text`; the reply (even a stopped one) joins the history.

        confidence: see Model.stream_ids (the hybrid router scores the reply with it).
        Structured output and tools take the fields Model.stream does; after a reply with tool calls, give
        each call's result to add_tool_result() and call stream(None, tools=...) for the model's answer.
        Turns from several threads on one session run one after the other, each on the history as
        the previous turn left it."""
        return self._start(user_text, confidence, kw)

    def _start(self, user_text: str | None, confidence, kw: dict, sink: list | None = None) -> Iterator[str]:
        fields = structured_fields(kw)
        if user_text is not None or not self.messages or self.messages[-1]["role"] != "tool":
            _check_user_text(user_text)  # None continues after tool results only
        self.model._settings(kw)  # bad arguments fail here, at the call, not at the first next()
        structured = None
        if fields:  # bad fields too, and the grammar is compiled now
            from .structured.generation import constraint_for, prepare

            spec = prepare(self.model, fields)
            structured = (spec, constraint_for(self.model, spec))
        return self._busy.hold(self._turn(user_text, confidence, kw, structured, sink))

    def add_exchange(self, user_text: str, reply: str) -> None:
        """Put a turn answered elsewhere (the hybrid router's fallback) into the history: the next turn
        computes its tokens like any other part of the conversation."""
        _check_user_text(user_text)
        if not isinstance(reply, str):
            raise TypeError(f"reply must be a str, got {type(reply).__name__}")
        self.messages += [{"role": "user", "content": user_text}, {"role": "assistant", "content": reply}]
        self._tokens_used = len(self._encode(self.messages))

    def revise_reply(self, reply: str) -> None:
        """Replace the last assistant reply (the router's fallback answered instead). The cache keeps the
        part of the conversation before it; the next turn recomputes the rest."""
        if not isinstance(reply, str):
            raise TypeError(f"reply must be a str, got {type(reply).__name__}")
        if not self.messages or self.messages[-1]["role"] != "assistant":
            raise ValueError("there is no reply to revise: the conversation does not end with one")
        self.messages[-1] = {"role": "assistant", "content": reply}
        self._tokens_used = len(self._encode(self.messages))

    def add_tool_result(self, tool_call_id: str, content) -> None:
        """The result of one of the last reply's tool calls (a str; other values are sent as JSON)."""
        called = {c.get("id") for m in self.messages if m["role"] == "assistant" for c in m.get("tool_calls") or ()}
        if tool_call_id not in called:
            raise ValueError(f"no tool call with id {tool_call_id!r} in this conversation")
        if not isinstance(content, str):
            import json

            content = json.dumps(content, ensure_ascii=False)
        self.messages.append({"role": "tool", "tool_call_id": tool_call_id, "content": content})

    def fits(self, user_text: str) -> bool:
        """Whether the device model has room for `user_text` after this conversation (and for a reply)."""
        return len(self._next_ids(user_text)) < self.model.max_context

    def settle(self) -> int:
        """Run the last reply (and the template's end of its turn) as a prompt pass now, so that the next
        turn runs only its own message: call it while the user reads. Returns the tokens run (0: nothing
        to do). It takes the time the next turn would otherwise spend first, and leaves the cache exactly
        as that turn would have: the answer does not change."""
        done = [0]

        def work():
            done[0] = self._settle()
            yield from ()

        for _ in self._busy.hold(self.model._busy.hold(work())):  # the session's lock first, as a turn takes them
            pass
        return done[0]

    def _settle(self) -> int:
        if (self._prompt_ids is None or not self.messages or self.messages[-1]["role"] != "assistant"
                or _has_tool_turns(self.messages)):  # tool turns render through the structured encoder
            return 0
        marker = "\ue000next\ue001"  # a private-use stand-in for the next message: no template touches it
        ids = self._prompt_ids.prefix([*self.messages, {"role": "user", "content": marker}], marker)
        decoder = self.model.decoder
        if len(ids) >= self.model.max_context or (decoder.clean >= len(ids) and decoder.tokens[:len(ids)] == ids):
            return 0  # no room for a next turn anyway, or already settled
        self.model._activate(self.adapter)
        return decoder.prefill(ids)[1]

    def _next_ids(self, user_text: str | None, spec=None) -> list[int]:
        """The prompt of the next turn: this conversation, `user_text`, and the assistant's header."""
        turn = [] if user_text is None else [{"role": "user", "content": user_text}]
        return self._encode([*self.messages, *turn], spec)

    def _encode(self, messages, spec=None) -> list[int]:
        if spec is not None or _has_tool_turns(messages):
            from .structured.generation import encode

            return encode(self.model, messages, spec)
        if self._prompt_ids is None:
            return self.model.encode_prompt(messages)  # a clear error that names the missing template
        return self._prompt_ids(messages)

    def _turn(self, user_text: str | None, confidence, kw: dict, structured=None, sink=None) -> Iterator[str]:
        spec, constraint = structured or (None, None)
        ids = self._next_ids(user_text, spec)
        if len(ids) >= self.model.max_context:  # fail before the history changes; leave room for a reply
            from edge_sdk.errors import ContextLengthError

            raise ContextLengthError(
                f"the conversation needs {len(ids)} tokens but the maximum context is {self.model.max_context}; "
                "start a new chat (reset()) to continue"
            )
        stats = GenerationStats()
        self.last_stats = stats
        pieces = self.model.stream_ids(ids, stats=stats, confidence=confidence, adapter=self.adapter,
                                       constraint=constraint, **kw)
        if structured is not None or _has_tool_turns(self.messages):
            from .structured.generation import ReplyStream

            pieces = ReplyStream(pieces, spec, stats)
        if user_text is not None:
            self.messages.append({"role": "user", "content": user_text})
        reply: list[str] = []
        try:
            for piece in pieces:
                if isinstance(piece, str):
                    reply.append(piece)
                yield piece
        finally:
            pieces.close()
            from .structured.generation import finished_reply

            self.last_reply = finished_reply(pieces, "".join(reply), stats)
            if sink is not None:  # send()'s own reply, whatever turn another thread runs next
                sink.append(self.last_reply)
            self.messages.append(self.last_reply.message())
            self._tokens_used = len(self.model.decoder.tokens)

    def send(self, user_text: str | None, **kw) -> str:
        """The whole reply as a Reply (a str with .tool_calls and .finish_reason; see Model.generate)."""
        sink: list = []
        for _ in self._start(user_text, kw.pop("confidence", None), kw, sink):
            pass
        return sink[0]


def structured_fields(kw: dict) -> dict:
    """Take the structured-output fields (response_format, grammar, tools, ...) out of generation arguments."""
    from .structured.generation import pop_fields

    return pop_fields(kw)


def _has_tool_turns(prompt) -> bool:
    from .structured.render import has_tool_turns

    return has_tool_turns(prompt)


def _check_user_text(user_text) -> None:
    if not isinstance(user_text, str):
        raise TypeError(f"user_text must be a str, got {type(user_text).__name__}")
    if not user_text:
        raise ValueError("user_text is empty")


_WRONG_KIND = {
    "decoder": "{path} is an embedder bundle (it turns text into vectors for document search), not a language model; "
               "this needs a bundle exported from a chat model, e.g. `edge-sdk export smollm2-135m-instruct --output DIR`",
    "embedder": "{path} is a language-model bundle, not an embedder; document search needs an embedder bundle, e.g. "
                "`edge-sdk export all-minilm-l6-v2 --output DIR`",
}


def load(bundle_dir: str | os.PathLike, device: str | None = None, threads: int | None = None,
         tokenizer_backend: str = "auto", trusted_keys=None, kind: str | None = None, *,
         max_context: int | None = None, force: bool = False,
         packed_cache: str | os.PathLike | None = None) -> "Model | Embedder":
    """Load an edge bundle: check its manifest, confine and hash its files, open its graph(s).

    Returns a Model (generates text) or, for a bundle of kind "embedder", an Embedder (sentence vectors).
    kind: "decoder" or "embedder" to insist on one (a clear BundleError for the other, before any graph opens).

    device: a device profile name overriding the bundle's own (e.g. "x86-64-laptop").
    threads: intra-op threads (default: the profile's; env EDGE_SDK_THREADS overrides).
    trusted_keys: Ed25519 public keys (key lines, raw bytes or key files); when given, the bundle must
        be signed by one of them (`edge-sdk sign`), else BundleError.
    max_context: size the KV cache for fewer tokens than the bundle's maximum (fused bundles): less memory.
    force: load even when the memory estimate exceeds what the device has available (runtime/fit.py);
        without it that is a DeviceFitError, raised before onnxruntime allocates anything.
    packed_cache: a folder for onnxruntime's packed weights (runtime/packed.py: written on the first load,
        mapped on later ones), or "off"; default EDGE_SDK_PACKED_CACHE, else ~/.cache/edge-sdk/packed.
    """
    bundle_dir = Path(os.path.realpath(bundle_dir))
    manifest = read_manifest(bundle_dir, trusted_keys=trusted_keys)
    if kind is not None and manifest_kind(manifest) != kind:
        raise BundleError(_WRONG_KIND[kind].format(path=bundle_dir))
    if manifest_kind(manifest) == "embedder":
        from .embed import Embedder

        return Embedder(bundle_dir, manifest, _session_config(manifest, device, threads), tokenizer_backend)
    from .fit import check_context, check_fit

    capacity = check_context(manifest, max_context)
    config = _session_config(manifest, device, threads)
    config.packed_cache = None if packed_cache is None else str(packed_cache)
    need = check_fit(manifest, capacity, force=force)
    model = Model(bundle_dir, manifest, config, tokenizer_backend, capacity=capacity)
    model.memory_need = need  # the estimate it was admitted with (edge-sdk run --json reports it)
    return model
