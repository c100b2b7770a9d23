"""Signed bundles: an Ed25519 signature over the manifest, checked in pure Python (it runs on a phone).

The manifest lists the sha256 of every file, so one signature over its bytes covers the whole
bundle. The signature lives beside it in `edge_manifest.sig`:

    {"format": "edge-bundle-signature", "algorithm": "ed25519", "public_key": "<base64>", "signature": "<base64>"}

over the bytes b"edge-bundle-signature-v1\\n" + edge_manifest.json (the prefix keeps these signatures
from being valid for anything else). Keys are text files: `ed25519-private <base64 seed>` and
`ed25519 <base64 public key>` (`edge-sdk keygen`).

Ed25519 is RFC 8032, written here from the RFC's definitions with Python integers: no native
dependency, ~10 ms to verify. Signing needs the private key and is done on the publisher's host.
The tests check it against the RFC's test vectors and against the `cryptography` package.
"""
from __future__ import annotations

import base64
import hashlib
import json
import os
import secrets
from pathlib import Path
from typing import Iterable

from edge_sdk.errors import BundleError

SIGNATURE_NAME = "edge_manifest.sig"
SIGNATURE_FORMAT = "edge-bundle-signature"
DOMAIN = b"edge-bundle-signature-v1\n"

# --- Ed25519 (RFC 8032, section 5.1) -----------------------------------------------------------
_P = 2**255 - 19
_L = 2**252 + 27742317777372353535851937790883648493  # order of the base point
_D = -121665 * pow(121666, _P - 2, _P) % _P
_SQRT_M1 = pow(2, (_P - 1) // 4, _P)


def _recover_x(y: int, sign: int) -> int | None:
    if y >= _P:
        return None
    x2 = (y * y - 1) * pow(_D * y * y + 1, _P - 2, _P) % _P
    if x2 == 0:
        return None if sign else 0
    x = pow(x2, (_P + 3) // 8, _P)
    if (x * x - x2) % _P:
        x = x * _SQRT_M1 % _P
    if (x * x - x2) % _P:
        return None
    return _P - x if (x & 1) != sign else x


_GY = 4 * pow(5, _P - 2, _P) % _P
_GX = _recover_x(_GY, 0)
_G = (_GX, _GY, 1, _GX * _GY % _P)  # extended coordinates (X, Y, Z, T), x = X/Z, y = Y/Z, xy = T/Z
_ZERO = (0, 1, 1, 0)


def _add(p, q):
    a = (p[1] - p[0]) * (q[1] - q[0]) % _P
    b = (p[1] + p[0]) * (q[1] + q[0]) % _P
    c = 2 * p[3] * q[3] * _D % _P
    d = 2 * p[2] * q[2] % _P
    e, f, g, h = b - a, d - c, d + c, b + a
    return e * f % _P, g * h % _P, f * g % _P, e * h % _P


def _mul(k: int, p):
    out = _ZERO
    while k:
        if k & 1:
            out = _add(out, p)
        p = _add(p, p)
        k >>= 1
    return out


def _encode(p) -> bytes:
    zi = pow(p[2], _P - 2, _P)
    x, y = p[0] * zi % _P, p[1] * zi % _P
    return (y | (x & 1) << 255).to_bytes(32, "little")


def _decode(b: bytes):
    if len(b) != 32:
        return None
    y = int.from_bytes(b, "little")
    sign, y = y >> 255, y & ((1 << 255) - 1)
    x = _recover_x(y, sign)
    return None if x is None else (x, y, 1, x * y % _P)


def _equal(p, q) -> bool:
    return (p[0] * q[2] - q[0] * p[2]) % _P == 0 and (p[1] * q[2] - q[1] * p[2]) % _P == 0


def _h(*parts: bytes) -> int:
    return int.from_bytes(hashlib.sha512(b"".join(parts)).digest(), "little")


def _expand(seed: bytes) -> tuple[int, bytes]:
    h = hashlib.sha512(seed).digest()
    a = int.from_bytes(h[:32], "little")
    a &= (1 << 254) - 8
    a |= 1 << 254
    return a, h[32:]


def public_key(seed: bytes) -> bytes:
    """The 32-byte public key of a 32-byte private seed."""
    if len(seed) != 32:
        raise ValueError("an Ed25519 private key is 32 bytes")
    return _encode(_mul(_expand(seed)[0], _G))


def sign(seed: bytes, message: bytes) -> bytes:
    """The 64-byte Ed25519 signature of `message`."""
    a, prefix = _expand(seed)
    pub = _encode(_mul(a, _G))
    r = _h(prefix, message) % _L
    big_r = _encode(_mul(r, _G))
    k = _h(big_r, pub, message) % _L
    return big_r + ((r + k * a) % _L).to_bytes(32, "little")


def verify(pub: bytes, message: bytes, signature: bytes) -> bool:
    """True if `signature` is `pub`'s Ed25519 signature of `message` (cofactorless check, RFC 8032 5.1.7)."""
    if len(pub) != 32 or len(signature) != 64:
        return False
    a, r = _decode(pub), _decode(signature[:32])
    s = int.from_bytes(signature[32:], "little")
    if a is None or r is None or s >= _L:
        return False
    k = _h(signature[:32], pub, message) % _L
    return _equal(_mul(s, _G), _add(r, _mul(k, a)))


# --- keys as text ---------------------------------------------------------------------------------

def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def new_key() -> bytes:
    return secrets.token_bytes(32)


def private_key_text(seed: bytes) -> str:
    return f"ed25519-private {_b64(seed)}\n"


def public_key_text(pub: bytes) -> str:
    return f"ed25519 {_b64(pub)}\n"


def _parse_key(text: str, kind: str) -> bytes:
    words = text.split()
    prefix = "ed25519-private" if kind == "private" else "ed25519"
    if len(words) != 2 or words[0] != prefix:
        raise ValueError(f"not an Ed25519 {kind} key (expected a line '{prefix} <base64>')")
    try:
        key = base64.b64decode(words[1], validate=True)
    except ValueError:
        raise ValueError(f"the {kind} key is not valid base64") from None
    if len(key) != 32:
        raise ValueError(f"an Ed25519 {kind} key is 32 bytes, this one has {len(key)}")
    return key


def load_private_key(path: str | os.PathLike) -> bytes:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ValueError(f"cannot read the private key {path}: {getattr(e, 'strerror', e)}") from None
    return _parse_key(text, "private")


def load_public_key(key: str | bytes | os.PathLike) -> bytes:
    """A public key from raw bytes, a key line ('ed25519 <base64>'), or the path of a key file."""
    if isinstance(key, bytes):
        if len(key) != 32:
            raise ValueError("a raw Ed25519 public key is 32 bytes")
        return key
    text = str(key)
    if not text.startswith("ed25519 ") and Path(text).is_file():
        text = Path(text).read_text(encoding="utf-8")
    return _parse_key(text, "public")


# --- bundles --------------------------------------------------------------------------------------

def sign_bundle(bundle_dir: str | os.PathLike, seed: bytes) -> Path:
    """Write edge_manifest.sig for the bundle's manifest as it is now; returns its path."""
    from .manifest import read_manifest_bytes

    root = Path(bundle_dir)
    data = read_manifest_bytes(root)
    pub = public_key(seed)
    sig = {"format": SIGNATURE_FORMAT, "algorithm": "ed25519", "public_key": _b64(pub),
           "signature": _b64(sign(seed, DOMAIN + data))}
    tmp = root / (SIGNATURE_NAME + ".tmp")
    tmp.write_text(json.dumps(sig, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, root / SIGNATURE_NAME)
    return root / SIGNATURE_NAME


def verify_bundle_signature(root: Path, manifest_bytes: bytes, trusted_keys: Iterable) -> bytes:
    """The trusted key that signed these manifest bytes; BundleError if none did. An empty list of trusted
    keys fails closed: asking for a signature and trusting no one accepts nothing."""
    if isinstance(trusted_keys, (str, bytes, os.PathLike)):  # one key given bare, not a string of characters
        trusted_keys = [trusted_keys]
    try:
        trusted = [load_public_key(k) for k in trusted_keys]
    except ValueError as e:
        raise BundleError(f"trusted_keys: {e}") from None
    if not trusted:
        raise BundleError("trusted_keys is empty: pass the publisher's public key (edge-sdk keygen writes one)")
    path = root / SIGNATURE_NAME
    if path.is_symlink() or not path.is_file():
        raise BundleError(f"{root} is not signed (no {SIGNATURE_NAME}) but a trusted key is required; ask its "
                          "publisher for a signed bundle (edge-sdk sign)")
    try:
        sig = json.loads(path.read_text(encoding="utf-8")[:4096])
        pub, signature = base64.b64decode(sig["public_key"], validate=True), base64.b64decode(sig["signature"], validate=True)
        assert sig.get("format") == SIGNATURE_FORMAT and sig.get("algorithm") == "ed25519"
    except (ValueError, KeyError, TypeError, AssertionError, UnicodeDecodeError):
        raise BundleError(f"{path} is not a valid edge-sdk signature file") from None
    if pub not in trusted:
        raise BundleError(f"{root} is signed by key {_b64(pub)[:16]}..., which is not one of the trusted keys")
    if not verify(pub, DOMAIN + manifest_bytes, signature):
        raise BundleError(f"{root}: the signature does not match the manifest (modified after signing?); "
                          "do not use this bundle")
    return pub
