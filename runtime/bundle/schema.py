"""The manifest's schema: every field the runtime reads, its type and its sane range.

A bundle is untrusted input, so a wrong type must not slip through as a silent change of behaviour
(`eos_token_ids: "2"` once disabled end-of-sequence) and an absurd size must not become an
allocation or a thread pool (`threads: 300` started 302 threads; `max_context: 10**9` would ask for
terabytes of KV cache). Each failure is a BundleError naming the field, e.g. `tokenizer.eos_token_ids`.

Fields the runtime does not read (provenance, validation figures, descriptions) are only required
to be of the right kind of JSON value.
"""
from __future__ import annotations

import math
import string
from typing import Any

from edge_sdk.errors import BundleError

from ..display import printable
from .files import MANIFEST_NAME, check_name

# Bounds: generous for any model a phone or a board runs, small enough that nothing explodes.
MAX_THREADS = 64  # the devices edge-sdk targets have at most 16 cores
MAX_CONTEXT = 1 << 17  # 131072 tokens
MAX_VOCAB = 1 << 21  # Gemma 3 has 262144 entries
MAX_LAYERS, MAX_HEADS, MAX_HEAD_DIM = 512, 1024, 1024
MAX_KV_BYTES = 16 << 30  # the KV cache is preallocated at load: refuse what no edge device has
MAX_TEXT = 1 << 20  # an inline chat template or a stop string list, in characters
MAX_STR = 4096

FLAVOURS = ("fused", "static")
GRAPH_FILES = {"fused": ("decoder",), "static": ("prefill", "decode")}
KV_DTYPES = {"float32": 4, "float16": 2, "int8": 1, "uint8": 1}
# Execution-provider options a bundle may set. Anything else (QNN's backend_path above all: it names
# a shared library to load) comes only from the caller or a device profile the caller chose.
BUNDLE_PROVIDER_OPTIONS = {
    "QNNExecutionProvider": ("htp_arch", "soc_model", "enable_htp_fp16_precision", "htp_performance_mode",
                             "htp_graph_finalization_optimization_mode", "vtcm_mb"),
}
KNOWN_PROVIDERS = ("QNNExecutionProvider", "CoreMLExecutionProvider", "XnnpackExecutionProvider",
                   "NnapiExecutionProvider", "CPUExecutionProvider")


def _fail(field: str, problem: str, value: Any = None) -> BundleError:
    shown = "" if value is None else f", got {str(value)[:120]!r}" if isinstance(value, str) else f", got {str(value)[:120]}"
    return BundleError(f"{MANIFEST_NAME}: field '{field}' {problem}{shown}; the bundle is malformed - re-export it")


def _section(m: dict, key: str) -> dict:
    value = m.get(key)
    if not isinstance(value, dict):
        raise _fail(key, "must be a JSON object", value if key in m else "nothing")
    return value


def _int(d: dict, key: str, where: str, lo: int, hi: int, *, required: bool = True, default=None):
    if key not in d or d[key] is None:
        if required:
            raise _fail(f"{where}.{key}", "is missing")
        return default
    v = d[key]
    if not isinstance(v, int) or isinstance(v, bool) or not lo <= v <= hi:
        raise _fail(f"{where}.{key}", f"must be an integer from {lo} to {hi}", v)
    return v


def _number(d: dict, key: str, where: str, lo: float, hi: float, *, lo_open=False) -> None:
    if key not in d or d[key] is None:
        return
    v = d[key]
    if (not isinstance(v, (int, float)) or isinstance(v, bool) or not math.isfinite(v) or v > hi
            or (v <= lo if lo_open else v < lo)):
        raise _fail(f"{where}.{key}", f"must be a number in {'(' if lo_open else '['}{lo}, {hi}]", v)


def _str(d: dict, key: str, where: str, *, required: bool = True, limit: int = MAX_STR, choices=None,
         shown: bool = False):
    """A string field; `shown`: one the CLI prints (a name), so one line without terminal control characters."""
    if key not in d or d[key] is None:
        if required:
            raise _fail(f"{where}.{key}", "is missing")
        return None
    v = d[key]
    if not isinstance(v, str) or len(v) > limit or (choices is not None and v not in choices):
        raise _fail(f"{where}.{key}", f"must be {'one of ' + ', '.join(choices) if choices else 'a string'}", v)
    if shown and printable(v) != v:
        raise _fail(f"{where}.{key}", "must be one line without control characters or bidi overrides", v)
    return v


def _bool(d: dict, key: str, where: str) -> None:
    if key in d and d[key] is not None and not isinstance(d[key], bool):
        raise _fail(f"{where}.{key}", "must be true or false", d[key])


