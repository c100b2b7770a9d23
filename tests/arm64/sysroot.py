"""Run an arm64 (aarch64) Debian bookworm Python on an x86-64 host under qemu user-mode.

The emulated "device" of tests/arm64: a Raspberry Pi OS-like Python 3.11 (Debian bookworm's own
arm64 packages) that runs a device build's install.sh and run.sh unchanged. Stdlib only (Python
3.10+), so tests can import it before anything is installed.

The pieces, and why each one exists:

* ``ensure_qemu``     - a qemu-aarch64 that runs arm64 code (bookworm's qemu-user-static 7.2 by
                        default, installed with apt-get; ``$QEMU_AARCH64`` overrides it, e.g. with
                        trixie's static qemu 10 unpacked from its .deb).
* ``ensure_binfmt``   - registers qemu in binfmt_misc so that arm64 ELF files run *directly*. This is
                        what lets a device-style install script run unchanged: it executes
                        ``.venv/bin/python``, which is a symlink to an arm64 ELF.
* ``ensure_sysroot``  - a folder with the arm64 Debian packages python3.11 needs (plus Mesa for a
                        headless GUI), made from .deb files with ``dpkg-deb -x`` - no chroot, no
                        dpkg database, no maintainer scripts. Cached and built atomically.
* ``arm64_env``       - the environment an arm64 process needs: ``QEMU_LD_PREFIX`` makes qemu look
                        up every absolute path the guest opens (loader, libraries, stdlib,
                        /proc/cpuinfo) in the sysroot first, falling back to the host's file.
* ``python_command``  - argv prefix that runs the arm64 python through qemu explicitly (no binfmt).
* ``python_wrapper``  - a shell script in the sysroot standing in for the arm64 python when binfmt is
                        not available; a venv made with it gets the wrapper as its ``bin/python``.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import struct
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

__all__ = [
    "BASE_PACKAGES",
    "GUI_PACKAGES",
    "GUI_ENV",
    "ensure_qemu",
    "ensure_binfmt",
    "ensure_sysroot",
    "arm64_env",
    "python_command",
    "python_wrapper",
]

# --------------------------------------------------------------------------------------------
# Package lists (Debian bookworm, arm64). Minimal on purpose: each entry is there because a file
# it ships is loaded (measured with readelf NEEDED and /proc/self/maps under emulation).
# The apt dependency closure of python3.11 + libstdc++6 is 39 packages; it pulls dpkg, tar,
# readline, ncurses, krb5/libnsl (for the `nis` module), libdb (dbm) and media-types, none of which
# is needed to start python, import ssl/sqlite3/ctypes/venv, run pip or import onnxruntime.
# --------------------------------------------------------------------------------------------

BASE_PACKAGES: tuple[str, ...] = (
    # the interpreter: /usr/bin/python3.11 (libpython is linked statically) and the stdlib
    "python3.11-minimal",    # /usr/bin/python3.11; NEEDED libz, libexpat, libm, libc
    "libpython3.11-minimal",  # core stdlib (os, re, encodings, ...)
    "libpython3.11-stdlib",  # the rest of the stdlib incl. venv, sqlite3, ssl, ctypes, lib-dynload
    # C libraries behind the interpreter and the lib-dynload modules we need
    "libc6",                 # loader /lib/ld-linux-aarch64.so.1, libc, libm, libpthread, libdl
    "libgcc-s1",             # libgcc_s (pthread_cancel/unwinding; numpy & onnxruntime NEED it)
    "zlib1g",                # libz (python3.11 itself, zlib, onnxruntime)
    "libexpat1",             # libexpat (python3.11 itself: pyexpat is built in)
    "libssl3",               # _ssl, _hashlib
    "libffi8",               # _ctypes
    "libsqlite3-0",          # _sqlite3
    "liblzma5",              # _lzma
    "libbz2-1.0",            # _bz2
    "libuuid1",              # _uuid
    # C++ runtime for onnxruntime (its wheel links libstdc++.so.6 and libgcc_s.so.1)
    "libstdc++6",
)

GUI_PACKAGES: tuple[str, ...] = (
    # Kivy 2.3.1's wheel bundles SDL2 (+ttf/image/mixer) and its fonts; SDL's offscreen video driver
    # then needs EGL + desktop GL from Mesa (llvmpipe software rendering), through GLVND.
    "libegl1", "libegl-mesa0", "libgl1", "libglx0", "libglvnd0", "libgbm1", "libglapi-mesa",
    "libgl1-mesa-dri",       # dri/swrast_dri.so (llvmpipe)
    # everything swrast_dri.so / libEGL_mesa / libgbm load (all of it is mapped at run time)
    "libllvm15", "libedit2", "libtinfo6", "libbsd0", "libmd0", "libicu72", "libxml2", "libz3-4",
    "libzstd1", "libelf1", "libsensors5",
    "libdrm2", "libdrm-amdgpu1", "libdrm-nouveau2", "libdrm-radeon1",
    "libwayland-client0", "libwayland-server0",
    "libx11-6", "libx11-xcb1", "libxau6", "libxdmcp6", "libxcb1", "libxcb-dri2-0",
    "libxcb-dri3-0", "libxcb-present0", "libxcb-randr0", "libxcb-sync1", "libxcb-xfixes0",
    "libxshmfence1",
)

#: Environment for a headless Kivy app (add to ``arm64_env``): SDL draws into an EGL pbuffer.
GUI_ENV: dict[str, str] = {"SDL_VIDEODRIVER": "offscreen", "KIVY_NO_ARGS": "1"}

SUITE = "bookworm"
# (mirror URL, suites). The security suite matters: python3.11 and libssl3 updates live there.
_SOURCES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("http://deb.debian.org/debian", (SUITE, f"{SUITE}-updates")),
    ("http://deb.debian.org/debian-security", (f"{SUITE}-security",)),
)
_KEYRING = "/usr/share/keyrings/debian-archive-keyring.gpg"

PYTHON_IN_SYSROOT = "usr/bin/python3.11"
WRAPPER_IN_SYSROOT = "usr/bin/python3.11-qemu"
_STAMP = ".edge-sdk-sysroot.json"
# Bump when the way a sysroot is laid out changes, so old caches are not reused.
_LAYOUT_VERSION = 2

# /proc/cpuinfo for the guest. qemu 7.2 passes the host's x86 /proc/cpuinfo through; onnxruntime's
# cpuinfo library finds no arm64 processor in it and onnxruntime segfaults on import. qemu looks the
# path up under its -L prefix first, so SYSROOT/proc/cpuinfo is what the guest reads.
# (qemu >= 8.2 synthesises an arm64 /proc/cpuinfo itself and ignores this file.) Cortex-A72 flavour.
_CPUINFO_BLOCK = (
    "processor\t: {i}\n"
    "BogoMIPS\t: 108.00\n"
    "Features\t: fp asimd evtstrm crc32 cpuid\n"
    "CPU implementer\t: 0x41\n"
    "CPU architecture: 8\n"
    "CPU variant\t: 0x0\n"
    "CPU part\t: 0xd08\n"
    "CPU revision\t: 3\n\n"
)

# binfmt_misc line for aarch64 ELF executables (same magic/mask as Debian's qemu-aarch64.conf).
_BINFMT_DIR = Path("/proc/sys/fs/binfmt_misc")
_BINFMT_NAME = "qemu-aarch64"
_BINFMT_MAGIC = r"\x7f\x45\x4c\x46\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\xb7\x00"
_BINFMT_MASK = r"\xff\xff\xff\xff\xff\xff\xff\x00\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\xff"

Log = Callable[[str], object]


# --------------------------------------------------------------------------------------------
# qemu
# --------------------------------------------------------------------------------------------

def _tiny_arm64_elf() -> bytes:
    """A 132-byte static aarch64 executable that exits with status 42.

    Lets us check qemu and binfmt_misc without needing a sysroot (no loader, no libc)."""
    code = struct.pack("<3I", 0xD2800540, 0xD2800BA8, 0xD4000001)  # mov x0,#42; mov x8,#93(exit); svc 0
    base, hdr = 0x400000, 64 + 56
    ehdr = (b"\x7fELF" + bytes([2, 1, 1, 0]) + bytes(8)
            + struct.pack("<HHIQQQIHHHHHH", 2, 0xB7, 1, base + hdr, 64, 0, 0, 64, 56, 1, 0, 0, 0))
    size = hdr + len(code)
    phdr = struct.pack("<IIQQQQQQ", 1, 5, 0, base, base, size, size, 0x1000)  # PT_LOAD R+X
    return ehdr + phdr + code


@contextlib.contextmanager
def _tiny_elf_file() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="arm64-probe-") as d:
        p = Path(d) / "exit42"
        p.write_bytes(_tiny_arm64_elf())
        p.chmod(0o755)
        yield p


def _runs_arm64(argv_prefix: list[str]) -> bool:
    """True if ``argv_prefix + [tiny arm64 ELF]`` exits with 42."""
    with _tiny_elf_file() as elf:
        try:
            r = subprocess.run([*argv_prefix, str(elf)], capture_output=True, timeout=60)
        except (OSError, subprocess.SubprocessError):
            return False
        return r.returncode == 42


def _is_root() -> bool:
    return os.geteuid() == 0


def ensure_qemu() -> str:
    """Path to a working qemu-aarch64 user-mode binary.

    Order: ``$QEMU_AARCH64`` (e.g. trixie's static qemu 10 unpacked with ``dpkg-deb -x``), then
    ``qemu-aarch64-static`` / ``qemu-aarch64`` on PATH, else ``apt-get install qemu-user-static``
    (bookworm: qemu 7.2, ~10 s). Each candidate is checked by running a tiny arm64 program.
    Raises RuntimeError with the reason when no working qemu can be had.
    """
    tried: list[str] = []
    candidates = [os.environ.get("QEMU_AARCH64", ""),
                  shutil.which("qemu-aarch64-static") or "", shutil.which("qemu-aarch64") or ""]
    for c in filter(None, candidates):
        if _runs_arm64([c]):
            return c
        tried.append(c)
    if not _is_root() or not shutil.which("apt-get"):
        raise RuntimeError(
            "no working qemu-aarch64 (tried: %s) and cannot install one: need root and apt-get "
            "(apt-get install qemu-user-static), or set QEMU_AARCH64 to a static qemu-aarch64"
            % (", ".join(tried) or "none found"))
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    cmd = ["apt-get", "install", "-y", "--no-install-recommends", "qemu-user-static"]
    r = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if r.returncode != 0:  # most often: package lists never fetched on this machine
        subprocess.run(["apt-get", "update"], env=env, capture_output=True, text=True)
        r = subprocess.run(cmd, env=env, capture_output=True, text=True)
    q = shutil.which("qemu-aarch64-static")
    if r.returncode != 0 or not q or not _runs_arm64([q]):
        raise RuntimeError("apt-get install qemu-user-static failed or gave no working "
                           "qemu-aarch64-static:\n" + (r.stderr or r.stdout)[-2000:])
    return q


def ensure_binfmt(qemu: str) -> bool:
    """Make arm64 ELF files execute directly (kernel binfmt_misc -> qemu). True if they now do.

    Needs root (or an existing registration). Mounts binfmt_misc if it is not mounted, removes a
    broken ``qemu-aarch64`` entry and registers ``qemu`` with flags:
      F - the kernel opens the interpreter now, so it works whatever the caller's mount view;
      P - keep argv[0] (qemu >= 5.1 reads it), so programs see the name they were run by.
    The registration is kernel-wide and lasts until reboot; it does not set QEMU_LD_PREFIX - the
    environment from ``arm64_env`` is still needed for dynamically linked programs.
    """
    with _tiny_elf_file() as elf:
        def works() -> bool:
            try:
                return subprocess.run([str(elf)], capture_output=True, timeout=60).returncode == 42
            except OSError:  # ENOEXEC: no handler for this ELF
                return False

        if works():
            return True
        if not _is_root():
            return False
        if not (_BINFMT_DIR / "register").exists():
            # In a VM or a privileged container this works; in an unprivileged container it fails.
            r = subprocess.run(["mount", "-t", "binfmt_misc", "binfmt_misc", str(_BINFMT_DIR)],
                               capture_output=True, text=True)
            if r.returncode != 0 or not (_BINFMT_DIR / "register").exists():
                return False
        try:
            if (_BINFMT_DIR / "status").read_text().strip() != "enabled":
                (_BINFMT_DIR / "status").write_text("1")  # binfmt_misc as a whole was disabled
            entry = _BINFMT_DIR / _BINFMT_NAME
            if entry.exists():
                entry.write_text("-1")  # it exists but does not work (stale path, disabled...)
            interp = os.path.realpath(qemu)
            line = f":{_BINFMT_NAME}:M::{_BINFMT_MAGIC}:{_BINFMT_MASK}:{interp}:FP"
            (_BINFMT_DIR / "register").write_text(line)
        except OSError:
            return False
        return works()


# --------------------------------------------------------------------------------------------
# sysroot
# --------------------------------------------------------------------------------------------

def _cpuinfo_text() -> str:
    # As many processors as the host has, so thread pools size themselves as on the host.
    return "".join(_CPUINFO_BLOCK.format(i=i) for i in range(os.cpu_count() or 1))


def _apt_config(apt_dir: Path) -> Path:
    """A private apt setup for arm64 (lists, cache, empty dpkg status) under ``apt_dir``.

    Nothing of the host's apt configuration is read (Dir::Etc points here), nothing of the host's
    apt state is touched, and the host's dpkg never learns about arm64."""
    for sub in ("etc/apt/apt.conf.d", "etc/apt/preferences.d", "etc/apt/sources.list.d",
                "lists/partial", "cache/archives/partial", "log"):
        (apt_dir / sub).mkdir(parents=True, exist_ok=True)
    status = apt_dir / "status"
    if not status.exists():
        status.write_text("")  # empty dpkg status: nothing counts as installed
    if not Path(_KEYRING).exists():
        raise RuntimeError(f"{_KEYRING} is missing (apt-get install debian-archive-keyring)")
    sources = "".join(f"deb [arch=arm64 signed-by={_KEYRING}] {url} {suite} main\n"
                      for url, suites in _SOURCES for suite in suites)
    _write_if_changed(apt_dir / "etc/apt/sources.list", sources)
    conf = f"""\
Dir::Etc "{apt_dir}/etc/apt";
Dir::State "{apt_dir}";
Dir::State::Lists "{apt_dir}/lists";
Dir::State::status "{apt_dir}/status";
Dir::Cache "{apt_dir}/cache";
Dir::Log "{apt_dir}/log";
APT::Architecture "arm64";
APT::Architectures {{ "arm64"; }};
APT::Install-Recommends "false";
Acquire::Languages "none";
APT::Sandbox::User "root";
"""
    cfg = apt_dir / "apt.conf"
    _write_if_changed(cfg, conf)
    return cfg


def _write_if_changed(path: Path, text: str) -> None:
    if not path.exists() or path.read_text() != text:
        tmp = path.with_name(path.name + f".tmp{os.getpid()}")
        tmp.write_text(text)
        os.replace(tmp, path)


def _apt(cfg: Path, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "APT_CONFIG": str(cfg), "DEBIAN_FRONTEND": "noninteractive"}
    return subprocess.run(["apt-get", "-q", *args], env=env, cwd=cwd, capture_output=True, text=True)


def _have_lists(apt_dir: Path) -> bool:
    return any(p.name.endswith("_Packages") for p in (apt_dir / "lists").glob("*"))


def _update_lists(cfg: Path, apt_dir: Path, log: Log) -> None:
    t = time.monotonic()
    r = _apt(cfg, "update")
    if r.returncode != 0 or not _have_lists(apt_dir):
        raise RuntimeError("apt-get update (arm64 lists) failed:\n" + r.stderr[-2000:])
    log(f"[sysroot] apt lists (arm64) fetched in {time.monotonic() - t:.1f}s")


def _resolve(cfg: Path, packages: list[str]) -> list[tuple[str, str, int, str]]:
    """(url, filename, size, sha256) for each package, from the cached lists; no downloading."""
    r = _apt(cfg, "download", "--print-uris", *packages)
    if r.returncode != 0:
        raise LookupError(r.stderr.strip())
    out = []
    for line in r.stdout.splitlines():
        if line.startswith("'"):
            url, fname, size, digest = line.split()
            out.append((url.strip("'"), fname, int(size), digest.split(":", 1)[1].lower()))
    return out


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _fetch_debs(cache_root: Path, packages: list[str], log: Log) -> list[Path]:
    """The .deb files for ``packages`` (exact names, no dependency resolution), downloading only
    what is not in ``cache_root/debs`` yet. Lists are fetched once and reused; they are refreshed
    only when a package cannot be resolved or downloaded (a stale list names a removed version)."""
    apt_dir = cache_root / "apt"
    debs_dir = cache_root / "debs"
    debs_dir.mkdir(parents=True, exist_ok=True)
    cfg = _apt_config(apt_dir)
    refreshed = False
    if not _have_lists(apt_dir):
        _update_lists(cfg, apt_dir, log)
        refreshed = True
    while True:
        try:
            wanted = _resolve(cfg, packages)
            for _u, fname, size, digest in wanted:  # e.g. cut short by a killed download
                p = debs_dir / fname
                if p.exists() and (p.stat().st_size != size or _sha256(p) != digest):
                    p.unlink()
            # A .deb is named <package>_<version>_<arch>.deb.
            missing = [fname.split("_", 1)[0] for _u, fname, _s, _d in wanted
                       if not (debs_dir / fname).exists()]
            if missing:
                t = time.monotonic()
                r = _apt(cfg, "download", *missing, cwd=debs_dir)
                if r.returncode != 0:
                    raise LookupError(r.stderr.strip()[-2000:])
                log(f"[sysroot] downloaded {len(missing)} .deb in {time.monotonic() - t:.1f}s")
            break
        except LookupError as e:
            if refreshed:
                raise RuntimeError(f"cannot get arm64 packages {packages}: {e}") from None
            log(f"[sysroot] refreshing apt lists ({str(e).splitlines()[-1] if str(e) else e})")
            _update_lists(cfg, apt_dir, log)
            refreshed = True
    paths = []
    for _url, fname, size, digest in wanted:
        p = debs_dir / fname
        if p.stat().st_size != size or _sha256(p) != digest:
            p.unlink()
            raise RuntimeError(f"{p} does not match its hash in the apt lists (removed it)")
        paths.append(p)
    return paths


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """Exclusive lock, so parallel test workers build a sysroot once and never see half of one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


_WRAPPER = """\
#!/bin/sh
# Stand-in for the arm64 python when binfmt_misc is not available (written by sysroot.py).
# -0 "$0": python gets the name it was called by as argv[0], so `.venv/bin/python` (a symlink to
# this script made by `python3.11-qemu -m venv`) finds .venv/pyvenv.cfg and runs inside the venv.
# The sysroot is wherever this script really lives (../.. from usr/bin).
here=$(dirname "$(readlink -f "$0")")
root=$(dirname "$(dirname "$here")")
qemu=${QEMU_AARCH64:-$(command -v qemu-aarch64-static || command -v qemu-aarch64)}
exec "$qemu" -L "$root" -0 "$0" "$root/usr/bin/python3.11" "$@"
"""

_SMOKE_BASE = (
    "import platform, ssl, sqlite3, ctypes, venv, lzma, bz2, zlib, hashlib, uuid, decimal, json;"
    "assert platform.machine() == 'aarch64', platform.machine();"
    "ctypes.CDLL('libstdc++.so.6'); ctypes.CDLL('libgcc_s.so.1')"
)
_SMOKE_GUI = (
    ";[ctypes.CDLL(n) for n in ('libEGL.so.1', 'libGL.so.1', 'libgbm.so.1',"
    " '/usr/lib/aarch64-linux-gnu/dri/swrast_dri.so')]"
)


def ensure_sysroot(cache_root: Path, *, gui: bool = False, log: Log = print) -> Path:
    """The arm64 sysroot: ``BASE_PACKAGES`` (+ ``GUI_PACKAGES`` when ``gui``), unpacked.

    ``cache_root/sysroot-{base|gui}-<key>``, where key hashes the package list, the mirrors, the
    generated /proc/cpuinfo and the layout version. A stamp file marks a finished sysroot; a build
    happens in ``cache_root/.tmp-*`` and is renamed into place after a smoke test (the emulated
    python imports ssl/sqlite3/ctypes/venv and loads libstdc++ [and EGL/GL/llvmpipe]), so a killed
    run leaves no half-made sysroot (stale temp folders are removed by the next build).
    Also kept under cache_root: ``apt/`` (arm64 lists, reused) and ``debs/`` (downloaded .deb).
    """
    cache_root = Path(cache_root).expanduser().resolve()
    packages = list(BASE_PACKAGES) + (list(GUI_PACKAGES) if gui else [])
    cpuinfo = _cpuinfo_text()
    key_src = json.dumps({"layout": _LAYOUT_VERSION, "sources": _SOURCES, "packages": packages,
                          "cpuinfo": cpuinfo}, sort_keys=True)
    key = hashlib.sha256(key_src.encode()).hexdigest()[:12]
    dest = cache_root / f"sysroot-{'gui' if gui else 'base'}-{key}"
    if (dest / _STAMP).exists():  # fast path, no lock: the stamp is written before the rename
        return dest

    with _locked(cache_root / ".lock"):
        if (dest / _STAMP).exists():  # another process built it while we waited
            return dest
        t0 = time.monotonic()
        for stale in cache_root.glob(".tmp-sysroot-*"):  # from killed runs; we hold the lock
            shutil.rmtree(stale, ignore_errors=True)
        if dest.exists():  # no stamp: not ours to trust
            shutil.rmtree(dest)
        qemu = ensure_qemu()  # before downloading: fail early and clearly
        debs = _fetch_debs(cache_root, packages, log)
        tmp = Path(tempfile.mkdtemp(prefix=f".tmp-sysroot-{key}-", dir=cache_root))
        try:
            t = time.monotonic()
            for deb in debs:
                # dpkg-deb -x: files only (no maintainer scripts, no dpkg database). bookworm is
                # not merged-/usr, so /lib and /usr/lib are separate trees; ld.so searches both.
                subprocess.run(["dpkg-deb", "-x", str(deb), str(tmp)], check=True,
                               capture_output=True)
            (tmp / "proc").mkdir(exist_ok=True)
            (tmp / "proc/cpuinfo").write_text(cpuinfo)
            # Without these the arm64 ld.so reads the host's files through qemu's fallback: the
            # x86 /etc/ld.so.cache (ignored, but arm64 libraries a host has from multiarch would be
            # found there) and /etc/ld.so.preload (x86 libraries -> "cannot be preloaded" noise).
            # Empty files: no cache, no preload; ld.so searches /lib/aarch64-linux-gnu and
            # /usr/lib/aarch64-linux-gnu of the sysroot.
            (tmp / "etc").mkdir(exist_ok=True)
            (tmp / "etc/ld.so.cache").write_bytes(b"")
            (tmp / "etc/ld.so.preload").write_bytes(b"")
            wrapper = tmp / WRAPPER_IN_SYSROOT
            wrapper.write_text(_WRAPPER)
            wrapper.chmod(0o755)
            log(f"[sysroot] unpacked {len(debs)} packages in {time.monotonic() - t:.1f}s")

            t = time.monotonic()
            smoke = _SMOKE_BASE + (_SMOKE_GUI if gui else "")
            r = subprocess.run([*python_command(tmp, qemu), "-c", smoke], env=arm64_env(tmp),
                               capture_output=True, text=True, timeout=600)
            if r.returncode != 0:
                raise RuntimeError(f"smoke test of the new sysroot failed (rc={r.returncode}):\n"
                                   + (r.stderr or r.stdout)[-3000:])
            log(f"[sysroot] smoke test under emulation passed in {time.monotonic() - t:.1f}s")

            versions = sorted(d.name for d in debs)
            (tmp / _STAMP).write_text(json.dumps({"packages": packages, "debs": versions,
                                                  "key": key}, indent=1))
            os.rename(tmp, dest)  # atomic on one filesystem
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        log(f"[sysroot] built {dest} in {time.monotonic() - t0:.1f}s")
        return dest


# --------------------------------------------------------------------------------------------
# running things
# --------------------------------------------------------------------------------------------

# Host variables that would make the arm64 process load x86 files or the host's stdlib.
_DROP = ("LD_LIBRARY_PATH", "LD_PRELOAD", "PYTHONHOME", "PYTHONPATH", "PYTHONSTARTUP",
         "PYTHONUSERBASE", "VIRTUAL_ENV")


def arm64_env(sysroot: Path, base: Mapping[str, str] | None = None, *,
              gui: bool = False) -> dict[str, str]:
    """Environment for arm64 processes (with binfmt or ``python_command``).

    * QEMU_LD_PREFIX=sysroot: qemu opens /lib/ld-linux-aarch64.so.1 there, and redirects every
      absolute path the guest opens that exists in the sysroot (libraries, /usr/lib/python3.11,
      /proc/cpuinfo); other paths (your project, /tmp, /etc/ssl/certs) are the host's.
      LD_LIBRARY_PATH is NOT needed: the arm64 ld.so searches /lib/aarch64-linux-gnu and
      /usr/lib/aarch64-linux-gnu itself, and Mesa finds its dri/ and glvnd/ files the same way.
    * Host LD_*/PYTHON* variables are dropped (x86 libraries, the host's stdlib).
    * gui=True adds ``GUI_ENV`` (SDL offscreen; no X server needed).
    """
    env = dict(os.environ if base is None else base)
    for k in _DROP:
        env.pop(k, None)
    env["QEMU_LD_PREFIX"] = str(Path(sysroot).resolve())
    if gui:
        env.update(GUI_ENV)
    return env


def python_command(sysroot: Path, qemu: str) -> list[str]:
    """argv prefix running the arm64 python without binfmt: ``[qemu, -L, sysroot, python3.11]``.

    To run a venv's python this way use ``[qemu, "-L", sysroot, ".venv/bin/python", ...]``: qemu
    passes the path as argv[0], so python finds pyvenv.cfg. Programs that re-execute
    ``sys.executable`` (pip does for builds) need binfmt or ``python_wrapper`` instead."""
    sysroot = Path(sysroot).resolve()
    return [qemu, "-L", str(sysroot), str(sysroot / PYTHON_IN_SYSROOT)]


def python_wrapper(sysroot: Path) -> Path:
    """A shell script that behaves like the arm64 python without binfmt (use it as ``$PYTHON``).

    ``$PYTHON -m venv --without-pip .venv`` then symlinks ``.venv/bin/python*`` to this script, so
    the venv's python, and ``sys.executable`` inside it, work without binfmt too. qemu comes from
    ``$QEMU_AARCH64`` or PATH."""
    return Path(sysroot).resolve() / WRAPPER_IN_SYSROOT
