"""Streaming detokenizer: token ids in, finished text out, one token at a time.

A generated token is often only part of a character (a CJK char or an emoji split into byte tokens), and
SentencePiece decoders strip the first leading space of the whole text. Decoding each token on its own
gets both wrong; re-decoding everything per token costs O(n^2). Instead the tokenizer's decoder chain is
run as a pipeline of small stages (see `tokenizer_decoders`) that hold back just the bytes or spaces that
are not final yet. The concatenation of every `add` and the final `flush` equals
``tokenizer.decode(all_ids, skip_special_tokens=...)``.
"""
from __future__ import annotations

from .decoders import REPLACEMENT_CHAR


class StreamingDetokenizer:
    """Turn a stream of token ids into text pieces that never split a UTF-8 character.

    >>> detok = StreamingDetokenizer(tokenizer)
    >>> text = "".join(detok.add(t) for t in ids) + detok.flush()   # == tokenizer.decode(ids, skip_special_tokens=True)
    """

    def __init__(self, tokenizer, *, skip_special_tokens: bool = True):
        self.tokenizer = tokenizer
        self.skip_special_tokens = skip_special_tokens
        chain = getattr(tokenizer, "_decoder", None)
        self._pipeline = chain.stream() if chain is not None else None
        # Fallback for decoder chains that cannot be streamed stage by stage: re-decode all ids and
        # emit what grew (exact at flush, O(n^2); no tokenizer this project ships needs it).
        self._ids: list[int] = []
        self._emitted = ""

    def add(self, token_id: int) -> str:
        """Feed one generated id; return the text it completed (often "", never half a character)."""
        token_id = int(token_id)
        if self._pipeline is None:
            self._ids.append(token_id)
            text = self.tokenizer.decode(self._ids, skip_special_tokens=self.skip_special_tokens)
            if text.endswith(REPLACEMENT_CHAR) or not text.startswith(self._emitted):
                return ""  # possibly an unfinished character; wait for more tokens
            new, self._emitted = text[len(self._emitted):], text
            return new
        tokens = self.tokenizer._tokens_for_decode([token_id], self.skip_special_tokens)
        return self._pipeline.push(tokens[0]) if tokens else ""

    def flush(self, drop_incomplete: bool = False) -> str:
        """End of stream: return whatever was held back.

        An incomplete last character becomes U+FFFD, as in `tokenizer.decode`; with `drop_incomplete`
        (a reply cut by max_new_tokens, a stop or the context) its bytes are dropped instead."""
        if self._pipeline is None:
            text = self.tokenizer.decode(self._ids, skip_special_tokens=self.skip_special_tokens)
            # If decode was not prefix-stable the earlier pieces cannot be taken back; emit the rest.
            new = text[len(self._emitted):]
            self._emitted = text
            return new.rstrip(REPLACEMENT_CHAR) if drop_incomplete else new
        return self._pipeline.finish(drop_incomplete)

    def reset(self) -> None:
        """Start a new text (e.g. the next chat turn) with the same tokenizer."""
        chain = getattr(self.tokenizer, "_decoder", None)
        self._pipeline = chain.stream() if chain is not None else None
        self._ids, self._emitted = [], ""
