"""`edge-sdk package`: a bundle + the runtime, made into something that installs and runs on a device.

    package("bundles/smollm2", "linux-aarch64", "dist/pi")

A Linux build (`linux-aarch64`, `linux-x86_64`) is a folder and a `.tar.gz` of it:

    device_build.json     target, Python ABI, profile, versions, and the sha256 of every other file
    install.sh run.sh     offline install into a venv; run the model (or the chat app)
    README.txt            the two commands, and what the build holds
    device_profile.json   the device profile the build runs with (threads, providers)
    wheels/               edge-sdk + its device dependencies, for the target's platform and Python
    bundle/               the edge bundle, its hashes re-verified while packaging
    embedder/             with --embedder: an embedder bundle for document search (edge-sdk index / ask)

An Android build (`android-arm64`) is a staged python-for-android project instead (see android.py).
Every refusal happens before anything is written, and the output appears only when complete.
"""
from __future__ import annotations

import datetime
import gzip
import json
import os
import shutil
import subprocess
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edge_sdk.errors import DeviceBuildError, DeviceFitError, OutputExistsError
from edge_sdk.exporters.progress import Progress
from edge_sdk.exporters.staging import staging
from edge_sdk.runtime.bundle import MANIFEST_NAME, read_manifest, sha256_file

from . import scripts, wheelhouse
from .targets import Target, check_python, get_target

BUILD_FILE = "device_build.json"
BUILD_FORMAT = "edge-device-build"
BUILD_SCHEMA = 1
MB = 1 << 20


@dataclass(frozen=True)
class App:
    """What a build runs on the device, and the edge-sdk extras it needs there."""

    name: str
    extras: tuple[str, ...]
    what: str  # for run.sh's header


APPS = {
    "none": App("none", (), "the model from the command line (edge-sdk run / chat)"),
    "chat": App("chat", ("demo",), "the Kivy chat app"),
    "server": App("server", ("serve",), "the local OpenAI-compatible server"),
}


