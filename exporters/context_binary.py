"""Offline compilation of QDQ graphs into QNN context binaries (EPContext models).

Compiling a QDQ graph for the HTP (graph preparation, tiling, weight layout) takes seconds to
minutes; a phone should not do it at every app start. onnxruntime's EPContext feature runs the QNN
compiler here (onnxruntime-qnn ships libHtpPrepare.so for x86_64) and writes an ONNX file whose
single EPContext node carries the compiled binary for one Hexagon architecture (`htp_arch`,
optionally a `soc_model`). Loading it on the device skips compilation; it only loads on the
QNN EP of a matching (or newer, QNN-compatible) HTP.
"""
from __future__ import annotations

import time
from pathlib import Path

from edge_sdk.errors import DeviceError


def compile_context_binary(qdq_path: Path, out_path: Path, htp_arch: str | None = None,
                           soc_model: str | None = None, embed: bool = True) -> dict:
    """Compile `qdq_path` for the HTP into the EPContext model `out_path`; return what was done.

    `embed` puts the binary inside the ONNX file (one file to ship); otherwise QNN writes a
    ``*.bin`` next to it. Raises DeviceError when a node cannot run on the HTP (CPU fallback is off,
    so a partial compile cannot pass silently).
    """
    import onnxruntime as ort

    from edge_sdk.runtime import qnn

    qdq_path, out_path = Path(qdq_path), Path(out_path)
    if out_path.exists():
        out_path.unlink()  # onnxruntime refuses to overwrite an existing context model
    so = ort.SessionOptions()
    so.log_severity_level = 3
    so.add_session_config_entry("ep.context_enable", "1")
    so.add_session_config_entry("ep.context_file_path", str(out_path))
    so.add_session_config_entry("ep.context_embed_mode", "1" if embed else "0")
    from edge_sdk.runtime.qnn import fp16_options

    # fp16 on: the graphs' float nodes (residual stream) must be built for the HTP's fp16 units.
    options = {"htp_arch": htp_arch, "soc_model": soc_model, **fp16_options(htp_arch, soc_model)}
    qnn.add_qnn(so, options, npu_only=True)
    start = time.perf_counter()
    try:
        ort.InferenceSession(str(qdq_path), sess_options=so)
    except Exception as e:  # onnxruntime's Fail/RuntimeError carries the QNN message
        raise DeviceError(f"QNN could not compile {qdq_path.name} for htp_arch={htp_arch} soc_model={soc_model}: {e}") from e
    if not out_path.exists():
        raise DeviceError(f"QNN compiled {qdq_path.name} but wrote no context model at {out_path}")
    return {"file": out_path.name, "seconds": round(time.perf_counter() - start, 2),
            "bytes": sum(p.stat().st_size for p in out_path.parent.glob(out_path.stem + "*"))}


def compile_bundle_graphs(out_dir: Path, fragment: dict, htp_arch: str | None = None,
                          soc_model: str | None = None) -> dict:
    """Compile every graph of a static manifest fragment; add and return its ``context_binaries`` section.

    The QDQ graphs stay in the bundle (portable to any HTP); the runtime prefers the context
    binaries when it opens the bundle on the QNN EP.
    """
    out_dir = Path(out_dir)
    files, report = {}, {}
    for kind, name in fragment["graph"]["files"].items():
        target = Path(name).stem + ".ctx.onnx"
        report[kind] = compile_context_binary(out_dir / name, out_dir / target, htp_arch, soc_model)
        files[kind] = target
    section = {"files": files, "htp_arch": htp_arch, "soc_model": soc_model, "embed": True,
               "compile_seconds": {k: v["seconds"] for k, v in report.items()}}
    fragment["graph"]["context_binaries"] = section
    return section