def _names(d: dict, key: str, where: str) -> dict[str, str]:
    v = d.get(key)
    if not isinstance(v, dict) or not v:
        raise _fail(f"{where}.{key}", "must map graph roles to file names", v)
    for role, name in v.items():
        check_name(name, f"'{where}.{key}.{role}'")
    return v


def _kv_pattern(d: dict, key: str) -> None:
    """`past`/`present` are str.format patterns: only {layer} and {kind}, no attribute access or padding."""
    pattern = _str(d, key, "kv_cache", limit=200)
    try:
        fields = [(f, spec, conv) for _, f, spec, conv in string.Formatter().parse(pattern) if f is not None]
    except ValueError:
        fields = None
    if not fields or any(f not in ("layer", "kind") or spec or conv for f, spec, conv in fields) \
            or {f for f, _, _ in fields} != {"layer", "kind"}:
        raise _fail(f"kv_cache.{key}", "must be a name pattern with exactly the fields {layer} and {kind}", pattern)


def _provider_options(options: Any, where: str) -> None:
    if options is None:
        return
    if not isinstance(options, dict):
        raise _fail(where, "must be a JSON object", options)
    for ep, opts in options.items():
        allowed = BUNDLE_PROVIDER_OPTIONS.get(ep, ())
        if not isinstance(opts, dict):
            raise _fail(f"{where}.{ep}", "must be a JSON object", opts)
        for k, v in opts.items():
            if k not in allowed:
                raise _fail(f"{where}.{ep}.{k}", "is not an option a bundle may set (allowed: "
                                                 f"{', '.join(allowed) or 'none'})")
            if not isinstance(v, (str, int)) or isinstance(v, bool) or len(str(v)) > 32:
                raise _fail(f"{where}.{ep}.{k}", "must be a short string or integer", v)