def package(bundle: str | os.PathLike, target: str, output: str | os.PathLike, *, app: str = "none",
            python: str | None = None, device: str | None = None, force: bool = False,
            progress: bool = True, embedder: str | os.PathLike | None = None,
            structured: bool = False, store_url: str | None = None) -> dict[str, Any]:
    """Make a device build of `bundle` for `target` at `output` (and `<output>.tar.gz` for Linux).

    device: a device profile name or .json path (default: the target's, e.g. raspberry-pi-5).
    embedder: an embedder bundle to ship beside the model (in `embedder/`), for answers from documents.
    structured: ship the grammar engine (the `structured` extra: llguidance) for response_format and tools.
    store_url: ship no bundle; the build pulls this bundle's published version from there on first run
        (store_build.py).
    Returns the build's device_build.json content.
    """
    log = Progress(progress)
    tgt = get_target(target)
    py = check_python(tgt, python)
    spec = _check_app(app, tgt)
    if structured:
        spec, tgt = _with_structured(spec, tgt)
    output = Path(os.path.abspath(output))
    archive = output.parent / f"{output.name}.tar.gz" if tgt.os == "linux" else None
    _check_archive(archive, force)
    bundle = Path(bundle)
    log.stage(f"checking {bundle} (sha256 of every file)")
    manifest = read_manifest(bundle, verify=True)
    if manifest.get("kind") == "embedder":
        raise DeviceBuildError(f"{bundle} is an embedder bundle: package the language model as BUNDLE and add the "
                               f"embedder with --embedder {bundle}")
    embedder_manifest = None
    if embedder is not None:
        embedder = Path(embedder)
        log.stage(f"checking the embedder {embedder} (sha256 of every file)")
        embedder_manifest = read_manifest(embedder, verify=True)
        if embedder_manifest.get("kind") != "embedder":
            raise DeviceBuildError(f"--embedder {embedder} is not an embedder bundle; export one with "
                                   "`edge-sdk export all-minilm-l6-v2 --output DIR`")
        if tgt.os != "linux":
            raise DeviceBuildError(f"--embedder is supported for Linux targets; the {tgt.name} project does not ship "
                                   "one yet")
    profile = _target_profile(device, tgt)
    memory = check_runs_on(manifest, bundle, profile, tgt, embedder_manifest)
    published = None
    if store_url is not None:
        from .store_build import find_published

        if tgt.os != "linux":
            raise DeviceBuildError(f"--store-url is supported for Linux targets; the {tgt.name} project ships its bundle")
        log.stage(f"finding {bundle} at {store_url}")
        published = find_published(store_url, bundle)
    log.note(f"{manifest['name']} on {tgt.name} with profile {profile.name}: ~{memory['total_mb']:.0f} MB "
             f"of {profile.memory_budget_mb} MB")

    archive_written = False
    try:
        with staging(output, force, marker=BUILD_FILE, fmt=BUILD_FORMAT, kind="device build") as tmp:
            build = _header(manifest, tgt, py, spec, profile, memory, root="" if tgt.os == "linux" else "app/")
            if tgt.os == "linux":
                if published is None:
                    _copy_bundle(bundle, tmp / "bundle", log)
                if embedder is not None:
                    _copy_bundle(embedder, tmp / "embedder", log)
                    build["embedder"] = {"path": "embedder", "name": embedder_manifest["name"],
                                         "recipe": embedder_manifest["quantization"]["recipe"]}
                _write_json(tmp / "device_profile.json", profile.to_dict())
                build.update(_linux(tmp, tgt, py, spec, profile, manifest, log))
                if published is not None:
                    from .store_build import store_run_sh, write_store_files

                    write_store_files(tmp, published)
                    _write_script(tmp / "run.sh", store_run_sh((tmp / "run.sh").read_text(encoding="utf-8"), published))
                    build["bundle"].update(path=None, manifest_sha256=published["manifest_sha256"],
                                           store={k: published[k] for k in ("url", "name", "version")})
            else:
                from .android import stage_android

                build.update(stage_android(tmp, bundle, tgt, py, manifest, profile, log,
                                           structured="structured" in spec.extras))
            build["files"] = _file_table(tmp)
            for part in ("bundle", "embedder"):
                if part in build and build[part]["path"]:
                    build[part]["manifest_sha256"] = build["files"][f"{build[part]['path']}/{MANIFEST_NAME}"]["sha256"]
            _write_json(tmp / BUILD_FILE, build)
            if archive is not None:
                log.stage(f"writing {archive.name}")
                _write_archive(tmp, archive, output.name)
                archive_written = True
    except BaseException:
        if archive_written:  # the folder did not make it into place: neither does its archive
            archive.unlink(missing_ok=True)
        raise
    log.stage(f"device build written to {output}" + (f" and {archive}" if archive else ""))
    return build


# -- checks (before anything is written) ------------------------------------------------------------

def _check_app(app: str, target: Target) -> App:
    if app not in APPS:
        raise DeviceBuildError(f"unknown --app {app!r}; choose one of {', '.join(APPS)}")
    if target.os == "android" and app != "chat":
        raise DeviceBuildError(f"an Android build is an app: use --app chat (got --app {app})")
    return APPS[app]


def _with_structured(app: App, target: Target) -> tuple[App, Target]:
    """The app with the `structured` extra, and the wheel tags its engine needs: llguidance 1.9 publishes
    manylinux_2_31 wheels only (glibc 2.31: Debian 11, Ubuntu 20.04, Raspberry Pi OS bookworm and newer;
    the build's min_glibc says so). Android builds get the python-for-android recipe instead (android.py)."""
    from dataclasses import replace

    app = replace(app, extras=tuple(dict.fromkeys(app.extras + ("structured",))))
    if target.os == "linux":
        target = replace(target, pip_platforms=(f"manylinux_2_31_{target.machine}",) + target.pip_platforms)
    return app, target


