"""Every error edge-sdk raises on purpose, in one place.

Each message says what was wrong and what to do about it; the CLI prints the message alone
(no traceback) and exits non-zero.
"""
from __future__ import annotations


class EdgeError(Exception):
    """Base class: anything edge-sdk raises deliberately."""

    exit_code = 2


class SourceError(EdgeError):
    """The model source (folder, GGUF file, hub id, alias) is missing, unreadable or malformed."""


class UnsupportedModelError(EdgeError):
    """The model's architecture (``model_type``) or one of its features is not supported."""


class BundleError(EdgeError):
    """An edge bundle is missing, incomplete, tampered with, or of an unknown schema."""


class OutputExistsError(EdgeError):
    """The export's output folder exists and ``--force`` was not given."""


class ValidationFailedError(EdgeError):
    """An export check (logits, greedy tokens, tokenizer parity, quality) failed."""

    exit_code = 3


class DeviceFitError(EdgeError):
    """The model does not fit the device profile's memory budget or operator set."""


class ContextLengthError(EdgeError):
    """A prompt or conversation does not fit the bundle's maximum context."""


class DeviceError(EdgeError):
    """An unknown device profile, or an execution provider that is not available here."""


class DeviceBuildError(EdgeError):
    """A device build cannot be made: an unknown target, no wheels for a dependency, a bundle the target cannot run."""


class DocumentIndexError(EdgeError):
    """A document index (edge_sdk.rag.Index) is missing, not an index, corrupt, from a newer edge-sdk, or was
    made by a different embedder than the one given."""


class DocumentReadError(EdgeError):
    """A document cannot be indexed: an unsupported format, binary or non-UTF-8 content, too large, unreadable.
    Index.add records it as a failed file and indexes the rest."""

    exit_code = 1


class StructuredOutputError(EdgeError):
    """Structured output or tool calling (response_format, grammar, tools) cannot be served: the optional
    grammar engine is not installed (the ``[structured]`` extra), or it gave up on a grammar mid-generation."""


class StoreError(EdgeError):
    """A model store operation failed (edge_sdk.store): an unreachable or malformed server, a file that does not
    match its hash or signature, a full disk, a version that failed its smoke prompt. The store is left as it
    was: the active version (if any) still loads."""


class DistillError(EdgeError):
    """`edge-sdk distill` cannot run: a bundle with no recorded source to train the student from, a teacher
    server that does not answer, a bundle whose chat template the student cannot be trained on."""


class DistillDataError(DistillError):
    """The distillation data is missing, empty or malformed (a line that is not a record), or too small to hold
    out a validation split."""
