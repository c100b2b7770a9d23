"""Tiny random-weight models and bundles for tests and demos (host side: needs torch + transformers).

`make_tiny_model_dir` writes a Hugging Face model folder from an architecture's `fake()` config with
random weights and a small byte-level BPE tokenizer trained on generated text, so the whole export
path (folder source -> graph -> bundle -> validation) runs in seconds.
"""
from __future__ import annotations

from pathlib import Path

CHATML = (
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
# Gemma 3's chat template (its tokenizer_config.json, images left out): a "model" role, <end_of_turn> closing
# every turn, <bos> written by the template itself, alternation enforced with raise_exception.
GEMMA3_CHAT = (
    "{{ bos_token }}"
    "{%- if messages[0]['role'] == 'system' -%}"
    "{%- set first_user_prefix = messages[0]['content'] + '\n\n' -%}{%- set loop_messages = messages[1:] -%}"
    "{%- else -%}{%- set first_user_prefix = \"\" -%}{%- set loop_messages = messages -%}{%- endif -%}"
    "{%- for message in loop_messages -%}"
    "{%- if (message['role'] == 'user') != (loop.index0 % 2 == 0) -%}"
    "{{ raise_exception(\"Conversation roles must alternate user/assistant/user/assistant/...\") }}{%- endif -%}"
    "{%- if (message['role'] == 'assistant') -%}{%- set role = \"model\" -%}{%- else -%}"
    "{%- set role = message['role'] -%}{%- endif -%}"
    "{{ '<start_of_turn>' + role + '\n' + (first_user_prefix if loop.first else \"\") }}"
    "{{ message['content'] | trim }}{{ '<end_of_turn>\n' }}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{'<start_of_turn>model\n'}}{%- endif -%}"
)
# Per family: (special tokens, ids in that order, bos, eos, pad, chat template) of the tiny test tokenizer.
CHAT_STYLES = {
    "chatml": (SPECIALS, "<|im_start|>", "<|im_end|>", "<|im_end|>", CHATML),
    "gemma3_text": (["<pad>", "<eos>", "<bos>", "<start_of_turn>", "<end_of_turn>"], "<bos>", "<eos>", "<pad>",
                    GEMMA3_CHAT),
}


def _corpus() -> list[str]:
    words = ("the quick brown fox jumps over lazy dog hello world edge device phone model token cache "
             "paris france capital sea haiku sky blue light water numbers 0 1 2 3 4 5 6 7 8 9").split()
    lines = []
    for i in range(400):
        lines.append(" ".join(words[(i * 7 + j * 3) % len(words)] for j in range(12)) + ".")
    lines += ["Ünïcödé café 中文 😀 русский العربية", "def f(x):\n    return x * 2\n"]
    return lines


def make_tokenizer(vocab_size: int, specials: list[str] = SPECIALS):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=specials,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(_corpus(), trainer)
    return tok


def random_hf_model(model_type: str = "llama", seed: int = 0, **config_extra):
    """(ModelArgs, transformers model in eval mode) with random weights for the architecture's fake() config."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    from edge_sdk.exporters.architectures import get_module

    module = get_module(model_type)
    fake = module.fake()
    cfg = module.hf_config(fake) if hasattr(module, "hf_config") else fake.to_dict()  # config.json naming
    cfg = {k: v for k, v in cfg.items() if v is not None}  # an explicit None can hide transformers' own default
    cfg.update(config_extra)  # e.g. wider layers: k-quant blocks span 256 inputs
    args = module.ModelArgs.from_config(cfg)
    torch.manual_seed(seed)
    return args, AutoModelForCausalLM.from_config(AutoConfig.for_model(**cfg)).eval()


def make_tiny_model_dir(out_dir: str | Path, model_type: str = "llama", seed: int = 0, *, chat: bool = True,
                        **config) -> Path:
    """A Hugging Face folder of a random model; `chat=False`: a base model, whose tokenizer has no chat template."""
    import torch
    from transformers import PreTrainedTokenizerFast

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    specials, bos, eos, pad, template = CHAT_STYLES.get(model_type, CHAT_STYLES["chatml"])
    args, model = random_hf_model(model_type, seed, bos_token_id=specials.index(bos), eos_token_id=specials.index(eos),
                                  pad_token_id=specials.index(pad), **config)
    with torch.no_grad():  # random init is small; widen it so greedy text is varied, not one repeated token
        for p in model.parameters():
            if p.dim() == 2:
                p.normal_(0, 0.15)
    model.save_pretrained(out)
    tok = PreTrainedTokenizerFast(tokenizer_object=make_tokenizer(args.vocab_size, specials), bos_token=bos,
                                  eos_token=eos, pad_token=pad, unk_token=None)
    if chat:
        tok.chat_template = template
    tok.save_pretrained(out)
    return out


def make_tiny_bundle(out_dir: str | Path, model_type: str = "llama", recipe: str = "fp32", seed: int = 0,
                     max_context: int = 256, force: bool = True) -> Path:
    """A validated bundle of a tiny random model (nonsense text, real graph and runtime)."""
    import tempfile

    from edge_sdk.exporters.export import export

    out = Path(out_dir)
    with tempfile.TemporaryDirectory() as tmp:
        src = make_tiny_model_dir(Path(tmp) / f"tiny-{model_type}", model_type, seed)
        export(str(src), out, recipe=recipe, max_context=max_context, force=force, progress=False)
    return out


def write_gguf(path: str | Path, arch: str | None = "llama", *, block_count: int | None = None,
               tokens: list[str] | None = None, tensors: dict | None = None, arch_after_vocab: bool = False) -> Path:
    """A small GGUF file for tests of the header reader (gguf-py's writer; no real weights).

    `arch_after_vocab` writes general.architecture after the token list, as a hostile file may."""
    import gguf

    w = gguf.GGUFWriter(str(path), None if arch_after_vocab else arch)
    if block_count is not None:
        w.add_block_count(block_count)
    if tokens is not None:
        w.add_token_list(tokens)
    if arch_after_vocab:
        w.add_string("general.architecture", arch)
    for name, array in (tensors or {}).items():
        w.add_tensor(name, array)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return Path(path)


def make_wordpiece_tokenizer(vocab_size: int = 600):
    """A BERT-layout WordPiece tokenizer (lowercasing BertNormalizer, [CLS] A [SEP]) trained on the corpus."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece(prefix="##")
    tok.train_from_iterator(_corpus(), trainers.WordPieceTrainer(vocab_size=vocab_size, special_tokens=specials,
                                                                 show_progress=False))
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", tok.token_to_id("[CLS]")), ("[SEP]", tok.token_to_id("[SEP]"))])
    return tok


def make_tiny_embedder_dir(folder: Path, pooling: str = "mean", normalize: bool = True, seed: int = 0,
                           max_seq_length: int = 48) -> Path:
    """A sentence-transformers folder around a 2-layer random BERT (the fake() encoder config): the source
    of embedder-export tests, saved by sentence-transformers itself so its files are the real layout."""
    import dataclasses
    import warnings

    import torch
    from sentence_transformers import SentenceTransformer
    from transformers import BertConfig, BertModel, PreTrainedTokenizerFast

    from .embedder.architecture import fake

    folder = Path(folder)
    hf_dir = folder.parent / f".{folder.name}-hf"
    tok = make_wordpiece_tokenizer()
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", cls_token="[CLS]", sep_token="[SEP]",
                                   pad_token="[PAD]", mask_token="[MASK]")
    cfg = {k: v for k, v in dataclasses.asdict(fake()).items() if k != "model_type"}
    cfg["vocab_size"] = tok.get_vocab_size()
    torch.manual_seed(seed)
    BertModel(BertConfig(**cfg)).eval().save_pretrained(hf_dir)
    fast.save_pretrained(hf_dir)
    with warnings.catch_warnings():  # 6.x moved the module classes; this import works in 2.x to 6.x
        warnings.simplefilter("ignore", DeprecationWarning)
        from sentence_transformers import models
    modules = [models.Transformer(str(hf_dir), max_seq_length=max_seq_length), models.Pooling(cfg["hidden_size"], pooling)]
    if normalize:
        modules.append(models.Normalize())
    SentenceTransformer(modules=modules, device="cpu").save(str(folder))
    return folder


def make_tiny_embedder_bundle(out: Path, recipe: str = "fp32", **kwargs) -> Path:
    """Export a tiny random sentence-transformers model (make_tiny_embedder_dir) and validate it."""
    from .export import export

    src = make_tiny_embedder_dir(Path(out).parent / "tiny-embedder-src", **kwargs)
    export(str(src), out, recipe=recipe, progress=False)
    return Path(out)


def make_tiny_lora(base_dir: Path, out: Path, seed: int = 1, **config) -> Path:
    """A PEFT LoRA for the model in `base_dir` with random A *and* B (a fresh adapter's B is zero: a no-op)."""
    import peft
    import torch
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(base_dir)
    torch.manual_seed(seed)
    cfg = peft.LoraConfig(**{"r": 8, "lora_alpha": 16, "init_lora_weights": False, "target_modules": [
        "q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"], **config})
    peft.get_peft_model(base, cfg).save_pretrained(out)
    return Path(out)
