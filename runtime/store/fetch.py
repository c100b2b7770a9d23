"""HTTP for the store with the standard library only (urllib): bounded reads, resumable downloads, careful redirects.

- Only http and https; a redirect may not go from https to http, nor to any other scheme, and a redirect to
  another origin (scheme, host, port) is followed without the credentials (the Authorization header).
- Small documents (index, listing, manifest) are read with a byte limit and a time limit; a file is read up
  to its declared size and no further, so a server cannot fill the disk by sending more, and a file that
  arrives slower than 1 KB/s (over 30 s) is cut and resumed, so a dripping server cannot hold a pull forever.
- A download appends to `<sha256>.part`; after a cut it resumes with `Range: bytes=N-` (a server that
  answers 200 instead of 206 is read from the start again), up to `retries` times per file with a backoff.
- The sha256 is checked over the whole file once it has its declared size (a resumed file included).
"""
from __future__ import annotations

import errno
import hashlib
import http.client
import os
import re
import socket
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Callable

from edge_sdk.errors import StoreError

CHUNK = 1 << 16
DOCUMENT_SECONDS = 120.0  # an index, a listing or a manifest arrives within this, or the request is retried
MIN_RATE, SLOW_WINDOW = 1024, 30.0  # a file download slower than 1 KB/s over 30 s is cut (and resumed)
USER_AGENT = "edge-sdk-store/1"
_CONTENT_RANGE = re.compile(r"^bytes (\d+)-(\d+)/(\d+|\*)$")


class DiskFull(StoreError):
    """The disk (or the user's quota) filled up while writing a download."""


class Tampered(StoreError):
    """A file's bytes do not match the sha256 it was published with."""


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urllib.parse.urlsplit(url)
    port = parts.port or {"http": 80, "https": 443}.get(parts.scheme)
    return parts.scheme, (parts.hostname or "").lower(), port


def check_base_url(url: str) -> str:
    """The store's base URL, ending with '/' (relative paths are joined onto it)."""
    if not isinstance(url, str):
        raise StoreError(f"the store URL must be a string, got {type(url).__name__}")
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError as e:
        raise StoreError(f"{url[:200]!r} is not a URL ({e})") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise StoreError(f"{url[:200]!r} is not an http(s) URL of a folder made by `edge-sdk publish` "
                         "(e.g. https://example.com/models/)")
    if parts.username or parts.password:
        raise StoreError("the store URL must not carry a user name or password (they would be logged and sent on "
                         "redirects); pass a token instead (Store(..., token=...) or --token-env)")
    return url if url.endswith("/") else url + "/"


class _Redirects(urllib.request.HTTPRedirectHandler):
    """Follow a few redirects: http(s) only, never https -> http, credentials only within one origin."""

    max_redirections = 5

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        new = urllib.parse.urljoin(req.full_url, newurl)
        old_origin, new_origin = _origin(req.full_url), _origin(new)
        if new_origin[0] not in ("http", "https"):
            raise StoreError(f"{req.full_url}: the server redirected to {new[:200]!r}, which is not http(s)")
        if old_origin[0] == "https" and new_origin[0] == "http":
            raise StoreError(f"{req.full_url}: the server redirected from https to plain http ({new[:200]}); refused")
        out = super().redirect_request(req, fp, code, msg, headers, new)
        if out is not None and new_origin != old_origin:
            out.remove_header("Authorization")  # a token for one host is never handed to another
        return out


