"""edge-sdk: small language models on phones and embedded boards.

Device side (numpy + onnxruntime only)::

    import edge_sdk
    model = edge_sdk.load("bundles/smollm2-135m-instruct")
    print(model.generate("Name the capital of France.", max_new_tokens=32))
    vectors = edge_sdk.load("bundles/minilm").embed(["a text", "another"])   # an embedder bundle

Host side (needs the ``[export]`` extra)::

    edge_sdk.export("smollm2-135m-instruct", "bundles/smollm2-135m-instruct")
"""
from __future__ import annotations

__version__ = "0.1.0"
# The name on PyPI. `edge-sdk` there is an unrelated project (market data): `pip install edge-sdk`
# installs someone else's code. The import name (edge_sdk) and the command (edge-sdk) stay.
DISTRIBUTION = "edge-sdk-llm"


def install_hint(extra: str | None = None) -> str:
    """The pip command that installs edge-sdk (with `extra`), for error messages."""
    return f"pip install '{DISTRIBUTION}[{extra}]'" if extra else f"pip install {DISTRIBUTION}"

from edge_sdk.errors import (  # noqa: E402  (cheap, stdlib only)
    BundleError, ContextLengthError, DeviceBuildError, DeviceError, DeviceFitError, EdgeError, OutputExistsError,
    SourceError, UnsupportedModelError, ValidationFailedError,
)


def load(bundle_dir, device=None, threads=None, trusted_keys=None, kind=None, *, max_context=None, force=False):
    """Load an edge bundle: a Model (generates text), or an Embedder for an embedder bundle
    (``.embed(texts)`` -> vectors). See :func:`edge_sdk.runtime.model.load`.

    trusted_keys: publishers' Ed25519 public keys; when given, an unsigned or foreign bundle is refused.
    kind: "decoder" or "embedder" to refuse the other kind with a clear BundleError.
    max_context: a KV cache for fewer tokens than the bundle's maximum (less memory).
    force: load even if the bundle's memory estimate exceeds the device's available memory (else DeviceFitError).
    """
    from edge_sdk.runtime.model import load as _load

    return _load(bundle_dir, device=device, threads=threads, trusted_keys=trusted_keys, kind=kind,
                 max_context=max_context, force=force)


def export(source, output, **kwargs):
    """Export SOURCE to an edge bundle at OUTPUT (host side; imports torch lazily)."""
    from edge_sdk.exporters.export import export as _export

    return _export(source, output, **kwargs)


def list_devices():
    """The device profiles shipped with edge-sdk."""
    from edge_sdk.devices import list_profiles

    return list_profiles()


__all__ = [
    "__version__", "DISTRIBUTION", "install_hint", "load", "export", "list_devices",
    "EdgeError", "BundleError", "ContextLengthError", "DeviceBuildError", "DeviceError", "DeviceFitError",
    "OutputExistsError", "SourceError", "UnsupportedModelError", "ValidationFailedError",
]
