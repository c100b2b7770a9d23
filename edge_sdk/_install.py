"""How to install edge-sdk, or one of its extras, from what exists: edge-sdk is not on PyPI yet.

- From a clone: `pip install .` (the device install: numpy, onnxruntime, jinja2), `pip install -e '.[export]'`
  and the other extras; this copy knows its checkout when it runs from one (editable or not installed).
- On a device: the wheel a device build carries (`edge-sdk package` -> wheels/edge_sdk_llm-*.whl), installed
  by its install.sh; an extra then means its packages, named from the installed metadata.
- Once published (edge_sdk.PUBLISHED): `pip install 'edge-sdk-llm[extra]'`.
"""
from __future__ import annotations

import shlex
from pathlib import Path


def checkout() -> Path | None:
    """The source folder this copy of edge_sdk runs from (a clone, editable install or none), else None."""
    root = Path(__file__).resolve().parent.parent
    try:
        text = (root / "pyproject.toml").read_text(encoding="utf-8")
    except OSError:
        return None
    from edge_sdk import DISTRIBUTION

    return root if f'name = "{DISTRIBUTION}"' in text else None


def extra_requirements(extra: str) -> list[str]:
    """The requirements of `extra` in the installed distribution's metadata ([] if unknown)."""
    import importlib.metadata as md

    from edge_sdk import DISTRIBUTION

    try:
        requires = md.distribution(DISTRIBUTION).requires or []
    except md.PackageNotFoundError:
        return []
    out = []
    for line in requires:
        spec, _, marker = line.partition(";")
        if marker.replace(" ", "").replace("'", '"') in (f'extra=="{extra}"',):
            out.append(spec.strip())
    return out


def install_hint(extra: str | None = None) -> str:
    from edge_sdk import DISTRIBUTION, PUBLISHED

    if PUBLISHED:
        return f"pip install '{DISTRIBUTION}[{extra}]'" if extra else f"pip install {DISTRIBUTION}"
    root = checkout()
    if root is not None:
        return f"pip install -e {shlex.quote(f'{root}[{extra}]' if extra else str(root))}"
    if extra:
        reqs = extra_requirements(extra)
        if reqs:
            return f"pip install {' '.join(shlex.quote(r) for r in reqs)} (edge-sdk's [{extra}] extra)"
        return f"pip install -e '.[{extra}]' in a clone of edge-sdk (it is not on PyPI yet)"
    return "pip install . in a clone of edge-sdk, or the wheel in a device build's wheels/ (it is not on PyPI yet)"