class Fetcher:
    """GETs relative to one base URL. `token`: sent as 'Authorization: Bearer TOKEN' to the store's origin only."""

    def __init__(self, base_url: str, *, token: str | None = None, timeout: float = 30.0, retries: int = 5,
                 backoff: float = 0.5):
        self.base = check_base_url(base_url)
        self.token, self.timeout, self.retries, self.backoff = token, timeout, retries, backoff
        self.opener = urllib.request.build_opener(_Redirects())
        self.bytes_received = 0  # over the network, this Fetcher's lifetime (for the figures)
        self.requests = 0

    def url(self, rel: str) -> str:
        return self.base + urllib.parse.quote(rel)

    def _open(self, rel: str, headers: dict[str, str] | None = None):
        req = urllib.request.Request(self.url(rel), headers={"User-Agent": USER_AGENT, **(headers or {})})
        if self.token:
            req.add_header("Authorization", f"Bearer {self.token}")
        self.requests += 1
        return self.opener.open(req, timeout=self.timeout)

    def _http_error(self, rel: str, e: urllib.error.HTTPError) -> StoreError:
        hint = {401: "the store needs a token (--token-env VAR)", 403: "access denied: check the token",
                404: "not published there: check the URL and the model name (or the folder is incomplete)"}
        return StoreError(f"{self.url(rel)}: HTTP {e.code} {e.reason}; {hint.get(e.code, 'the server refused it')}")

    def get(self, rel: str, limit: int, what: str) -> bytes:
        """The whole body of a small document, at most `limit` bytes, retried on network errors."""
        for attempt in range(self.retries + 1):
            try:
                with self._open(rel) as resp:
                    length = resp.headers.get("Content-Length")
                    if length and length.isdigit() and int(length) > limit:
                        raise StoreError(f"{what} ({self.url(rel)}) is {int(length)} bytes, more than the {limit} "
                                         "allowed; refusing to read it")
                    data, deadline = b"", time.monotonic() + DOCUMENT_SECONDS
                    while len(data) <= limit and (block := resp.read(min(CHUNK, limit + 1 - len(data)))):
                        data += block
                        if time.monotonic() > deadline:
                            raise OSError(f"{what} took more than {DOCUMENT_SECONDS:.0f} s to arrive")
                    self.bytes_received += len(data)
                    if len(data) > limit:
                        raise StoreError(f"{what} ({self.url(rel)}) is more than {limit} bytes; refusing to read it")
                    return data
            except urllib.error.HTTPError as e:
                if e.code < 500 or attempt == self.retries:
                    raise self._http_error(rel, e) from None
            except (urllib.error.URLError, OSError, http.client.HTTPException) as e:
                if attempt == self.retries:
                    raise StoreError(f"cannot fetch {what} from {self.url(rel)}: {_reason(e)}; check the URL and the "
                                     "network, then pull again") from None
            time.sleep(self.backoff * 2 ** attempt)
        raise AssertionError("unreachable")

    def download(self, rel: str, part: Path, size: int, sha256: str,
                 on_bytes: Callable[[int], None] | None = None) -> None:
        """Fetch `rel` into `part` until it holds `size` bytes whose sha256 is `sha256`.

        Resumes from what `part` already holds. Raises Tampered (and deletes `part`) on a hash mismatch,
        DiskFull (keeping nothing of this file) when a write fails for lack of space, StoreError when the
        network keeps failing (`part` is kept: the next pull resumes it)."""
        attempt = 0
        while True:
            have = _resume(part, size)
            if have == size:
                break
            try:
                self._fetch_range(rel, part, have, size, on_bytes)
                break
            except StoreError:  # a full disk, too many bytes, a refused redirect: retrying cannot help
                raise
            except urllib.error.HTTPError as e:
                if e.code == 416:  # our range is past the end: the part is not what we think; start again
                    part.unlink(missing_ok=True)
                elif e.code < 500:
                    raise self._http_error(rel, e) from None
                error = e
            except (urllib.error.URLError, OSError, http.client.HTTPException, socket.timeout) as e:
                error = e
            attempt += 1
            if attempt > self.retries:
                got = part.stat().st_size if part.exists() else 0
                raise StoreError(f"downloading {self.url(rel)} failed {attempt} times ({_reason(error)}); "
                                 f"{got} of {size} bytes are kept and the next pull resumes from there") from None
            time.sleep(self.backoff * 2 ** (attempt - 1))
        digest = _hash_file(part)
        if digest != sha256:
            part.unlink(missing_ok=True)
            raise Tampered(f"{self.url(rel)} does not match its sha256 (got {digest[:16]}..., published "
                           f"{sha256[:16]}...): the file was tampered with or corrupted on the way; nothing was changed")

    def _fetch_range(self, rel, part: Path, have: int, size: int, on_bytes) -> None:
        headers = {"Range": f"bytes={have}-"} if have else {}
        with self._open(rel, headers) as resp:
            if have and resp.status == 206:
                m = _CONTENT_RANGE.match(resp.headers.get("Content-Range", ""))
                if not m or int(m.group(1)) != have or (m.group(3) != "*" and int(m.group(3)) != size):
                    raise OSError(f"the server answered the range request with Content-Range "
                                  f"{resp.headers.get('Content-Range', '')[:80]!r}")
                mode = "ab"
            else:  # 200: the whole file (a server without ranges); start over
                have, mode = 0, "wb"
            length = resp.headers.get("Content-Length")
            if length and length.isdigit() and have + int(length) > size:
                raise Tampered(f"{self.url(rel)} is longer than its published size ({size} bytes); refused")
            with _open_part(part, mode) as f:
                window, window_bytes = time.monotonic(), 0
                while have < size:
                    block = resp.read1(min(CHUNK, size - have))  # what has arrived, not a full chunk
                    if not block:
                        raise http.client.IncompleteRead(b"", size - have)
                    _write(f, block, part)
                    have += len(block)
                    self.bytes_received += len(block)
                    if on_bytes is not None:
                        on_bytes(len(block))
                    window_bytes += len(block)
                    elapsed = time.monotonic() - window
                    if elapsed > SLOW_WINDOW and have < size:  # a server dripping bytes holds no one forever
                        if window_bytes < MIN_RATE * elapsed:
                            f.flush()  # what arrived is kept: the retry resumes after it
                            raise OSError(f"the server sent {window_bytes} bytes in {elapsed:.0f} s (slower than "
                                          f"{MIN_RATE} bytes/s)")
                        window, window_bytes = time.monotonic(), 0
                _sync(f, part)
            if resp.read(1):
                raise Tampered(f"{self.url(rel)} is longer than its published size ({size} bytes); refused")


