"""Signed bundles: our pure-Python Ed25519 against RFC 8032's vectors and the `cryptography` package,
and the whole flow (keygen, sign, load with trusted keys) through the CLI and the API."""
from __future__ import annotations

import json
import os
import shutil

import pytest

import edge_sdk
from edge_sdk.cli import main
from edge_sdk.errors import BundleError
from edge_sdk.runtime.bundle import signature as ed

# RFC 8032 section 7.1, tests 1-3: (secret key, public key, message, signature).
RFC8032 = [
    ("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
     "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a", "",
     "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e06522490155"
     "5fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"),
    ("4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
     "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c", "72",
     "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da"
     "085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00"),
    ("c5aa8df43f9f837bedb7442f31dcb7b166d38535076f094b85ce3a2e0b4458f7",
     "fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025", "af82",
     "6291d657deec24024827e69c3abe01a30ce548a284743a445e3680d7db5ac3ac"
     "18ff9b538d16f290ae67f760984dc6594a7c15e9716ed28dc027beceea1ec40a"),
]


@pytest.mark.parametrize("secret, public, message, sig", RFC8032)
def test_rfc8032_vectors(secret, public, message, sig):
    seed, msg = bytes.fromhex(secret), bytes.fromhex(message)
    assert ed.public_key(seed).hex() == public
    assert ed.sign(seed, msg).hex() == sig
    assert ed.verify(bytes.fromhex(public), msg, bytes.fromhex(sig))
    bad = bytearray(bytes.fromhex(sig))
    bad[5] ^= 1
    assert not ed.verify(bytes.fromhex(public), msg, bytes(bad))
    assert not ed.verify(bytes.fromhex(public), msg + b"x", bytes.fromhex(sig))


def test_agrees_with_the_cryptography_package():
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    for i in range(20):
        seed, msg = os.urandom(32), os.urandom(i * 37)
        theirs = Ed25519PrivateKey.from_private_bytes(seed)
        pub = theirs.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        assert ed.public_key(seed) == pub
        assert ed.sign(seed, msg) == theirs.sign(msg)  # Ed25519 is deterministic
        Ed25519PublicKey.from_public_bytes(pub).verify(ed.sign(seed, msg), msg)  # raises if invalid
        assert ed.verify(pub, msg, theirs.sign(msg))
    # Non-canonical s (s + L) must be refused, as RFC 8032 requires.
    seed, msg = os.urandom(32), b"m"
    sig = ed.sign(seed, msg)
    s = int.from_bytes(sig[32:], "little") + ed._L
    assert s < 2**256 and not ed.verify(ed.public_key(seed), msg, sig[:32] + s.to_bytes(32, "little"))


@pytest.fixture
def signed(tiny_bundle, tmp_path, capsys):
    bundle = tmp_path / "bundle"
    shutil.copytree(tiny_bundle, bundle)
    key = tmp_path / "publisher.key"
    assert main(["keygen", "--output", str(key)]) == 0
    assert oct(key.stat().st_mode & 0o777) == "0o600"
    assert main(["sign", str(bundle), "--key", str(key)]) == 0
    capsys.readouterr()
    return bundle, key, tmp_path / "publisher.key.pub"


def test_signed_bundle_loads_only_for_its_publisher(signed, tmp_path, capsys):
    bundle, key, pub = signed
    assert edge_sdk.load(bundle, trusted_keys=[pub]).generate("hi", max_new_tokens=2) is not None
    assert edge_sdk.load(bundle, trusted_keys=[pub.read_text()]) is not None  # the key line works too
    assert edge_sdk.load(bundle) is not None  # no trusted keys: signature not required
    other = tmp_path / "other.key"
    assert main(["keygen", "--output", str(other)]) == 0
    with pytest.raises(BundleError, match="not one of the trusted keys"):
        edge_sdk.load(bundle, trusted_keys=[str(other) + ".pub"])
    code = main(["run", str(bundle), "-p", "hi", "--max-new-tokens", "2", "--trusted-key", str(other) + ".pub"])
    assert code == 2 and "not one of the trusted keys" in capsys.readouterr().err


def test_any_change_after_signing_is_refused(signed):
    bundle, _, pub = signed
    path = bundle / "edge_manifest.json"
    m = json.loads(path.read_text())
    m["generation"]["temperature"] = 1.5  # a one-field change that needs no file edit
    path.write_text(json.dumps(m, indent=2) + "\n")
    with pytest.raises(BundleError, match="signature does not match"):
        edge_sdk.load(bundle, trusted_keys=[pub])


def test_unsigned_bundle_with_trusted_keys_is_refused(tiny_bundle, signed):
    _, _, pub = signed
    with pytest.raises(BundleError, match="is not signed"):
        edge_sdk.load(tiny_bundle, trusted_keys=[pub])
    with pytest.raises(BundleError, match="trusted_keys"):
        edge_sdk.load(tiny_bundle, trusted_keys=["ed25519 not-base64!"])


def test_keygen_never_overwrites(signed, capsys):
    _, key, _ = signed
    before = key.read_text()
    assert main(["keygen", "--output", str(key)]) == 2
    assert "already exists" in capsys.readouterr().err and key.read_text() == before


@pytest.mark.parametrize("empty", [[], (), iter(())], ids=["list", "tuple", "iterator"])
def test_an_empty_list_of_trusted_keys_fails_closed(signed, tiny_bundle, empty):
    """Asking for a signature while trusting no key must refuse every bundle, signed or not (issue 24: an empty
    list read as "no signature needed" would load anything)."""
    from edge_sdk.runtime.bundle import read_manifest

    bundle, _, _ = signed
    for b in (bundle, tiny_bundle):
        with pytest.raises(BundleError, match="trusted_keys is empty"):
            edge_sdk.load(b, trusted_keys=list(empty) if not isinstance(empty, (list, tuple)) else empty)
        with pytest.raises(BundleError, match="trusted_keys is empty"):
            read_manifest(b, trusted_keys=[])


def test_one_trusted_key_given_bare_is_one_key(signed):
    bundle, _, pub = signed
    assert edge_sdk.load(bundle, trusted_keys=pub.read_text().strip()) is not None  # not its characters
    assert edge_sdk.load(bundle, trusted_keys=pub) is not None