def validate(m: dict[str, Any]) -> None:
    """Raise BundleError naming the first field of manifest `m` that the runtime cannot safely use."""
    if m.get("kind", "decoder") == "embedder":
        return _validate_embedder(m)
    for key in ("architecture", "graph", "kv_cache", "tokenizer", "chat_template", "generation", "quantization",
                "device", "provenance", "validation"):
        _section(m, key)
    _str(m, "name", "manifest", required=False, limit=200, shown=True)

    arch = m["architecture"]
    vocab = _int(arch, "vocab_size", "architecture", 1, MAX_VOCAB)

    graph = m["graph"]
    flavour = _str(graph, "flavour", "graph", choices=FLAVOURS)
    files = _names(graph, "files", "graph")
    for role in GRAPH_FILES[flavour]:
        if role not in files:
            raise _fail(f"graph.files.{role}", f"is missing (the {flavour} flavour runs it)")
    context = _int(graph, "max_context", "graph", 1, MAX_CONTEXT)
    if flavour == "static":
        _int(graph, "prefill_chunk", "graph", 1, context)
        _number(graph, "mask_value", "graph", -1e30, 0.0)
        if not isinstance(graph.get("inputs", {}), dict) or not all(
                isinstance(k, str) and isinstance(v, str) for k, v in graph.get("inputs", {}).items()):
            raise _fail("graph.inputs", "must map input roles to names", graph.get("inputs"))
        if graph.get("context_binaries") is not None:
            cb = graph["context_binaries"]
            if not isinstance(cb, dict):
                raise _fail("graph.context_binaries", "must be a JSON object", cb)
            _names(cb, "files", "graph.context_binaries")
        _provider_options({"QNNExecutionProvider": graph.get("qnn_options")} if graph.get("qnn_options") is not None
                          else None, "graph.qnn_options")
    elif "inputs" in graph and not (isinstance(graph["inputs"], list) and all(isinstance(x, str) for x in graph["inputs"])):
        raise _fail("graph.inputs", "must be a list of input names", graph["inputs"])

    kv = m["kv_cache"]
    layers = _int(kv, "num_layers", "kv_cache", 1, MAX_LAYERS)
    heads = _int(kv, "num_kv_heads", "kv_cache", 1, MAX_HEADS)
    head_dim = _int(kv, "head_dim", "kv_cache", 1, MAX_HEAD_DIM)
    dtype = _str(kv, "dtype", "kv_cache", required=False, choices=tuple(KV_DTYPES)) or "float32"
    from ..kv_cache import KV_FORMATS

    fmt = KV_FORMATS[_str(kv, "format", "kv_cache", required=False, choices=tuple(KV_FORMATS)) or "float"]
    if (fmt.dtype or "float32") != dtype and not (fmt.dtype is None and dtype == "float16"):
        raise _fail("kv_cache.dtype", f"must be {fmt.dtype or 'float32 or float16'} for the {fmt.name} format", dtype)
    if fmt.name != "float" and flavour != "fused":
        raise _fail("kv_cache.format", "is only supported on the fused flavour (GroupQueryAttention)", fmt.name)
    if head_dim % fmt.values_per_element:
        raise _fail("kv_cache.head_dim", f"must be a multiple of {fmt.values_per_element} for the {fmt.name} format",
                    head_dim)
    _kv_pattern(kv, "past")
    _kv_pattern(kv, "present")
    kv_bytes = 2 * layers * heads * head_dim // fmt.values_per_element * context * KV_DTYPES[dtype]
    if kv_bytes > MAX_KV_BYTES:
        raise _fail("graph.max_context", f"gives a KV cache of {kv_bytes / 2**30:.1f} GiB "
                                         f"({layers} layers x {heads} heads x {head_dim} x {context} tokens), over the "
                                         f"{MAX_KV_BYTES >> 30} GiB any edge device could hold")

    tok = m["tokenizer"]
    check_name(_str(tok, "file", "tokenizer"), "'tokenizer.file'")
    if tok.get("compact_file") is not None:
        check_name(_str(tok, "compact_file", "tokenizer"), "'tokenizer.compact_file'")
    for key in ("bos_token_id", "pad_token_id"):
        _int(tok, key, "tokenizer", 0, vocab - 1, required=False)
    eos = tok.get("eos_token_ids")
    if (not isinstance(eos, list) or not eos or len(eos) > 64
            or any(not isinstance(t, int) or isinstance(t, bool) or not 0 <= t < vocab for t in eos)):
        raise _fail("tokenizer.eos_token_ids", f"must be a non-empty list of token ids (integers 0 to {vocab - 1})",
                    eos if "eos_token_ids" in tok else "nothing")
    for key in ("bos_token", "eos_token"):
        _str(tok, key, "tokenizer", required=False, limit=200)
    _bool(tok, "add_bos", "tokenizer")

    ct = m["chat_template"]
    if ct.get("file") is not None:
        check_name(_str(ct, "file", "chat_template"), "'chat_template.file'")
    _str(ct, "template", "chat_template", required=False, limit=MAX_TEXT)

    gen = m["generation"]
    _int(gen, "max_new_tokens", "generation", 0, MAX_CONTEXT, required=False)
    _number(gen, "temperature", "generation", 0.0, 100.0)
    _int(gen, "top_k", "generation", 0, vocab, required=False)
    _number(gen, "top_p", "generation", 0.0, 1.0, lo_open=True)
    _number(gen, "min_p", "generation", 0.0, 0.999999)
    _number(gen, "repetition_penalty", "generation", 0.0, 100.0, lo_open=True)
    _int(gen, "seed", "generation", 0, 2**63 - 1, required=False)
    _str(gen, "source", "generation", required=False, limit=MAX_STR)  # where the defaults came from (for people)
    stop = gen.get("stop")
    from ..stopping import MAX_STOP_CHARS, MAX_STOP_STRINGS  # the limits every generation applies

    if stop is not None and not (isinstance(stop, str) and 0 < len(stop) <= MAX_STOP_CHARS) and not (
            isinstance(stop, list) and len(stop) <= MAX_STOP_STRINGS
            and all(isinstance(s, str) and 0 < len(s) <= MAX_STOP_CHARS for s in stop)):
        raise _fail("generation.stop", f"must be a non-empty string or a list of up to {MAX_STOP_STRINGS} of them, "
                                       f"each of at most {MAX_STOP_CHARS} characters", stop)

    _str(m["quantization"], "format", "quantization", required=False, limit=64)
    _str(m["quantization"], "recipe", "quantization", required=False, limit=200, shown=True)  # printed by the CLI
    _device(m["device"])
    if m.get("lora") is not None:
        _lora(m["lora"], layers, flavour)


def _lora(lora: Any, layers: int, flavour: str) -> None:
    """Run-time adapters (runtime/lora): slot dimensions and adapter files."""
    from ..lora.slots import MAX_ADAPTERS, MAX_RANK, SLOTS, valid_name

    if not isinstance(lora, dict):
        raise _fail("lora", "must be a JSON object", lora)
    if flavour != "fused":
        raise _fail("lora", "is only supported on the fused flavour", flavour)
    if _int(lora, "layers", "lora", 1, MAX_LAYERS) != layers:
        raise _fail("lora.layers", "must equal kv_cache.num_layers", lora.get("layers"))
    slots = lora.get("slots")
    if not isinstance(slots, dict) or not slots or any(s not in SLOTS for s in slots):
        raise _fail("lora.slots", f"must map slots ({', '.join(SLOTS)}) to [in, out]", slots)
    for slot, dims in slots.items():
        if not (isinstance(dims, list) and len(dims) == 2 and all(isinstance(d, int) and not isinstance(d, bool)
                                                                   and 1 <= d <= 1 << 20 for d in dims)):
            raise _fail(f"lora.slots.{slot}", "must be [in, out], two positive integers", dims)
    adapters = lora.get("adapters") or {}
    if not isinstance(adapters, dict) or len(adapters) > MAX_ADAPTERS:
        raise _fail("lora.adapters", f"must map at most {MAX_ADAPTERS} adapter names to their files", adapters)
    for name, spec in adapters.items():
        if not valid_name(name):
            raise _fail("lora.adapters", "names must be 1-64 letters, digits, '-', '_' or '.'", name)
        if not isinstance(spec, dict):
            raise _fail(f"lora.adapters.{name}", "must be a JSON object", spec)
        check_name(_str(spec, "file", f"lora.adapters.{name}"), f"'lora.adapters.{name}.file'")
        _int(spec, "rank", f"lora.adapters.{name}", 1, MAX_RANK, required=False)


