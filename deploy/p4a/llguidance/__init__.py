"""python-for-android recipe: llguidance, the grammar engine of structured output (Rust, built with maturin).

UNVERIFIED: edge-sdk is developed on machines that cannot fetch the Android SDK/NDK or a Rust toolchain
for Android, so this recipe has never run. `edge-sdk package --target android-arm64 --structured` stages
it next to buildozer.spec; docs/deploy.md and docs/structured.md say what was checked and what was not.

Why a recipe: llguidance publishes abi3 wheels for linux x86_64/aarch64 and macOS arm64 only (PyPI has no
android_*_arm64_v8a wheel), and python-for-android has no recipe for it. Its Python module is a PyO3
extension (abi3) with no Python dependencies, which is the shape python-for-android already builds for
pydantic-core and cryptography: `RustCompiledComponentsRecipe` sets the cargo target and linker for the
arch, points PyO3 at the target's libpython (PYO3_CROSS_LIB_DIR) and builds the wheel with the host's
`python -m build` (maturin as the PEP 517 backend, from the sdist's pyproject.toml).

What a first real build will likely need (read from the sdist, not tried): rustup with the
aarch64-linux-android target (the base class adds it), maturin in hostpython (hostpython_prerequisites),
and the sdist's pinned Rust version (rust-toolchain / rust-version in Cargo.toml).
"""
from pythonforandroid.recipe import RustCompiledComponentsRecipe


class LlguidanceRecipe(RustCompiledComponentsRecipe):
    # The version the host's tests ran with (pyproject's `structured` extra: llguidance>=1.9).
    version = "1.9.1"
    url = "https://files.pythonhosted.org/packages/source/l/llguidance/llguidance-{version}.tar.gz"
    site_packages_name = "llguidance"
    hostpython_prerequisites = ["maturin>=1.0"]


recipe = LlguidanceRecipe()