def _check_archive(archive: Path | None, force: bool) -> None:
    """The .tar.gz beside the folder follows the folder's rule: --force replaces only a previous build's."""
    if archive is None or not (archive.exists() or archive.is_symlink()):
        return
    if not force:
        raise OutputExistsError(f"{archive} already exists; pass --force to replace it, or choose another --output")
    if archive.is_symlink() or not archive.is_file() or _archive_marker(archive) != f"{archive.name[:-7]}/{BUILD_FILE}":
        raise OutputExistsError(f"{archive} exists and is not a previous device build's archive; it will not be "
                                "replaced, even with --force: choose another --output")


def _archive_marker(archive: Path) -> str | None:
    """The first member's name: our archives start with <name>/device_build.json (read without unpacking)."""
    try:
        with tarfile.open(archive, "r:gz") as tar:
            first = tar.next()
            return first.name if first else None
    except (tarfile.TarError, OSError, EOFError):
        return None


def _target_profile(device: str | None, target: Target):
    from edge_sdk.devices import load_profile

    profile = load_profile(device or target.default_profile)
    if profile.cpu_arch != target.cpu_arch:
        raise DeviceBuildError(f"device profile {profile.name} is for {profile.cpu_arch} CPUs, but {target.name} is "
                               f"{target.cpu_arch}; pick an {target.cpu_arch} profile (see `edge-sdk devices`)")
    missing = [ep for ep in profile.execution_providers if ep not in target.providers]
    if profile.npu_only or missing:
        raise DeviceBuildError(
            f"device profile {profile.name} needs {', '.join(missing or profile.execution_providers)}, which "
            f"{target.name}'s onnxruntime does not have (it has {', '.join(target.providers)}); "
            f"use a CPU profile such as {target.default_profile}")
    return profile


def estimate_memory(manifest: dict[str, Any], bundle: Path) -> dict[str, float]:
    """What the bundle takes when loaded: its weights as stored, the KV cache at the bundle's maximum
    context, and the working memory estimate the exporter uses."""
    from edge_sdk.exporters.fit import working_bytes

    tok = manifest["tokenizer"]
    skip = {tok.get("file"), tok.get("compact_file"), manifest["chat_template"].get("file")}
    weights = sum(info["bytes"] for name, info in manifest["files"].items() if name not in skip)
    kv = manifest["kv_cache"]
    itemsize = {"float32": 4, "float16": 2}.get(kv.get("dtype"), 4)
    context = manifest["graph"].get("max_context") or manifest["architecture"].get("max_position_embeddings", 0)
    kv_bytes = 2 * kv["num_layers"] * kv["num_kv_heads"] * kv["head_dim"] * context * itemsize
    working = working_bytes(manifest["architecture"]["vocab_size"])
    return {"weights_mb": round(weights / MB, 1), "kv_cache_mb": round(kv_bytes / MB, 1),
            "working_mb": round(working / MB, 1), "total_mb": round((weights + kv_bytes + working) / MB, 1),
            "max_context": context}


def embedder_memory(manifest: dict[str, Any]) -> float:
    """MB an embedder takes loaded: its files (weights, tokenizer) plus one batch's activations
    (batch x tokens x the MLP's width, float32, a few live at once)."""
    files = sum(info["bytes"] for info in manifest["files"].values())
    emb, arch = manifest["embedding"], manifest["architecture"]
    batch = int(emb.get("batch_size") or 32) * int(emb["max_tokens"])
    activations = 4 * batch * int(arch.get("intermediate_size") or 4 * emb["dim"]) * 3
    return round((files + activations) / MB, 1)


