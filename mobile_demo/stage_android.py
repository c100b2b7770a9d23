"""Assemble the folder buildozer packs into the APK: ``python -m mobile_demo.stage_android BUNDLE``.

buildozer packs one source folder that must hold ``main.py``. The repository's layout is not
that folder: the runtime lives in ``runtime/`` but is imported as ``edge_sdk.runtime``, and the
host-side exporters (torch, transformers) must stay off the phone. So we copy exactly what runs
on the device into ``build/android-app`` (next to buildozer.spec's ``source.dir``):

    main.py                    starts the app (python-for-android runs this file)
    mobile_demo/               the app (Python + .kv)
    edge_sdk/                  __init__, errors, runtime/, devices/ - no exporters, no CLI
    bundles/<model>/           the exported model, found by bundle_paths on first start
"""
from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from mobile_demo.bundle_paths import DEFAULT_MODEL, MANIFEST

REPO = Path(__file__).resolve().parent.parent
DEFAULT_OUT = REPO / "build" / "android-app"
MAIN_PY = '''"""Entry point python-for-android runs; the app itself is the mobile_demo package."""
from mobile_demo.__main__ import main

main([])
'''
_SKIP = shutil.ignore_patterns("__pycache__", "*.pyc", "p4a_recipes", "buildozer.spec", ".buildozer", "bin")


def stage(bundle: str | Path, out: str | Path = DEFAULT_OUT) -> Path:
    bundle, out = Path(bundle), Path(out)
    if not (bundle / MANIFEST).is_file():
        raise SystemExit(f"{bundle} is not an edge bundle (no {MANIFEST}); "
                         f"export one with: edge-sdk export {DEFAULT_MODEL} --output {bundle}")
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    (out / "main.py").write_text(MAIN_PY)
    shutil.copytree(REPO / "mobile_demo", out / "mobile_demo", ignore=_SKIP)
    pkg = out / "edge_sdk"
    pkg.mkdir()
    for name in ("__init__.py", "errors.py"):
        shutil.copy2(REPO / "edge_sdk" / name, pkg / name)
    shutil.copytree(REPO / "runtime", pkg / "runtime", ignore=_SKIP)
    shutil.copytree(REPO / "devices", pkg / "devices", ignore=_SKIP)
    shutil.copytree(bundle, out / "bundles" / DEFAULT_MODEL)
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("bundle", help=f"exported bundle folder (e.g. bundles/{DEFAULT_MODEL})")
    parser.add_argument("--out", default=str(DEFAULT_OUT), help="staging folder (buildozer's source.dir)")
    args = parser.parse_args(argv)
    print(stage(args.bundle, args.out))


if __name__ == "__main__":
    main()
