"""Chat templates rendered the way Hugging Face transformers renders them, and encoded safely.

``render`` gives the same string as ``tokenizer.apply_chat_template(messages, tokenize=False)``:
the same sandboxed jinja2 environment (trim_blocks, lstrip_blocks, loop controls) and the same
helpers (``raise_exception``, ``strftime_now``, a ``tojson`` filter that keeps non-ASCII text).

``encode`` is injection-safe: text a user typed is never turned into control tokens. A message
saying ``"<|im_end|><|im_start|>system ..."`` is encoded as those characters, not as a new turn.
Only the template's own text may produce special-token ids.
"""
from __future__ import annotations

import json
import re
import uuid
import weakref
from typing import Any, Protocol

__all__ = ["ChatTemplate", "validate_messages"]


class _Tokenizer(Protocol):
    def encode(self, text: str, *, parse_special: bool = False) -> list[int]: ...


def _raise_exception(message):
    from jinja2.exceptions import TemplateError

    raise TemplateError(message)


def _tojson(value, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
    # jinja's built-in tojson escapes HTML characters and ASCII-fies text; HF's does neither.
    return json.dumps(value, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)


# Roles any chat template understands; a template may name more (e.g. 'ipython'), which it then accepts too.
STANDARD_ROLES = ("system", "user", "assistant", "tool", "developer")
_ROLE = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,31}$")
MAX_MESSAGES = 10_000
MAX_CONTENT = 1 << 22  # characters in all the messages of one request together


def validate_messages(messages, roles=STANDARD_ROLES) -> None:
    """Raise ``ValueError`` unless ``messages`` is a list of ``{"role": str, "content": str, ...}``.

    Roles are data, not template text: a role must be one of `roles` (a plain word), so that a role
    like ``"user<|im_end|>..."`` cannot write control tokens into the prompt.
    """
    if not isinstance(messages, (list, tuple)):
        raise ValueError(f"messages must be a list of dicts, got {type(messages).__name__}")
    if len(messages) > MAX_MESSAGES:
        raise ValueError(f"messages has {len(messages)} entries; at most {MAX_MESSAGES}")
    total = 0
    for i, m in enumerate(messages):
        if not isinstance(m, dict):
            raise ValueError(f"message {i} must be a dict with 'role' and 'content', got {type(m).__name__}")
        role = m.get("role")
        if not isinstance(role, str) or not role:
            raise ValueError(f"message {i}: 'role' must be a non-empty string, got {role!r}")
        if not _ROLE.match(role) or role not in roles:
            raise ValueError(f"message {i}: unknown role {role[:40]!r}; this chat template takes "
                             f"{', '.join(sorted(roles))}")
        if not isinstance(m.get("content"), str):
            raise ValueError(f"message {i}: 'content' must be a string, got {type(m.get('content')).__name__}")
        total += len(m["content"])
    if total > MAX_CONTENT:
        raise ValueError(f"the messages hold {total} characters; at most {MAX_CONTENT} (far beyond any context)")


def _template_roles(source: str) -> tuple[str, ...]:
    """STANDARD_ROLES plus the role-like words a template quotes (e.g. 'ipython', 'function')."""
    quoted = re.findall(r"""['"]([A-Za-z][A-Za-z0-9_-]{1,31})['"]""", source)
    return tuple(sorted(set(STANDARD_ROLES) | set(quoted)))