def check_runs_on(manifest: dict[str, Any], bundle: Path, profile, target: Target,
                  embedder: dict[str, Any] | None = None) -> dict[str, float]:
    """Refuse a bundle the target cannot run, or one over the profile's memory budget (with the
    embedder's share when one ships beside it)."""
    dev = manifest["device"]
    needs = [ep for ep in dev.get("execution_providers", []) if ep not in target.providers]
    if dev.get("npu_only") or (needs and "CPUExecutionProvider" not in dev.get("execution_providers", [])):
        raise DeviceBuildError(
            f"{bundle} was exported for {dev.get('profile')} ({', '.join(dev.get('execution_providers', []))}), which "
            f"{target.name} cannot run: its onnxruntime has {', '.join(target.providers)} only. Export the model for "
            f"a CPU profile, e.g. `edge-sdk export SOURCE --output DIR --device {target.default_profile}`")
    if manifest["graph"].get("flavour") != "fused":
        raise DeviceBuildError(
            f"{bundle} has the {manifest['graph'].get('flavour')!r} graph flavour (for NPUs); on {target.name}'s CPU "
            f"export the 'fused' flavour: `edge-sdk export SOURCE --output DIR --device {target.default_profile}`")
    est = estimate_memory(manifest, bundle)
    if embedder is not None:
        est["embedder_mb"] = embedder_memory(embedder)
        est["total_mb"] = round(est["total_mb"] + est["embedder_mb"], 1)
    if est["total_mb"] > profile.memory_budget_mb:
        raise DeviceFitError(
            f"{bundle} does not fit {profile.name}'s memory budget of {profile.memory_budget_mb} MB: weights "
            f"{est['weights_mb']:.0f} MB + KV cache at {est['max_context']} tokens {est['kv_cache_mb']:.0f} MB + working "
            f"memory {est['working_mb']:.0f} MB" + (f" + embedder {est['embedder_mb']:.0f} MB" if embedder else "") +
            f" = {est['total_mb']:.0f} MB. Export with a smaller --recipe or "
            f"--max-context, or pick a profile with more memory (--device)")
    return est


# -- the build --------------------------------------------------------------------------------------

