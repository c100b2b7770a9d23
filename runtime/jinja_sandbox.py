"""A jinja2 sandbox whose cost is bounded: chat templates are code from a model repository.

jinja2's sandbox stops a template from reaching Python internals, but not from spending the
device's time and memory. Measured on the unbounded sandbox: nested `range` loops ran for minutes,
`strftime_now` with a megabyte format string took 40 s, a self-calling macro raised a bare
RecursionError, and string doubling in a loop grows without end. Here every render has a budget:

- work: each loop step of `range`, each call, attribute or item access and filter spends one unit
  (MAX_STEPS per render);
- size: no string, list or number a template builds may exceed MAX_SIZE characters/items or
  MAX_INT_DIGITS digits; the output may not exceed MAX_OUTPUT characters;
- time: a render that passes DEADLINE_S seconds stops at its next step;
- depth: recursion is caught and reported.
A template over any budget raises TemplateBudgetError with what it exceeded.
"""
from __future__ import annotations

import functools
import re
import time
from contextlib import contextmanager
from typing import Any, Iterator

from jinja2.exceptions import SecurityError
from jinja2.sandbox import ImmutableSandboxedEnvironment

MAX_STEPS = 2_000_000  # a real template takes hundreds; a conversation of 1000 turns a few 10 000
MAX_SIZE = 1 << 22  # 4 M characters (or list items) for any single value a template builds
MAX_OUTPUT = 1 << 23  # the rendered prompt; far beyond any context a device runs
MAX_INT_DIGITS = 4096
DEADLINE_S = 5.0
MAX_STRFTIME = 64  # characters of a strftime_now format

# A width or precision of 4+ digits in %-formatting or str.format: '%0999999999d', '{:>999999999}'.
_WIDE_FORMAT = re.compile(r"%[-#0 +]*(\d{4,}|\d*\.\d{4,})|\{[^{}]*:[^{}]*\d{4,}[^{}]*\}")


class TemplateBudgetError(SecurityError):
    """A chat template exceeded its work, size, time or recursion budget."""


class _Budget:
    def __init__(self) -> None:
        self.steps = 0
        self.deadline = time.monotonic() + DEADLINE_S

    def spend(self, n: int = 1) -> None:
        self.steps += n
        if self.steps > MAX_STEPS:
            raise TemplateBudgetError(f"the chat template ran more than {MAX_STEPS} steps")
        if self.steps % 1024 == 0 and time.monotonic() > self.deadline:
            raise TemplateBudgetError(f"the chat template ran for more than {DEADLINE_S:.0f} s")


def _check_size(value: Any) -> Any:
    if isinstance(value, (str, bytes, list, tuple, dict)) and len(value) > MAX_SIZE:
        raise TemplateBudgetError(f"the chat template built a value of {len(value)} items (limit {MAX_SIZE})")
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > MAX_INT_DIGITS * 3.33:
        raise TemplateBudgetError(f"the chat template built an integer of more than {MAX_INT_DIGITS} digits")
    return value


def _check_args(args, kwargs) -> None:
    for a in (*args, *kwargs.values()):
        if isinstance(a, int) and not isinstance(a, bool) and abs(a) > MAX_SIZE:
            raise TemplateBudgetError(f"the chat template passed {a} as an argument (limit {MAX_SIZE})")
        if isinstance(a, str) and _WIDE_FORMAT.search(a):
            raise TemplateBudgetError("the chat template used a format width or precision of 1000 or more")


