"""python-for-android recipe: onnxruntime's Python module, cross-compiled with the NDK (CPU EP only).

UNVERIFIED: edge-sdk is developed on machines that cannot fetch the Android SDK/NDK, so this
recipe has never run. `edge-sdk package --target android-arm64` stages it next to buildozer.spec;
docs/deploy.md says what was checked and what was not.

Why from source: PyPI has no Android wheel of onnxruntime and python-for-android has no recipe
for it. The official Android AAR only holds libonnxruntime.so with the C and Java APIs, while the
Python module (`onnxruntime_pybind11_state`) is pybind11 over the internal C++ API: it has to be
compiled together with the library.

The shape follows the two public builds known to work on Android (read, not copied): Termux's
`python-onnxruntime` and Flet mobile-forge's onnxruntime 1.27 recipe. Both configure onnxruntime's
CMake project directly instead of `tools/ci_build/build.py` (which assumes host == target for the
Python step), and mobile-forge links everything statically into the one extension:
- onnxruntime_BUILD_SHARED_LIB=OFF: no libonnxruntime.so to load beside the module;
- XNNPACK and NNAPI off: the CPU EP (MLAS, NEON) is the dependable baseline, and our graphs'
  contrib ops (MatMulNBits, GroupQueryAttention) run on the CPU EP only anyway;
- 16 KB page alignment, which Android 15 requires of native libraries;
- pybind11 told it is cross-compiling, and pointed at the target's Python and numpy headers.
If onnxruntime's sources need patches for this release (mobile-forge carries four small ones), they
go in a `patches` list here; that is the first thing a real build will tell us.
"""
from __future__ import annotations

import os
import shutil
from multiprocessing import cpu_count
from os.path import join

import sh
from pythonforandroid.logger import info, shprint
from pythonforandroid.recipe import Recipe
from pythonforandroid.util import current_directory, ensure_dir


class OnnxRuntimeRecipe(Recipe):
    version = "1.27.0"
    url = "https://github.com/microsoft/onnxruntime/archive/refs/tags/v{version}.tar.gz"
    depends = ["python3", "numpy"]
    need_stl_shared = True  # C++17: the module links libc++_shared.so, which p4a ships with the APK

    def build_arch(self, arch):
        env = self.get_recipe_env(arch)
        src = self.get_build_dir(arch.arch)
        build = join(src, "android-build")
        ensure_dir(build)
        py = self.ctx.python_recipe
        libpython = join(py.link_root(arch.arch), f"libpython{py.link_version}.so")
        numpy_include = join(self.ctx.get_python_install_dir(arch.arch), "numpy", "_core", "include")
        page = "-Wl,-z,max-page-size=16384"
        info(f"onnxruntime {self.version}: configuring for {arch.arch}, Android API {self.ctx.ndk_api}")
        with current_directory(build):
            shprint(sh.cmake, join(src, "cmake"), "-GNinja",
                    "-DCMAKE_BUILD_TYPE=Release",
                    "-DCMAKE_POLICY_VERSION_MINIMUM=3.5",
                    f"-DCMAKE_TOOLCHAIN_FILE={join(self.ctx.ndk_dir, 'build', 'cmake', 'android.toolchain.cmake')}",
                    f"-DANDROID_ABI={arch.arch}",
                    f"-DANDROID_PLATFORM=android-{self.ctx.ndk_api}",
                    "-DANDROID_STL=c++_shared",
                    f"-DCMAKE_SHARED_LINKER_FLAGS={page}",
                    f"-DCMAKE_MODULE_LINKER_FLAGS={page}",
                    f"-DPython_EXECUTABLE={self.ctx.hostpython}",
                    f"-DPython_INCLUDE_DIR={py.include_root(arch.arch)}",
                    f"-DPython_LIBRARY={libpython}",
                    f"-DPython_NumPy_INCLUDE_DIR={numpy_include}",
                    "-DPYBIND11_USE_CROSSCOMPILING=TRUE",
                    "-Donnxruntime_ENABLE_PYTHON=ON",
                    "-Donnxruntime_BUILD_SHARED_LIB=OFF",
                    "-Donnxruntime_USE_XNNPACK=OFF",
                    "-Donnxruntime_USE_NNAPI_BUILTIN=OFF",
                    "-Donnxruntime_BUILD_UNIT_TESTS=OFF",
                    _env=env)
            # The pybind target also lays out the Python package (onnxruntime/ with capi/) in the build folder.
            shprint(sh.cmake, "--build", ".", "--target", "onnxruntime_pybind11_state", "--parallel", str(cpu_count()),
                    _env=env)
        self._install_package(arch, build)

    def _install_package(self, arch, build):
        src = join(build, "onnxruntime")
        if not os.path.isfile(join(src, "__init__.py")):
            raise RuntimeError(f"onnxruntime: no Python package at {src} after the build; see the log above")
        dest = join(self.ctx.get_python_install_dir(arch.arch), "onnxruntime")
        shutil.rmtree(dest, ignore_errors=True)
        # Only what `import onnxruntime` and InferenceSession need: the model-preparation subpackages
        # (quantization, transformers, tools) import packages the phone does not have.
        shutil.copytree(src, dest, ignore=shutil.ignore_patterns("*.pyc", "__pycache__", "test*", "quantization",
                                                                 "transformers", "tools"))


recipe = OnnxRuntimeRecipe()