def _copy_bundle(bundle: Path, dest: Path, log: Progress) -> None:
    """Copy the files the manifest lists (nothing else), then verify the copy: it is what ships."""
    log.stage("copying the bundle")
    manifest = read_manifest(bundle, verify=False)
    for name in [*manifest["files"], MANIFEST_NAME]:
        (dest / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(bundle / name, dest / name)
    read_manifest(dest, verify=True)


def _header(manifest, target: Target, python: str, app: App, profile, memory, root: str) -> dict[str, Any]:
    """The build's description; `root` is the folder (inside the build) that holds bundle/ and the profile."""
    import edge_sdk

    return {
        "format": BUILD_FORMAT,
        "schema_version": BUILD_SCHEMA,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "edge_sdk": {"version": edge_sdk.__version__, **_source_revision()},
        "target": {"name": target.name, "os": target.os, "machine": target.machine,
                   "platform_tags": list(target.pip_platforms)},
        "python": {"version": python, "implementation": "cp", "abi": f"cp{python.replace('.', '')}",
                   "why": target.why_python if python == target.default_python else "chosen with --python"},
        "app": app.name,
        "device_profile": {"name": profile.name, "file": f"{root}device_profile.json", "threads": profile.threads,
                           "execution_providers": list(profile.execution_providers),
                           "memory_budget_mb": profile.memory_budget_mb},
        "bundle": {"path": f"{root}bundle", "name": manifest["name"], "recipe": manifest["quantization"]["recipe"],
                   "exported_for": manifest["device"].get("profile"),
                   "manifest_sha256": None,  # filled from the file table
                   "memory_estimate": memory},
    }


def _source_revision() -> dict[str, str]:
    """The git commit edge-sdk was installed from, when it runs from a checkout (editable install)."""
    root = Path(__file__).resolve().parent.parent
    if not (root / ".git").exists() or shutil.which("git") is None:
        return {}
    try:
        rev = subprocess.run(["git", "-C", str(root), "rev-parse", "--short", "HEAD"], capture_output=True,
                             text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return {}
    return {"git": rev + ("-dirty" if dirty else "")} if rev else {}


def _linux(tmp: Path, target: Target, python: str, app: App, profile, manifest, log: Progress) -> dict[str, Any]:
    wheels = tmp / "wheels"
    log.stage("building edge-sdk's wheel")
    own = wheelhouse.build_own_wheel(wheels)
    reqs = wheelhouse.device_requirements(app.extras, target, python) + [wheelhouse.host_pin("pip")]
    log.stage(f"downloading wheels for {target.name}, CPython {python}: {', '.join(reqs)}")
    all_wheels = wheelhouse.download(wheels, reqs, target, python)
    versions = wheelhouse.wheel_versions(all_wheels)
    glibc = wheelhouse.min_glibc(all_wheels)
    log.note(f"{len(all_wheels)} wheels, {sum(w.stat().st_size for w in all_wheels) / MB:.0f} MB"
             + (f", glibc >= {glibc}" if glibc else ""))
    dist_name = wheelhouse.own_distribution().metadata["Name"]
    requirement = dist_name + (f"[{','.join(app.extras)}]" if app.extras else "") + f"=={versions_key(versions, dist_name)}"
    _write_script(tmp / "install.sh", scripts.install_sh(target=target.name, python=python))
    has_embedder = (tmp / "embedder").is_dir()
    _write_script(tmp / "run.sh", scripts.run_sh(app.name, what=app.what, profile=profile.name, embedder=has_embedder))
    (tmp / "README.txt").write_text(_readme(manifest, target, python, app, profile, has_embedder), encoding="utf-8")
    return {"target": {"name": target.name, "os": target.os, "machine": target.machine,
                       "platform_tags": list(target.pip_platforms), "min_glibc": glibc},
            "install": {"requirement": requirement, "wheel": own.name, "command": "./install.sh"},
            "versions": versions}


def versions_key(versions: dict[str, str], dist_name: str) -> str:
    key = dist_name.replace("_", "-").lower()
    if key not in versions:
        raise DeviceBuildError(f"edge-sdk's own wheel is missing from the wheelhouse ({dist_name})")
    return versions[key]


def _readme(manifest, target: Target, python: str, app: App, profile, embedder: bool = False) -> str:
    docs = """
Answers from your documents, with the embedder in ./embedder:

    .venv/bin/python -m edge_sdk index add docs.index ~/Documents --embedder embedder
    .venv/bin/python -m edge_sdk ask bundle --index docs.index "your question"
""" if embedder else ""
    return f"""edge-sdk device build: {manifest['name']} for {target.name} (CPython {python})

On the device (no network needed):

    ./install.sh        # verifies every file, then installs into ./.venv from ./wheels
    ./run.sh            # {app.what}
{docs}
Needs Python {python} on the device (Raspberry Pi OS / Debian 12 have it as python3) and a
{target.machine} CPU. The device profile is {profile.name} ({profile.threads} threads); edit
device_profile.json or pass --threads to change it. device_build.json lists every file with
its sha256 and the versions of every package.
"""


def _write_script(path: Path, text: str) -> None:
    path.write_text(text, encoding="utf-8")
    path.chmod(0o755)


def _write_json(path: Path, data: dict[str, Any]) -> None:
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def _file_table(folder: Path) -> dict[str, dict[str, Any]]:
    out = {}
    for p in sorted(folder.rglob("*")):
        rel = p.relative_to(folder).as_posix()
        if p.is_file() and rel != BUILD_FILE:
            out[rel] = {"sha256": sha256_file(p), "bytes": p.stat().st_size}
    return out


def _write_archive(folder: Path, archive: Path, name: str) -> None:
    """<name>/device_build.json first (so a later --force can recognise the archive cheaply), then the
    rest in sorted order with normalised owners: the same build gives the same member list."""
    tmp = archive.parent / f".{archive.name}.partial-{os.getpid()}"
    try:
        with open(tmp, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=6, mtime=0) as gz, \
                tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar:
            def norm(info: tarfile.TarInfo) -> tarfile.TarInfo:
                info.uid = info.gid = 0
                info.uname = info.gname = ""
                return info

            tar.add(folder / BUILD_FILE, arcname=f"{name}/{BUILD_FILE}", filter=norm)
            for p in sorted(folder.rglob("*")):
                rel = p.relative_to(folder).as_posix()
                if rel != BUILD_FILE:
                    tar.add(p, arcname=f"{name}/{rel}", recursive=False, filter=norm)
        os.replace(tmp, archive)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
