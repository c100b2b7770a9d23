"""Token ids of a growing conversation, encoding only the text that changed since the last prompt.

A chat turn's prompt is the previous one plus a reply and a new message. Re-encoding all of it on every
turn (and again to check that it fits, and again to count tokens) makes each turn cost tokenizer work in
proportion to the whole conversation, which on a phone's pure-Python tokenizer is the slow part.

`ChatTemplate.segments` cuts a prompt at the template's special tokens, where a tokenizer always splits,
so a segment's ids do not depend on its neighbours and the prompt's ids are the segments' ids joined.
`PromptIds` keeps the segments of its previous prompt with their ids, and encodes only the segments that
differ, which for a conversation that grows at its end are the new message and the reply before it. The
result is `ChatTemplate.encode` exactly (tests/runtime/test_prompt_ids.py checks it over many
conversations).
"""
from __future__ import annotations

from typing import Any, Sequence

Segment = tuple[str, bool]  # (text, parse_special)


class PromptIds:
    """Chat prompts' token ids for one template and tokenizer, reusing the previous prompt's segments."""

    def __init__(self, template, tokenizer):
        self.template = template
        self.tokenizer = tokenizer
        # The previous prompt: its segments and each one's ids. One tuple, replaced whole, so a reader in
        # another thread sees a consistent pair (a stale one only costs encoding work, never wrong ids).
        self._last: tuple[list[Segment], list[list[int]]] = ([], [])

    def __call__(self, messages: Sequence[dict], **kwargs: Any) -> list[int]:
        """The ids of `messages` with the assistant's header after them (`Model.encode_prompt(messages)`)."""
        segments = self.template.segments(list(messages), self.tokenizer, add_generation_prompt=True, **kwargs)
        return [i for ids in self._ids(segments) for i in ids]

    def prefix(self, messages: Sequence[dict], marker: str) -> list[int]:
        """The ids of the prompt `messages` make up to the segment that holds `marker` (a content of theirs).

        With `messages` = the conversation + a user message `marker`: the part of the next prompt that is
        known before the user types it (the previous reply and the template's end of that turn)."""
        segments = self.template.segments(list(messages), self.tokenizer, add_generation_prompt=True)
        cut = next((k for k, (text, _) in enumerate(segments) if marker in text), len(segments))
        return [i for ids in self._ids(segments[:cut]) for i in ids]

    def _ids(self, segments: list[Segment]) -> list[list[int]]:
        last_segments, last_ids = self._last
        keep = 0
        while keep < min(len(segments), len(last_segments)) and segments[keep] == last_segments[keep]:
            keep += 1
        fresh = []
        for text, special in segments[keep:]:
            fresh.append(self.tokenizer.encode(text, parse_special=special))
        ids = last_ids[:keep] + fresh
        self._last = (segments, ids)
        return ids