class ChatTemplate:
    """A compiled chat template plus the special-token strings it refers to.

    ``extra`` holds further template variables (e.g. ``pad_token``, ``unk_token``); per-call
    keyword arguments to :meth:`render` override them (HF passes ``apply_chat_template``'s extra
    kwargs the same way, e.g. ``enable_thinking=False``).
    """

    def __init__(self, template: str, *, bos_token: str = "", eos_token: str = "", extra: dict | None = None):
        if not isinstance(template, str) or not template.strip():
            raise ValueError("chat template must be a non-empty jinja2 string")
        # jinja2 is imported here so that importing the runtime stays cheap when no chat is used.
        from jinja2.exceptions import TemplateSyntaxError
        from jinja2.ext import loopcontrols

        from .jinja_sandbox import BoundedSandbox, bounded_strftime_now

        # Templates come from model repositories: untrusted code, hence an immutable sandbox whose
        # work, output size, time and recursion are bounded (jinja_sandbox.py).
        env = BoundedSandbox(trim_blocks=True, lstrip_blocks=True, extensions=[loopcontrols])
        env.filters["tojson"] = env._guard(_tojson)
        env.globals["raise_exception"] = _raise_exception
        env.globals["strftime_now"] = bounded_strftime_now
        self._env = env
        self.source = template
        self.roles = _template_roles(template)
        try:
            self._template = env.from_string(template)
        except (TemplateSyntaxError, RecursionError) as e:
            from edge_sdk.errors import BundleError

            raise BundleError(f"the bundle's chat template does not compile: {str(e)[:300]}; re-export the bundle") from None
        self.variables: dict[str, Any] = {"bos_token": bos_token, "eos_token": eos_token, **(extra or {})}
        self._edges: dict[str, tuple[str, str, str]] = {}  # template part -> (head, specials, tail)
        self._roles_ok: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # tokenizer -> roles checked

    def render(self, messages: list[dict], *, add_generation_prompt: bool = True, **kwargs) -> str:
        """The prompt string for ``messages`` (HF ``apply_chat_template(..., tokenize=False)``)."""
        validate_messages(messages, self.roles)
        return self._render([dict(m) for m in messages], add_generation_prompt, kwargs)

    def _render(self, messages, add_generation_prompt, kwargs) -> str:
        from .jinja_sandbox import TemplateBudgetError

        variables = {"tools": None, "documents": None, **self.variables, **kwargs}
        try:
            return self._env.render(self._template, messages=messages, add_generation_prompt=add_generation_prompt,
                                    **variables)
        except TemplateBudgetError as e:
            from edge_sdk.errors import BundleError

            raise BundleError(f"the bundle's chat template was stopped: {e}; it is broken or hostile - re-export "
                              "the bundle with a sound template") from None

    def encode(self, messages: list[dict], tokenizer: _Tokenizer, *, add_generation_prompt: bool = True, **kwargs) -> list[int]:
        """Token ids of the rendered prompt, where message contents can never become control tokens.

        ``tokenizer.encode(text, parse_special=...)`` must not add BOS/EOS by itself (the template
        writes them). Whenever no content contains a special-token string, the result equals
        ``tokenizer.encode(self.render(...), parse_special=True)``.

        How: render once with each content replaced by a unique sentinel, split the result at the
        sentinels, and encode the template's special tokens with ``parse_special=True`` and all
        ordinary text with ``parse_special=False``. The ordinary text around a content (e.g. the
        ``"user\\n"`` after ``<|im_start|>``) is encoded together with it, because a tokenizer
        always splits at special tokens but not at arbitrary points: a byte-level BPE merges the
        template's ``"\\n"`` with a content's leading ``"\\n\\n"`` into one token.
        """
        return [i for text, special in self.segments(messages, tokenizer, add_generation_prompt=add_generation_prompt,
                                                     **kwargs)
                for i in tokenizer.encode(text, parse_special=special)]

    def segments(self, messages: list[dict], tokenizer: _Tokenizer, *, add_generation_prompt: bool = True,
                 **kwargs) -> list[tuple[str, bool]]:
        """The prompt as the ``(text, parse_special)`` pieces `encode` encodes one by one and joins.

        Pieces end at the template's special tokens, where a tokenizer always splits, so a piece's ids
        do not depend on its neighbours: a growing conversation (runtime/prompt_ids.py) re-encodes only
        the pieces that changed."""
        validate_messages(messages, self.roles)
        self._check_roles(messages, tokenizer)
        rendered = self._render([dict(m) for m in messages], add_generation_prompt, kwargs)
        pieces = self._split_at_contents(messages, rendered, add_generation_prompt, kwargs)
        if pieces is None:
            # The template edits contents in a way we could not trace (it inspects or rewrites
            # them). Encoding the whole string is exact, and safe only if no content holds a
            # special-token string.
            for i, m in enumerate(messages):
                if tokenizer.encode(m["content"], parse_special=True) != tokenizer.encode(m["content"], parse_special=False):
                    raise ValueError(
                        f"message {i} contains a special-token string and this chat template rewrites message "
                        "contents, so it cannot be encoded safely; remove the special-token text from the message"
                    )
            return [(rendered, True)] if rendered else []
        return self._segment_pieces(pieces, tokenizer)

    # --- encode helpers -------------------------------------------------------------------------

    def _check_roles(self, messages, tokenizer) -> None:
        """Refuse a role that is a special token of `tokenizer` (it would open a turn of its own)."""
        try:
            known = self._roles_ok.setdefault(tokenizer, set())  # a conversation repeats its few roles
        except TypeError:  # a tokenizer that cannot be weakly referenced: check every time
            known = set()
        for i, m in enumerate(messages):
            role = m["role"]
            if role in known:
                continue
            if tokenizer.encode(role, parse_special=True) != tokenizer.encode(role, parse_special=False):
                raise ValueError(f"message {i}: role {role!r} is a special token of this tokenizer")
            known.add(role)

    def _split_at_contents(self, messages, rendered, add_generation_prompt, kwargs):
        """Return [(text, is_template), ...] joining to ``rendered``, or None if not traceable."""
        tag = uuid.uuid4().hex[:12]
        # Private-use characters: no template trims, splits or escapes them.
        sentinels = [f"\ue000{tag}{i}\ue001" for i in range(len(messages))]
        masked = [dict(m, content=s) for m, s in zip(messages, sentinels)]
        skeleton = self._render(masked, add_generation_prompt, kwargs)
        parts = re.split("\ue000" + tag + r"(\d+)" + "\ue001", skeleton)
        # parts = [template, index, template, index, ..., template]
        pieces, pos = [], 0
        for k, part in enumerate(parts):
            if k % 2 == 0:
                if not rendered.startswith(part, pos):
                    return None
                pieces.append((part, True))
                pos += len(part)
                continue
            content = messages[int(part)]["content"]
            following = parts[k + 1]
            # Templates often strip contents ("content | trim"): accept those forms, verified
            # against the real rendering so that a wrong guess can never slip through.
            for form in (content, content.strip(), content.lstrip(), content.rstrip()):
                if rendered.startswith(form + following, pos):
                    pieces.append((form, False))
                    pos += len(form)
                    break
            else:
                return None
        return pieces if pos == len(rendered) else None

    def _segment_pieces(self, pieces, tokenizer) -> list[tuple[str, bool]]:
        out: list[tuple[str, bool]] = []
        ordinary = ""  # ordinary text waiting to be encoded in one go
        for text, is_template in pieces:
            if not is_template:
                ordinary += text
                continue
            head, specials, tail = self._special_edges(text, tokenizer)
            ordinary += head
            if specials:
                if ordinary:
                    out.append((ordinary, False))
                out.append((specials, True))
                ordinary = tail
        if ordinary:
            out.append((ordinary, False))
        return out

    def _special_edges(self, part: str, tokenizer) -> tuple[str, str, str]:
        """Split a template part into (text before its first special token, first..last special
        token, text after its last special token); ("part", "", "") when it has none.

        The tokenizer interface has no list of special strings, so probe it: a string contains a
        special token iff encoding it with and without ``parse_special`` differs. Template parts
        repeat across turns and requests, so the answer is cached.
        """
        if part in self._edges:
            return self._edges[part]

        def has_special(s: str) -> bool:
            return bool(s) and tokenizer.encode(s, parse_special=True) != tokenizer.encode(s, parse_special=False)

        n = len(part)
        if not has_special(part):
            edges = (part, "", "")
        else:
            # end of the first special token: shortest prefix containing one; its start: the
            # longest start for which that prefix still contains it. Mirror for the last one.
            first_end = next(j for j in range(1, n + 1) if has_special(part[:j]))
            first_start = next(i for i in range(first_end - 1, -1, -1) if has_special(part[i:first_end]))
            last_start = next(i for i in range(n - 1, -1, -1) if has_special(part[i:]))
            last_end = next(j for j in range(last_start + 1, n + 1) if has_special(part[last_start:j]))
            edges = (part[:first_start], part[first_start:last_end], part[last_end:])
        if len(self._edges) > 512:  # parts that embed dates or tool lists may never repeat
            self._edges.clear()
        self._edges[part] = edges
        return edges
