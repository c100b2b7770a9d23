"""python-for-android recipe: onnxruntime's Python module, cross-built from source with the NDK.

UNVERIFIED: no APK can be built on the machines this project is developed on (no SDK/NDK, no
network for them). Read docs/mobile.md before relying on it.

Why from source: python-for-android has no onnxruntime recipe and PyPI has no Android wheel.
The official Android AAR only contains ``libonnxruntime.so`` with the C/Java APIs; onnxruntime's
Python module (``onnxruntime_pybind11_state``) is pybind11 over the *internal* C++ API, so it
cannot be built against that .so - it has to be compiled together with the library. This is
what Termux's ``python-onnxruntime`` package does for aarch64 Android, so the route is known to
work; expect a long build (tens of minutes on a fast machine).

What the recipe does: runs onnxruntime's own ``tools/ci_build/build.py`` with the Android
toolchain, pybind enabled and p4a's target Python/numpy headers, then copies the resulting
``onnxruntime`` package into the app's site-packages.
"""
from __future__ import annotations

import glob
import os
import shutil
from multiprocessing import cpu_count
from os.path import join

import sh
from pythonforandroid.logger import info, shprint
from pythonforandroid.recipe import Recipe
from pythonforandroid.util import current_directory


class OnnxRuntimeRecipe(Recipe):
    version = "1.22.0"  # a release whose build.py supports --android with --enable_pybind patches below
    url = "https://github.com/microsoft/onnxruntime/archive/refs/tags/v{version}.tar.gz"
    depends = ["python3", "numpy"]
    # onnxruntime's CMake fetches its third-party sources (abseil, protobuf, eigen ...) itself.
    need_stl_shared = True
    built_libraries = {}  # the .so files land inside the Python package, copied by build_arch

    def build_arch(self, arch):
        env = self.get_recipe_env(arch)
        python = self.ctx.python_recipe
        build_dir = self.get_build_dir(arch.arch)
        out_dir = join(build_dir, "android-build")
        numpy_include = join(self.ctx.get_python_install_dir(arch.arch), "numpy", "_core", "include")
        with current_directory(build_dir):
            info(f"onnxruntime: cross-building for {arch.arch}, API {self.ctx.ndk_api}")
            shprint(
                sh.Command(self.ctx.hostpython), "tools/ci_build/build.py",
                "--build_dir", out_dir, "--config", "MinSizeRel", "--parallel", str(cpu_count()),
                "--android", "--android_abi", arch.arch, "--android_api", str(self.ctx.ndk_api),
                "--android_sdk_path", self.ctx.sdk_dir, "--android_ndk_path", self.ctx.ndk_dir,
                "--build_shared_lib", "--enable_pybind", "--skip_tests", "--skip_submodule_sync",
                "--cmake_extra_defines",
                # Build against the *target* interpreter and numpy, not the host's.
                f"Python_EXECUTABLE={self.ctx.hostpython}",
                f"Python_INCLUDE_DIR={python.include_root(arch.arch)}",
                f"Python_LIBRARY={join(python.link_root(arch.arch), 'libpython' + python.link_version + '.so')}",
                f"Python_NumPy_INCLUDE_DIR={numpy_include}",
                "onnxruntime_ENABLE_PYTHON=ON",
                _env=env,
            )
        self._install_package(arch, join(out_dir, "MinSizeRel"))

    def _install_package(self, arch, built):
        """Copy build/onnxruntime (the Python package with its .so files) into site-packages."""
        src = join(built, "onnxruntime")
        if not os.path.isdir(src):
            raise RuntimeError(f"onnxruntime: no Python package at {src}; see the build log")
        dest = join(self.ctx.get_python_install_dir(arch.arch), "onnxruntime")
        shutil.rmtree(dest, ignore_errors=True)
        shutil.copytree(src, dest, ignore=shutil.ignore_patterns("*.pyc", "__pycache__", "test*"))
        for lib in glob.glob(join(built, "libonnxruntime*.so")):
            shutil.copy(lib, join(dest, "capi"))


recipe = OnnxRuntimeRecipe()
