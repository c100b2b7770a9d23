"""The QNN execution provider (Qualcomm HTP NPU), loaded as an onnxruntime plugin EP.

`onnxruntime-qnn` (>= 2.7) ships the provider as a shared library plus the QNN backends
(libQnnHtp.so; on x86_64 Linux a simulated HTP). It is not a built-in provider: the library is
registered with onnxruntime once per process, then added to a session through its EP device.
"""
from __future__ import annotations

from typing import Any

import onnxruntime as ort

from edge_sdk import install_hint
from edge_sdk.errors import DeviceError

EP_NAME = "QNNExecutionProvider"
_registered = False


def _qnn_module():
    try:
        import onnxruntime_qnn
    except ImportError as e:
        raise DeviceError(
            f"the QNN execution provider is not installed: {install_hint('npu')} (onnxruntime-qnn >= 2.7, "
            "which needs onnxruntime >= 1.24), or pick a CPU device profile"
        ) from e
    return onnxruntime_qnn


def is_available() -> bool:
    """True if onnxruntime-qnn is importable and its plugin registers with this onnxruntime."""
    try:
        ep_device()
    except DeviceError:
        return False
    return True


def ep_device() -> "ort.OrtEpDevice":
    """Register the plugin library (once) and return its EP device."""
    global _registered
    qnn = _qnn_module()
    if not hasattr(ort, "register_execution_provider_library"):
        raise DeviceError(f"onnxruntime {ort.__version__} cannot load plugin execution providers; "
                          "onnxruntime-qnn needs onnxruntime >= 1.24")
    if not _registered and not any(d.ep_name == EP_NAME for d in ort.get_ep_devices()):
        try:
            ort.register_execution_provider_library(EP_NAME, qnn.get_library_path())
        except Exception as e:  # onnxruntime raises a bare RuntimeError/Fail with the loader message
            raise DeviceError(f"could not load the QNN provider library {qnn.get_library_path()}: {e}") from e
    _registered = True
    devices = [d for d in ort.get_ep_devices() if d.ep_name == EP_NAME]
    if not devices:
        raise DeviceError("onnxruntime-qnn is installed but offers no QNN device on this machine")
    # Prefer a real NPU device; the x86_64 simulator reports itself as a CPU-type device.
    devices.sort(key=lambda d: d.device.type != ort.OrtHardwareDeviceType.NPU)
    return devices[0]


# QNN's numeric SoC ids (its `soc_model` option) for the Qualcomm part numbers device profiles use.
SOC_MODELS = {"SM8350": 30, "SM8450": 36, "SM8475": 42, "SM8550": 43, "SM8650": 57, "SC8380XP": 60, "SM8750": 69}


def fp16_options(htp_arch: str | None, soc: str | None) -> dict[str, str]:
    """Options that let the HTP run a graph's float nodes in fp16 (v69+ HTPs).

    Static bundles keep the residual stream float (see exporters/qdq.py); QNN only builds such a
    mixed graph when fp16 precision is on, and it insists on both htp_arch and soc_model for it
    (without them the graph fails to finalize with MEM_ALLOC). Empty when the SoC is unknown.
    """
    if not htp_arch or not soc:
        return {}
    soc_model = SOC_MODELS.get(str(soc).upper(), soc if str(soc).isdigit() else None)
    if soc_model is None:
        return {}
    return {"htp_arch": str(htp_arch).lower().lstrip("v"), "soc_model": str(soc_model),
            "enable_htp_fp16_precision": "1"}


def provider_options(options: dict[str, Any] | None = None) -> dict[str, str]:
    """QNN provider options as the strings onnxruntime wants; HTP backend by default.

    Accepts the device profile's spellings: `htp_arch` "v75" -> "75", `soc_model` "SM8650" -> "57".
    """
    qnn = _qnn_module()
    opts = {"backend_path": qnn.get_qnn_htp_path()}
    for key, value in (options or {}).items():
        if value is None:
            continue
        if key == "htp_arch":
            value = str(value).lower().lstrip("v")
        if key == "soc_model" and str(value).upper() in SOC_MODELS:
            value = SOC_MODELS[str(value).upper()]
        opts[key] = str(value)
    return opts


def add_qnn(so: ort.SessionOptions, options: dict[str, Any] | None = None, npu_only: bool = False) -> None:
    """Add the QNN HTP provider to `so`; with `npu_only`, a node the HTP cannot run fails the load."""
    so.add_provider_for_devices([ep_device()], provider_options(options))
    if npu_only:
        so.add_session_config_entry("session.disable_cpu_ep_fallback", "1")
