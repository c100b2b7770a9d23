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
# The distribution's name, ready for PyPI (where `edge-sdk` is an unrelated project, market data: `pip install
# edge-sdk` installs someone else's code). Not published yet: `pip install edge-sdk-llm` finds nothing, so
# install_hint names what exists until PUBLISHED is true. The import name (edge_sdk) and the command stay.
DISTRIBUTION = "edge-sdk-llm"
PUBLISHED = False


def install_hint(extra: str | None = None) -> str:
    """A pip command that installs edge-sdk (with `extra`) from what exists here, for error messages:
    the checkout this copy runs from, else the extra's own packages (a device build's wheel install)."""
    try:
        from edge_sdk._install import install_hint as hint
    except ImportError:  # a trimmed device copy (the Android app carries the runtime only)
        return f"install edge-sdk's [{extra}] extra" if extra else "install edge-sdk"
    return hint(extra)

from edge_sdk.errors import (  # noqa: E402  (cheap, stdlib only)
    BundleError, ContextLengthError, DeviceBuildError, DeviceError, DeviceFitError, EdgeError, OutputExistsError,
    SourceError, UnsupportedModelError, ValidationFailedError,
)


def load(bundle_dir, device=None, threads=None, trusted_keys=None, kind=None, *, max_context=None, force=False,
         packed_cache=None):
    """Load an edge bundle: a Model (generates text), or an Embedder for an embedder bundle
    (``.embed(texts)`` -> vectors). See :func:`edge_sdk.runtime.model.load`.

    trusted_keys: publishers' Ed25519 public keys; when given, an unsigned or foreign bundle is refused.
    kind: "decoder" or "embedder" to refuse the other kind with a clear BundleError.
    max_context: a KV cache for fewer tokens than the bundle's maximum (less memory).
    force: load even if the bundle's memory estimate exceeds the device's available memory (else DeviceFitError).
    packed_cache: where onnxruntime's packed weights are cached and mapped from (a folder), or "off" to pack them
        on the heap at every load; default EDGE_SDK_PACKED_CACHE, else ~/.cache/edge-sdk/packed (docs/deploy.md).
    """
    from edge_sdk.runtime.model import load as _load

    return _load(bundle_dir, device=device, threads=threads, trusted_keys=trusted_keys, kind=kind,
                 max_context=max_context, force=force, packed_cache=packed_cache)


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
