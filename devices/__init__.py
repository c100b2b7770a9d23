"""Device profiles: what a device class can run, as data files with the reason for each value.

One JSON file per device class sits next to this module (shipped as package data). A profile
chooses the execution providers, the graph flavour and the quantization recipe of an export,
and the runtime's threads and context. The values are engineering estimates; each file says
where every value comes from in its ``reasons``.

    >>> from edge_sdk.devices import load_profile
    >>> load_profile("snapdragon-8-gen3").recipe
    'w8a16-qdq'
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from edge_sdk.errors import DeviceError

__all__ = [
    "DeviceProfile", "load_profile", "list_profiles", "profile_names", "validate_profile",
    "DEFAULT_PROFILE", "FLAVOURS", "RECIPES", "EXECUTION_PROVIDERS", "CPU_ARCHS",
]

PROFILE_DIR = Path(__file__).parent

# Host testing runs on the CI machine class unless told otherwise.
DEFAULT_PROFILE = "x86-64-laptop"

# One source of truth for flavour and recipe names: the registry the exporter uses (a stdlib-only module).
# Flavours: "fused" = onnxruntime contrib ops, fastest on CPU; "static" = standard ops, fixed shapes, for NPUs.
from edge_sdk.exporters.recipes import FLAVOURS  # noqa: E402
from edge_sdk.exporters.recipes import RECIPES as _RECIPE_TABLE  # noqa: E402

RECIPES = tuple(_RECIPE_TABLE)
# onnxruntime's own names, so a profile's list can be passed to InferenceSession as is.
EXECUTION_PROVIDERS = (
    "QNNExecutionProvider", "CoreMLExecutionProvider", "XnnpackExecutionProvider",
    "NnapiExecutionProvider", "CPUExecutionProvider",
)
NPU_PROVIDERS = ("QNNExecutionProvider", "CoreMLExecutionProvider", "NnapiExecutionProvider")
CPU_ARCHS = ("arm64", "x86_64")
# How the KV cache stores keys and values: the names of runtime/kv_cache.py KV_FORMATS (kept literal here so a
# profile validates without importing onnxruntime; a test checks they agree).
KV_CACHES = ("float", "int8", "int4")


@dataclass(frozen=True)
class DeviceProfile:
    """One device class. Field names are the JSON keys."""

    name: str  # file stem and CLI name, e.g. "snapdragon-8-gen3"
    description: str  # one line a user can recognise their device in
    cpu_arch: str  # "arm64" or "x86_64": which onnxruntime build the device needs
    execution_providers: tuple[str, ...]  # onnxruntime EP names, most preferred first
    flavour: str  # graph flavour to export: "fused" (CPU contrib ops) or "static" (NPU)
    recipe: str  # quantization recipe name, one of RECIPES
    threads: int  # intra-op threads for the CPU work of a session
    max_context: int  # tokens (prompt + generated) the KV cache is sized for
    memory_budget_mb: int  # what an app may spend on weights + KV cache + activations
    npu_only: bool  # True: disable CPU fallback, so a graph that does not fully offload fails loudly
    reasons: dict[str, str] = field(default_factory=dict, compare=False)  # field -> why this value
    soc: str | None = None  # Qualcomm part number (e.g. "SM8650"); QNN context binaries are per SoC
    htp_arch: str | None = None  # Hexagon HTP version (e.g. "v75"), for QNN compilation
    prefill_chunk: int | None = None  # static flavour: tokens per prefill graph call
    kv_cache: str | None = None  # fused flavour: the KV-cache format an export uses by default (None: "float")
    # arm64 CPU: False turns off onnxruntime's KleidiAI int4 kernels, which round block scales to bf16 (the runtime
    # sets the session entry `mlas.disable_kleidiai`); None/True leave onnxruntime's choice.
    kleidiai: bool | None = None

    @property
    def is_npu(self) -> bool:
        """True if the preferred execution provider is an NPU one."""
        return self.execution_providers[0] in NPU_PROVIDERS

    def to_dict(self) -> dict:
        """The profile as JSON-ready data (the file's content)."""
        d = asdict(self)
        d["execution_providers"] = list(self.execution_providers)
        return d


# key -> (accepted types, required)
_FIELDS: dict[str, tuple[tuple[type, ...], bool]] = {
    "name": ((str,), True),
    "description": ((str,), True),
    "cpu_arch": ((str,), True),
    "execution_providers": ((list,), True),
    "flavour": ((str,), True),
    "recipe": ((str,), True),
    "threads": ((int,), True),
    "max_context": ((int,), True),
    "memory_budget_mb": ((int,), True),
    "npu_only": ((bool,), True),
    "reasons": ((dict,), True),
    "soc": ((str,), False),
    "htp_arch": ((str,), False),
    "prefill_chunk": ((int,), False),
    "kv_cache": ((str,), False),
    "kleidiai": ((bool,), False),
}
_POSITIVE = ("threads", "max_context", "memory_budget_mb", "prefill_chunk")
# Upper bounds, as a bundle's manifest has them (runtime/bundle/schema.py): a profile is a file the user may be
# given or edit (a device build's device_profile.json), and `threads: 300` started 302 threads.
_MAXIMUM = {"threads": 64, "max_context": 1 << 17, "memory_budget_mb": 1 << 24, "prefill_chunk": 1 << 17}
MAX_PROFILE_BYTES = 1 << 20
_CHOICES = {"cpu_arch": CPU_ARCHS, "flavour": FLAVOURS, "recipe": RECIPES, "kv_cache": KV_CACHES}


def validate_profile(data: dict, source: str = "<profile>") -> DeviceProfile:
    """Check ``data`` against the profile schema and build the profile.

    Raises :class:`DeviceError` naming ``source`` and the offending field.
    """

    def fail(key: str, problem: str):
        raise DeviceError(f"device profile {source}: field '{key}' {problem}")

    if not isinstance(data, dict):
        raise DeviceError(f"device profile {source}: must be a JSON object, got {type(data).__name__}")
    for key in data:
        if key not in _FIELDS:
            fail(key, f"is not a profile field (known: {', '.join(_FIELDS)})")
    for key, (types, required) in _FIELDS.items():
        if key not in data or data[key] is None:
            if required:
                fail(key, "is missing")
            continue
        value = data[key]
        # bool is an int subclass: "threads": true must not pass as 1.
        if not isinstance(value, types) or (bool not in types and isinstance(value, bool)):
            fail(key, f"must be {' or '.join(t.__name__ for t in types)}, got {value!r}")
    for key, allowed in _CHOICES.items():
        if data.get(key) is not None and data[key] not in allowed:
            fail(key, f"must be one of {', '.join(allowed)}; got {data[key]!r}")
    for key in _POSITIVE:
        if data.get(key) is not None and not 0 < data[key] <= _MAXIMUM[key]:
            fail(key, f"must be an integer from 1 to {_MAXIMUM[key]}, got {data[key]!r}")
    if not data["name"].strip() or not data["description"].strip():
        fail("name" if not data["name"].strip() else "description", "must not be empty")

    eps = data["execution_providers"]
    if not eps:
        fail("execution_providers", "must list at least one execution provider")
    for ep in eps:
        if ep not in EXECUTION_PROVIDERS:
            fail("execution_providers", f"has unknown provider {ep!r} (known: {', '.join(EXECUTION_PROVIDERS)})")
    if len(set(eps)) != len(eps):
        fail("execution_providers", "lists a provider twice")

    # Combinations that cannot work, caught here rather than at session creation on the device.
    if data["npu_only"] and "CPUExecutionProvider" in eps:
        fail("npu_only", "is true but CPUExecutionProvider is listed; drop one of them")
    if data["npu_only"] and eps[0] not in NPU_PROVIDERS:
        fail("npu_only", f"is true but the first provider {eps[0]!r} is not an NPU provider")
    if "QNNExecutionProvider" in eps and data["flavour"] != "static":
        fail("flavour", "must be 'static' with QNNExecutionProvider (contrib ops do not run on QNN)")
    if data["flavour"] == "static" and data.get("prefill_chunk") is None:
        fail("prefill_chunk", "is required for the static flavour")
    if data.get("prefill_chunk") is not None and data["prefill_chunk"] > data["max_context"]:
        fail("prefill_chunk", f"({data['prefill_chunk']}) must not exceed max_context ({data['max_context']})")
    if data.get("kv_cache") not in (None, "float") and data["flavour"] != "fused":
        fail("kv_cache", "can only be quantized on the fused flavour (onnxruntime's GroupQueryAttention)")
    if data.get("kleidiai") is not None and data["cpu_arch"] != "arm64":
        fail("kleidiai", "only applies to arm64 CPUs (KleidiAI is Arm's kernel library)")
    if data.get("htp_arch") is not None and "QNNExecutionProvider" not in eps:
        fail("htp_arch", "only applies with QNNExecutionProvider")

    reasons = data["reasons"]
    for key, text in reasons.items():
        if key not in _FIELDS or not isinstance(text, str) or not text.strip():
            fail("reasons", f"entry {key!r} must name a profile field and give a non-empty reason")
    # Every chosen value carries its reason; name/description explain themselves.
    for key in _FIELDS:
        if key not in ("name", "description", "reasons") and data.get(key) is not None and key not in reasons:
            fail("reasons", f"has no reason for {key!r}")

    values = {k: data.get(k) for k in _FIELDS}
    values["execution_providers"] = tuple(eps)
    return DeviceProfile(**values)


def profile_names() -> list[str]:
    """Names of the shipped profiles, sorted."""
    return sorted(p.stem for p in PROFILE_DIR.glob("*.json"))


def _read(path: Path) -> DeviceProfile:
    try:
        with open(path, "rb") as f:
            raw = f.read(MAX_PROFILE_BYTES + 1)
        if len(raw) > MAX_PROFILE_BYTES:
            raise DeviceError(f"device profile {path} is larger than {MAX_PROFILE_BYTES >> 10} KB; a profile is a few "
                              "fields")
        data = json.loads(raw.decode("utf-8"))
    except OSError as e:
        raise DeviceError(f"cannot read device profile {path}: {e.strerror}") from None
    except (ValueError, RecursionError) as e:  # not JSON, not UTF-8, or nested deeper than the parser goes
        raise DeviceError(f"device profile {path} is not valid JSON: {str(e)[:200]}") from None
    return validate_profile(data, str(path))


def load_profile(name_or_path: str | Path) -> DeviceProfile:
    """A shipped profile by name (``"raspberry-pi-5"``) or a profile JSON file by path."""
    text = str(name_or_path)
    path = Path(text)
    if text.endswith(".json") or path.is_file():
        return _read(path)
    shipped = PROFILE_DIR / f"{text}.json"
    if text in profile_names():
        profile = _read(shipped)
        if profile.name != text:
            raise DeviceError(f"device profile {shipped}: field 'name' is {profile.name!r}, expected {text!r} (the file name)")
        return profile
    raise DeviceError(
        f"unknown device {text!r}; known devices: {', '.join(profile_names())} "
        "(or pass the path to a profile .json file)"
    )


def list_profiles() -> list[DeviceProfile]:
    """Every shipped profile, validated, sorted by name."""
    return [load_profile(name) for name in profile_names()]