class BoundedSandbox(ImmutableSandboxedEnvironment):
    """ImmutableSandboxedEnvironment + a per-render budget (see the module docstring)."""

    intercepted_binops = frozenset(["*", "**", "%", "+", "//"])

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._budget: _Budget | None = None
        self.globals["range"] = self._range
        for name, f in list(self.filters.items()):
            self.filters[name] = self._guard(f)

    # -- the budget of the render in progress ------------------------------------------------------
    @contextmanager
    def budget(self) -> Iterator[None]:
        outer, self._budget = self._budget, _Budget()
        try:
            yield
        except RecursionError:
            raise TemplateBudgetError("the chat template recursed too deeply") from None
        except MemoryError:
            raise TemplateBudgetError("the chat template ran out of memory") from None
        finally:
            self._budget = outer

    def _spend(self, n: int = 1) -> None:
        if self._budget is not None:
            self._budget.spend(n)

    def render(self, template, **variables) -> str:
        """The whole output of `template`, within this environment's budgets."""
        with self.budget():
            out, size = [], 0
            for chunk in template.generate(**variables):
                size += len(chunk)
                if size > MAX_OUTPUT:
                    raise TemplateBudgetError(f"the chat template produced more than {MAX_OUTPUT} characters")
                self._spend()
                out.append(chunk)
            return "".join(out)

    # -- hooks jinja2 calls ------------------------------------------------------------------------
    def _range(self, *args) -> "_Range":
        _check_args(args, {})
        return _Range(range(*args), self._spend)

    def _guard(self, f):
        @functools.wraps(f)  # keeps jinja's pass_context/pass_environment markers
        def guarded(*args, **kwargs):
            self._spend()
            _check_args(args, kwargs)
            return _check_size(f(*args, **kwargs))

        return guarded

    def call(__self, __context, __obj, *args, **kwargs):  # noqa: N805 - jinja2's signature
        __self._spend()
        _check_args(args, kwargs)
        return _check_size(super().call(__context, __obj, *args, **kwargs))

    def getattr(self, obj, attribute):
        self._spend()
        # str.format reaches the template as the sandbox's own formatter, so check the format string here.
        if isinstance(obj, str) and attribute in ("format", "format_map") and _WIDE_FORMAT.search(obj):
            raise TemplateBudgetError("the chat template used a format width or precision of 1000 or more")
        return super().getattr(obj, attribute)

    def getitem(self, obj, argument):
        self._spend()
        if isinstance(obj, str) and argument in ("format", "format_map") and _WIDE_FORMAT.search(obj):
            raise TemplateBudgetError("the chat template used a format width or precision of 1000 or more")
        return super().getitem(obj, argument)

    def call_binop(self, context, operator, left, right):
        self._spend()
        sized = (str, bytes, list, tuple)
        if operator == "*":
            for seq, n in ((left, right), (right, left)):
                if isinstance(seq, sized) and isinstance(n, int) and len(seq) * max(n, 0) > MAX_SIZE:
                    raise TemplateBudgetError(f"the chat template repeated a value to more than {MAX_SIZE} items")
        if operator == "**" and isinstance(right, (int, float)) and abs(right) > 1024:
            raise TemplateBudgetError("the chat template raised a number to a power above 1024")
        if operator == "%" and isinstance(left, str):
            if _WIDE_FORMAT.search(left):
                raise TemplateBudgetError("the chat template used a format width or precision of 1000 or more")
            _check_args(right if isinstance(right, tuple) else (right,), {})  # '%*d' takes its width from here
        if operator == "+" and isinstance(left, sized) and isinstance(right, sized) and len(left) + len(right) > MAX_SIZE:
            raise TemplateBudgetError(f"the chat template built a value of more than {MAX_SIZE} items")
        return _check_size(super().call_binop(context, operator, left, right))


class _Range:
    """`range(...)` for templates: a sequence (len, index, reversed) whose iteration spends the budget."""

    def __init__(self, r: range, spend) -> None:
        self._r, self._spend = r, spend

    def __iter__(self):
        for i in self._r:
            self._spend()
            yield i

    def __reversed__(self):
        return _Range(self._r[::-1], self._spend).__iter__()

    def __len__(self) -> int:
        return len(self._r)

    def __getitem__(self, i):
        return self._r[i]


def bounded_strftime_now(fmt) -> str:
    """HF's `strftime_now` helper, with a format of at most MAX_STRFTIME characters."""
    from datetime import datetime

    if not isinstance(fmt, str) or len(fmt) > MAX_STRFTIME:
        raise TemplateBudgetError(f"strftime_now takes a format of at most {MAX_STRFTIME} characters")
    return datetime.now().strftime(fmt)
