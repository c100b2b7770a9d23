"""A tokenizer.json is untrusted: its ids, sizes and regular expressions are checked before either backend
(the pure one or the Rust `tokenizers`) sees it.

Regular expressions are the dangerous part: a pre-tokenizer `Split` with `(a+)+$` made the pure
tokenizer backtrack for 90 s+ and panicked the Rust one. Patterns are accepted only in a shape whose
matching cannot explode: a quantifier that repeats more than once may apply only to one character
(a literal, a class, a category, `.`), never to a group, an alternation or another quantifier, and
back-references are refused. Every pre-tokenizer of the models edge-sdk supports (GPT-2 / SmolLM2,
Llama 3, Qwen2, digits splitting) has that shape; `(a+)+`, `(a|a)*` and `(\\s*x)*` do not.
"""
from __future__ import annotations

try:  # the stdlib parser of `re` patterns (a private module, stable in what is used here)
    from re import _constants as _c
    from re import _parser as _sre_parse
except ImportError:  # Python 3.10
    import sre_constants as _c  # type: ignore[no-redef]
    import sre_parse as _sre_parse  # type: ignore[no-redef]

from edge_sdk.errors import BundleError

MAX_TOKENIZER_BYTES = 256 << 20  # Gemma 3's tokenizer.json is 33 MB
MAX_VOCAB = 1 << 21
MAX_TOKEN_CHARS = 4096  # characters of one vocab entry or added token
MAX_PATTERN = 4096  # characters of one regex
MAX_LOOPS_PER_BRANCH = 8  # repeated atoms in one alternative (each one adds a factor of backtracking)

_ATOMS = {_c.LITERAL, _c.NOT_LITERAL, _c.IN, _c.ANY, _c.CATEGORY}
_REPEATS = {_c.MAX_REPEAT, _c.MIN_REPEAT} | ({_c.POSSESSIVE_REPEAT} if hasattr(_c, "POSSESSIVE_REPEAT") else set())
_LOOKS = {_c.ASSERT, _c.ASSERT_NOT}


def _one_char(sub) -> bool:
    items = list(sub)
    if len(items) != 1:
        return False
    op, av = items[0]
    if op in _ATOMS:
        return True
    return op is _c.SUBPATTERN and _one_char(av[-1])


def _check_sequence(sub, pattern: str) -> None:
    loops = 0
    for op, av in sub:
        if op in _REPEATS:
            lo, hi, inner = av
            if hi > 1:
                if not _one_char(inner):
                    raise ValueError("a quantifier repeats a group, an alternation or another quantifier")
                loops += 1
            else:
                _check_sequence(inner, pattern)
        elif op is _c.SUBPATTERN:
            _check_sequence(av[-1], pattern)
        elif op is _c.BRANCH:
            for alternative in av[1]:
                _check_sequence(alternative, pattern)
        elif op in _LOOKS:
            _check_sequence(av[1], pattern)
        elif op in (_c.GROUPREF, _c.GROUPREF_EXISTS):
            raise ValueError("back-references are not allowed")
        elif hasattr(_c, "ATOMIC_GROUP") and op is _c.ATOMIC_GROUP:
            _check_sequence(av, pattern)
    if loops > MAX_LOOPS_PER_BRANCH:
        raise ValueError(f"more than {MAX_LOOPS_PER_BRANCH} repeated atoms in one alternative")


def check_regex(pattern: str, where: str) -> None:
    """BundleError unless the (stdlib-translated) `pattern` has the safe shape described above."""
    from .text import translate_regex

    if not isinstance(pattern, str) or len(pattern) > MAX_PATTERN:
        raise BundleError(f"tokenizer.json: {where} must be a regex of at most {MAX_PATTERN} characters")
    compiled = translate_regex(pattern)
    try:
        _check_sequence(_sre_parse.parse(compiled.pattern, compiled.flags), pattern)
    except ValueError as e:
        raise BundleError(f"tokenizer.json: {where} {pattern[:120]!r} is refused: {e}, so matching it could take "
                          "exponential time; re-export the bundle with a standard pre-tokenizer") from None


def _regexes(node, path: str):
    """(where, pattern) of every {"Regex": pattern} in the spec."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "Regex":
                yield path, value
            else:
                yield from _regexes(value, f"{path}.{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _regexes(value, f"{path}[{i}]")


def _id(value, where: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < MAX_VOCAB:
        raise BundleError(f"tokenizer.json: {where} must be a token id (an integer from 0 to {MAX_VOCAB - 1}), "
                          f"got {str(value)[:40]!r}; re-export the bundle")
    return value


def check_spec(spec: dict, vocab_checked: bool = False) -> None:
    """Ids, sizes and regexes of a parsed tokenizer.json; BundleError naming the first problem.
    `vocab_checked`: the vocab was checked already (the compact form, runtime/tokenizer/compact.py)."""
    model = spec["model"]
    vocab = model.get("vocab")
    if isinstance(vocab, dict):
        if not vocab_checked and len(vocab) > MAX_VOCAB:
            raise BundleError(f"tokenizer.json: the vocab has {len(vocab)} entries (limit {MAX_VOCAB})")
        for token, tid in ({} if vocab_checked else vocab).items():
            if len(token) > MAX_TOKEN_CHARS:
                raise BundleError(f"tokenizer.json: a vocab entry has {len(token)} characters (limit {MAX_TOKEN_CHARS})")
            _id(tid, f"vocab[{token[:40]!r}]")
    elif vocab is not None and not isinstance(vocab, list):  # a Unigram vocab is a list of [piece, score]
        raise BundleError("tokenizer.json: model.vocab must be an object (or a list for Unigram)")
    merges = model.get("merges") or []
    if not isinstance(merges, list) or any(
            not (isinstance(m, str) and " " in m) and not (isinstance(m, list) and len(m) == 2
                                                            and all(isinstance(x, str) for x in m)) for m in merges):
        raise BundleError("tokenizer.json: model.merges must be a list of 'a b' strings or [a, b] pairs")
    added = spec.get("added_tokens") or []
    if not isinstance(added, list):
        raise BundleError("tokenizer.json: added_tokens must be a list")
    for i, tok in enumerate(added):
        if not isinstance(tok, dict) or "id" not in tok:
            raise BundleError(f"tokenizer.json: added_tokens[{i}] has no id; re-export the bundle")
        _id(tok["id"], f"added_tokens[{i}].id")
        if not isinstance(tok.get("content"), str) or not tok["content"] or len(tok["content"]) > MAX_TOKEN_CHARS:
            raise BundleError(f"tokenizer.json: added_tokens[{i}].content must be a non-empty string")
    for where, pattern in _regexes({k: v for k, v in spec.items() if k != "model"}, "tokenizer"):
        check_regex(pattern, where)