def _device(dev: dict) -> None:
    eps = dev.get("execution_providers")
    if eps is not None and (not isinstance(eps, list) or not eps or len(set(map(str, eps))) != len(eps)
                            or any(ep not in KNOWN_PROVIDERS for ep in eps)):
        raise _fail("device.execution_providers", f"must list execution providers from {', '.join(KNOWN_PROVIDERS)}",
                    eps)
    _str(dev, "profile", "device", required=False, limit=200, shown=True)  # printed by package, errors
    _int(dev, "threads", "device", 1, MAX_THREADS, required=False)
    _bool(dev, "npu_only", "device")
    _bool(dev, "kleidiai", "device")
    _provider_options(dev.get("provider_options"), "device.provider_options")


POOLINGS = ("mean", "cls", "max")  # runtime/embed/pooling.py
MAX_BATCH_TOKENS = 1 << 16


def _ids(d: dict, key: str, where: str, vocab: int) -> None:
    v = d.get(key, [])
    if not isinstance(v, list) or len(v) > 8 or any(not isinstance(t, int) or isinstance(t, bool) or not 0 <= t < vocab
                                                     for t in v):
        raise _fail(f"{where}.{key}", f"must be a list of at most 8 token ids (0 to {vocab - 1})", v)


def _validate_embedder(m: dict[str, Any]) -> None:
    """The fields an Embedder reads (runtime/embed/embedder.py)."""
    for key in ("architecture", "graph", "tokenizer", "embedding", "quantization", "device", "provenance", "validation"):
        _section(m, key)
    _str(m, "name", "manifest", required=False, limit=200, shown=True)
    vocab = _int(m["architecture"], "vocab_size", "architecture", 1, MAX_VOCAB)
    positions = _int(m["architecture"], "max_position_embeddings", "architecture", 2, MAX_CONTEXT)
    graph = m["graph"]
    _str(graph, "flavour", "graph", choices=("encoder",))
    files = _names(graph, "files", "graph")
    if "encoder" not in files:
        raise _fail("graph.files.encoder", "is missing (an embedder runs it)")
    tok = m["tokenizer"]
    check_name(_str(tok, "file", "tokenizer"), "'tokenizer.file'")
    _int(tok, "pad_token_id", "tokenizer", 0, vocab - 1)
    _ids(tok, "prefix_ids", "tokenizer", vocab)
    _ids(tok, "suffix_ids", "tokenizer", vocab)
    emb = m["embedding"]
    _int(emb, "dim", "embedding", 1, 1 << 16)
    _str(emb, "pooling", "embedding", choices=POOLINGS)
    _bool(emb, "normalize", "embedding")
    max_tokens = _int(emb, "max_tokens", "embedding", len(tok.get("prefix_ids", [])) + len(tok.get("suffix_ids", [])) + 1,
                      positions)
    _int(emb, "batch_size", "embedding", 1, max(1, MAX_BATCH_TOKENS // max_tokens), required=False)
    _str(m["quantization"], "recipe", "quantization", required=False, limit=200, shown=True)
    _device(m["device"])


def opened_files(m: dict[str, Any]) -> list[tuple[str, str]]:
    """(field, name) of every file the runtime opens directly (graphs reference more; see onnx_refs)."""
    graph = m["graph"]
    out = [(f"graph.files.{role}", name) for role, name in graph["files"].items()]
    if isinstance(graph.get("context_binaries"), dict):
        out += [(f"graph.context_binaries.files.{role}", name) for role, name in graph["context_binaries"]["files"].items()]
    out.append(("tokenizer.file", m["tokenizer"]["file"]))
    if m["tokenizer"].get("compact_file"):
        out.append(("tokenizer.compact_file", m["tokenizer"]["compact_file"]))
    for name, spec in ((m.get("lora") or {}).get("adapters") or {}).items():
        out.append((f"lora.adapters.{name}.file", spec["file"]))
    if m.get("chat_template", {}).get("file"):
        out.append(("chat_template.file", m["chat_template"]["file"]))
    return out