def _resume(part: Path, size: int) -> int:
    """Bytes already in `part`; a part longer than the file is discarded."""
    try:
        have = part.stat().st_size
    except FileNotFoundError:
        return 0
    if have > size:
        part.unlink()
        return 0
    return have


def _open_part(part: Path, mode: str):
    flags = os.O_WRONLY | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0) | (os.O_APPEND if mode == "ab" else os.O_TRUNC)
    try:
        fd = os.open(part, flags, 0o644)
    except OSError as e:
        if e.errno in (errno.ENOSPC, errno.EDQUOT):
            raise DiskFull(f"no space left to write {part.name}") from None
        raise StoreError(f"cannot write {part}: {e.strerror}") from None
    return os.fdopen(fd, mode)


def _write(f, block: bytes, part: Path) -> None:
    try:
        f.write(block)
    except OSError as e:
        if e.errno in (errno.ENOSPC, errno.EDQUOT):
            raise DiskFull(f"the disk filled up while writing {part.name}") from None
        raise StoreError(f"cannot write {part}: {e.strerror}") from None


def _sync(f, part: Path) -> None:
    try:
        f.flush()
        os.fsync(f.fileno())
    except OSError as e:
        if e.errno in (errno.ENOSPC, errno.EDQUOT):
            raise DiskFull(f"the disk filled up while writing {part.name}") from None
        raise StoreError(f"cannot write {part}: {e.strerror}") from None


def _hash_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
    return h.hexdigest()


def _reason(e: BaseException) -> str:
    if isinstance(e, urllib.error.URLError) and not isinstance(e, urllib.error.HTTPError):
        return str(e.reason)[:200]
    return f"{type(e).__name__}: {str(e)[:200]}" if str(e) else type(e).__name__
