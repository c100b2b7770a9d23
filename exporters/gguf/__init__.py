"""GGUF files on the host side: the bounded header walk (`header`), the tokenizer transformers derives
from a GGUF made faithful again (`tokenizer`), and the file's own quantized blocks read exactly
(`blocks`, `weights`) so a quantized GGUF is reproduced rather than re-quantized."""
