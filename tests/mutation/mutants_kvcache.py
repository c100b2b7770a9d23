"""Mutants of the memory work: the quantized KV cache, chunked prefill, fit before load (issue 26)."""
from __future__ import annotations

from .mutants import Mutant

KVQ = "tests/exporters/test_kv_quant.py::"
CHUNK = "tests/runtime/test_chunked_prefill.py::"
FIT = "tests/runtime/test_fit.py::"

MUTANTS = (
    Mutant("kv cache: keys bounded at the calibrated positions only", "exporters/graph/kv_quant.py",
           "    out[:, :half] = np.where(full, norm, first)\n    out[:, half:2 * half] = np.where(full, norm, second)\n",
           "",
           (KVQ + "test_key_bound_covers_every_position_the_context_reaches",)),
    Mutant("kv cache: the sweep stops short of the context's last angle", "exporters/graph/kv_quant.py",
           "reach = np.minimum((capacity - 1) * inv_freq, 2 * np.pi)",
           "reach = np.minimum((capacity - 1) * inv_freq / 2, 2 * np.pi)",
           (KVQ + "test_key_bound_covers_every_position_the_context_reaches",)),
    Mutant("kv cache: scales map the bound past the largest code", "exporters/graph/kv_quant.py",
           "    top = 2 ** (bits - 1) - 1\n    return (np.maximum(bound, 1e-12) / top)",
           "    top = 2 ** bits - 1\n    return (np.maximum(bound, 1e-12) / top)",
           (KVQ + "test_the_rewrite_gives_every_attention_its_own_scales_and_types",
            KVQ + "test_a_quantized_cache_is_written_in_place_and_rewinds_in_o1")),
    Mutant("kv cache: int4 buffers not packed two values a byte", "runtime/kv_cache.py",
           'KVFormat("int4", "uint8", 2, 4)', 'KVFormat("int4", "uint8", 1, 4)',
           (KVQ + "test_a_quantized_cache_is_written_in_place_and_rewinds_in_o1",
            FIT + "test_the_estimate_adds_up_its_parts")),
    Mutant("kv cache: an older onnxruntime is not refused", "runtime/kv_cache.py",
           "    if have < MIN_ORT_FOR_QUANTIZED:", "    if False:",
           (KVQ + "test_an_older_onnxruntime_is_refused_with_the_fix",)),
    Mutant("chunked prefill: a long prompt runs in one pass", "runtime/engine.py",
           "        if len(pieces) == 1:\n            return self._prefill(ids, all_logits)",
           "        if True:\n            return self._prefill(ids, all_logits)",
           (CHUNK + "test_chunked_prefill_gives_the_one_shot_logits",)),
    Mutant("chunked prefill: a lone last row is left", "runtime/engine.py",
           "        bounds[-2] = n - MIN_PREFILL_ROWS", "        pass",
           (CHUNK + "test_split_rows_covers_the_prompt_without_a_lone_row",)),
    Mutant("fit: a bundle that does not fit is loaded", "runtime/fit.py",
           "if force or available.bytes is None or need.total <= available.bytes:",
           "if True:",
           (FIT + "test_refusal_names_the_figures_and_what_would_fit",
            FIT + "test_load_refuses_before_onnxruntime_allocates_anything")),
    Mutant("fit: the KV cache left out of the estimate", "runtime/fit.py",
           "return self.weights + self.kv_cache + self.activations + self.tokenizer",
           "return self.weights + self.activations + self.tokenizer",
           (FIT + "test_the_estimate_adds_up_its_parts", FIT + "test_refusal_names_the_figures_and_what_would_fit")),
    Mutant("fit: the suggested context does not fit", "runtime/fit.py",
           "if memory_need(manifest, c, need.chunk).total <= available), None)",
           "if memory_need(manifest, c + 256, need.chunk).total <= available), None)",
           (FIT + "test_refusal_names_the_figures_and_what_would_fit",)),
    Mutant("fit: a container's memory limit ignored", "runtime/fit.py",
           "    if limit is not None and limit < found.bytes:", "    if False:",
           (FIT + "test_available_memory_reads_meminfo_and_a_container_limit",)),
    Mutant("fit: checked after the session is made", "runtime/model.py",
           "    need = check_fit(manifest, capacity, force=force)\n    model = Model(bundle_dir, manifest, config, "
           "tokenizer_backend, capacity=capacity)\n",
           "    model = Model(bundle_dir, manifest, config, tokenizer_backend, capacity=capacity)\n"
           "    need = check_fit(manifest, capacity, force=force)\n",
           (FIT + "test_load_refuses_before_onnxruntime_allocates_anything",)),
)
