"""A static file server on 127.0.0.1 that the tests control (cuts, tampered bytes, redirects, slowness), and
bundle variants made from the tiny random bundle (a changed template, a broken graph, an extra file)."""
from __future__ import annotations

import hashlib
import http.server
import json
import shutil
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path

import pytest


@dataclass
class Hit:
    path: str
    start: int  # the Range start asked for (0 without a Range header)
    sent: int  # body bytes sent
    authorization: str | None
    host: str | None


@dataclass
class Behaviour:
    """What the server does differently; every field keyed by the URL path's tail (e.g. a blob's sha256)."""

    drop_after: dict[str, list[int]] = field(default_factory=dict)  # cut the connection after N body bytes (each once)
    tamper: dict[str, bytes] = field(default_factory=dict)  # serve these bytes instead
    redirect: dict[str, str] = field(default_factory=dict)  # answer 302 to this URL (once)
    ignore_range: bool = False  # a server without Range support (always 200, the whole file)
    delay: float = 0.0  # seconds to wait before each 64 KB sent (lets two pulls overlap)
    drip: set[str] = field(default_factory=set)  # send these 1 KB every 0.5 s (each once)


class StaticServer:
    """Serves `root` at http://127.0.0.1:PORT/ with Range support; records every GET."""

    def __init__(self, root: Path):
        self.root = root
        self.behaviour = Behaviour()
        self.hits: list[Hit] = []
        self.lock = threading.Lock()
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_GET(self):
                server._get(self)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()

    def blob_hits(self, sha: str) -> list[Hit]:
        return [h for h in self.hits if h.path.endswith(sha)]

    def _get(self, h: http.server.BaseHTTPRequestHandler) -> None:
        path = urllib.parse.unquote(urllib.parse.urlsplit(h.path).path)
        tail = path.rsplit("/", 1)[-1]
        b = self.behaviour
        hit = Hit(path, 0, 0, h.headers.get("Authorization"), h.headers.get("Host"))
        with self.lock:
            self.hits.append(hit)
        with self.lock:
            target = b.redirect.pop(tail, None)
        if target is not None:
            h.send_response(302)
            h.send_header("Location", target)
            h.send_header("Content-Length", "0")
            h.end_headers()
            return
        file = (self.root / path.lstrip("/")).resolve()
        if not str(file).startswith(str(self.root.resolve())) or not file.is_file():
            h.send_error(404)
            return
        data = b.tamper.get(tail, file.read_bytes())
        start = 0
        rng = h.headers.get("Range")
        if rng and not b.ignore_range and rng.startswith("bytes=") and rng.endswith("-"):
            start = int(rng[6:-1])
            if start >= len(data):
                h.send_response(416)
                h.send_header("Content-Range", f"bytes */{len(data)}")
                h.send_header("Content-Length", "0")
                h.end_headers()
                return
            h.send_response(206)
            h.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            h.send_response(200)
        hit.start = start
        body = data[start:]
        h.send_header("Content-Length", str(len(body)))
        h.send_header("Accept-Ranges", "bytes")
        h.end_headers()
        cut = None
        with self.lock:
            if b.drop_after.get(tail):
                cut = b.drop_after[tail].pop(0)
        limit = len(body) if cut is None else min(cut, len(body))
        with self.lock:
            drip = tail in b.drip
            b.drip.discard(tail)
        sent = 0
        try:
            while sent < limit:
                if b.delay:
                    time.sleep(b.delay)
                if drip:
                    time.sleep(0.5)
                block = body[sent:min(limit, sent + (1024 if drip else 1 << 16))]
                h.wfile.write(block)
                sent += len(block)
            h.wfile.flush()
        except OSError:
            pass
        hit.sent = sent
        if cut is not None:
            h.close_connection = True
            try:
                h.connection.shutdown(2)
            except OSError:
                pass


@pytest.fixture
def site(tmp_path):
    """(folder to publish into, its server). The folder is `site/models`, served at URL/models/."""
    root = tmp_path / "site"
    (root / "models").mkdir(parents=True)
    server = StaticServer(root)
    server.models_url = server.url + "models/"
    yield root / "models", server
    server.close()


def rehash(bundle: Path) -> None:
    """Rewrite the manifest's file table from the files as they are now (and drop a stale signature)."""
    path = bundle / "edge_manifest.json"
    manifest = json.loads(path.read_text())
    for rel in manifest["files"]:
        data = (bundle / rel).read_bytes()
        manifest["files"][rel] = {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
    path.write_text(json.dumps(manifest, indent=2) + "\n")
    (bundle / "edge_manifest.sig").unlink(missing_ok=True)


def variant(src: Path, dest: Path, changes: dict[str, bytes] | None = None, extra: dict[str, bytes] | None = None) -> Path:
    """A copy of bundle `src` with some files' bytes changed, or extra files listed in its manifest."""
    shutil.copytree(src, dest)
    (dest / "edge_manifest.sig").unlink(missing_ok=True)
    for rel, data in (changes or {}).items():
        (dest / rel).write_bytes(data)
    if extra:
        manifest = json.loads((dest / "edge_manifest.json").read_text())
        for rel, data in extra.items():
            (dest / rel).write_bytes(data)
            manifest["files"][rel] = {"sha256": "0" * 64, "bytes": 0}
        (dest / "edge_manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    rehash(dest)
    return dest


@pytest.fixture(scope="session")
def bundles(tiny_bundle, tmp_path_factory):
    """v1 (the tiny bundle), v2 (the same with a changed chat template: the weights are shared), and broken
    (every hash right, but its tokenizer.json is not a tokenizer: it passes verification and fails to load)."""
    root = tmp_path_factory.mktemp("store-bundles")
    v1 = root / "v1"
    shutil.copytree(tiny_bundle, v1)
    (v1 / "edge_manifest.sig").unlink(missing_ok=True)
    template = (v1 / "chat_template.jinja").read_text()
    v2 = variant(v1, root / "v2", {"chat_template.jinja": (template + "{# v2 #}").encode()})
    broken = variant(v1, root / "broken", {"tokenizer.json": b'{"version": "1.0", "model": {"type": "nothing"}}'})
    return {"v1": v1, "v2": v2, "broken": broken}


def manifest_files(bundle: Path) -> dict[str, dict]:
    return json.loads((bundle / "edge_manifest.json").read_text())["files"]


def store_state(store_root: Path) -> dict[str, object]:
    """What a test compares before and after a failed pull: the pointers and the version folders' files."""
    out: dict[str, object] = {}
    models = store_root / "models"
    for p in sorted(models.rglob("*")) if models.is_dir() else []:
        if p.is_file() and "pulled" not in p.parts:
            out[str(p.relative_to(store_root))] = p.read_bytes() if p.name == "active.json" else p.stat().st_size
    return out


def free_names(env_root: Path) -> set[str]:
    return {p.name for p in env_root.iterdir()}


def make_store(root: Path, **kwargs):
    """A Store whose smoke prompt loads with 1 thread (the box is shared)."""
    from edge_sdk.store import Store

    return Store(root, load_options={"threads": 1}, retries=kwargs.pop("retries", 3), **kwargs)
