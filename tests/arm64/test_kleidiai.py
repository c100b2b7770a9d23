"""arm64 profiles keep int4 weights exact: onnxruntime's KleidiAI kernels (bf16 block scales) are off.

One 4-bit MatMulNBits (symmetric blocks of 32, fp32 scales that bf16 cannot hold, int8 activations as the int4-b32
recipe runs them) on the emulated arm64 CPU, through the runtime's own route from a device profile to an
onnxruntime session (runtime/model.py `_session_config`, runtime/providers.py `make_session`). The activations
are chosen so that their per-block int8 quantization is exact, so the exact result is known: the arm64 CPU
profiles must give it; the x86 profile (no `kleidiai` field: onnxruntime's choice) must not on this CPU, where
qemu reports dotprod and onnxruntime takes KleidiAI, or this test could not tell the two apart.
docs/deploy.md has the measured effect on SmolLM2 (benchmarks/kleidiai.py).

The device's Python gets edge-sdk's wheel and the aarch64 wheels of its dependencies unpacked on an import path
(no device build: a build and its emulated install cost minutes; tests/arm64/test_emulated.py covers those).
"""
from __future__ import annotations

import json
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest

from ..conftest import require_pypi

pytestmark = [pytest.mark.arm64]

K, N, M, BLOCK = 256, 64, 3, 32
ON_DEVICE = """
import json, sys
from pathlib import Path
import numpy as np
from edge_sdk.runtime.model import _session_config  # what edge_sdk.load(bundle, device=...) builds its sessions with
from edge_sdk.runtime.providers import make_session
x = np.load(sys.argv[2])
out = {}
for profile in ("raspberry-pi-5", "android-midrange", "iphone-15", "x86-64-laptop"):
    session = make_session(Path(sys.argv[1]), _session_config({"device": {}}, profile, 1))
    out[profile] = session.run(None, {"A": x})[0].tolist()
print(json.dumps(out))
"""


def _int4_matmul(folder: Path, rng) -> tuple[Path, np.ndarray, np.ndarray]:
    """The graph, an input and the exact product (float64)."""
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper

    q = rng.randint(0, 16, size=(N, K)).astype(np.uint8)  # no zero-point input: onnxruntime subtracts 8
    scales = rng.uniform(0.01, 0.03, size=(N, K // BLOCK)).astype(np.float32)
    assert (scales.view(np.uint32) & 0xFFFF).all()  # none survives the cut to bf16
    packed = (q[:, 0::2] | (q[:, 1::2] << 4)).reshape(N, K // BLOCK, BLOCK // 2)
    node = helper.make_node("MatMulNBits", ["A", "B", "scales"], ["Y"], domain="com.microsoft", K=K, N=N, bits=4,
                            block_size=BLOCK, accuracy_level=4)
    graph = helper.make_graph([node], "int4", [helper.make_tensor_value_info("A", TensorProto.FLOAT, [M, K])],
                              [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [M, N])],
                              [numpy_helper.from_array(packed, "B"), numpy_helper.from_array(scales.reshape(-1), "scales")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21), helper.make_opsetid("com.microsoft", 1)])
    path = folder / "int4.onnx"
    onnx.save(model, str(path))
    # Integers over 128 with a +-127 in every block: each block's int8 scale is 1/128, its quantization exact.
    ints = rng.randint(-127, 128, size=(M, K))
    ints[:, ::BLOCK] = 127
    x = (ints / 128).astype(np.float32)
    weights = (q.astype(np.float64) - 8) * np.repeat(scales.astype(np.float64), BLOCK, axis=1)
    return path, x, x.astype(np.float64) @ weights.T


def _device_site(work: Path) -> Path:
    """edge-sdk and its device dependencies for linux-aarch64, unpacked (wheels are zip files)."""
    from edge_sdk.deploy.targets import get_target
    from edge_sdk.deploy.wheelhouse import build_own_wheel, device_requirements, download

    target, wheels, site = get_target("linux-aarch64"), work / "wheels", work / "site"
    download(wheels, device_requirements((), target, "3.11"), target, "3.11")
    build_own_wheel(wheels)
    for wheel in wheels.glob("*.whl"):
        with zipfile.ZipFile(wheel) as z:
            z.extractall(site)
    return site


def test_arm64_profiles_turn_kleidiai_off_and_stay_exact(arm64_device, tmp_path):
    require_pypi("the aarch64 wheels of onnxruntime and numpy")
    rng = np.random.RandomState(0)
    graph, x, exact = _int4_matmul(tmp_path, rng)
    np.save(tmp_path / "x.npy", x)
    (tmp_path / "probe.py").write_text(ON_DEVICE)
    t0 = time.perf_counter()
    site = _device_site(tmp_path)
    t1 = time.perf_counter()
    proc = arm64_device.run([arm64_device.python, str(tmp_path / "probe.py"), str(graph), str(tmp_path / "x.npy")],
                            cwd=tmp_path, timeout=600, PYTHONPATH=site)
    arm64_device.timings.update(kleidiai_wheels_s=t1 - t0, kleidiai_emulated_s=time.perf_counter() - t1)
    print(f"wheels {t1 - t0:.1f} s, emulated probe {time.perf_counter() - t1:.1f} s")
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = {name: np.array(y) for name, y in json.loads(proc.stdout.strip().splitlines()[-1]).items()}
    errors = {name: float(np.abs(y - exact).max() / np.abs(exact).max()) for name, y in got.items()}
    print(f"arm64 int4 MatMulNBits, max error relative to the largest output: {errors}")
    for profile in ("raspberry-pi-5", "android-midrange", "iphone-15"):
        assert errors[profile] < 1e-5, (profile, errors)  # fp32 rounding only
    # onnxruntime's own choice on this CPU: KleidiAI, bf16 scales (and activations quantized per row).
    assert errors["x86-64-laptop"] > 1e-4, f"KleidiAI was not taken here, so this test cannot bite: {errors}"
